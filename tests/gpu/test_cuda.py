"""GPU checks (``python -m pytest -m gpu tests/gpu``): the universal matcher, training and the
dask-cuda cluster on a real CUDA device. Skipped where there is none (CI, 2-core machines)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import xgeo
from xgeo.matcher.weights import shipped_weights_path

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]

REPO = Path(__file__).resolve().parents[2]


def _pair(seed: int = 31337, rotation: float = 15.0):
    from xgeo.synth import make_pair

    return make_pair(seed, size=320, mod0="optical", mod1="optical", max_rotation_deg=rotation,
                     scale_range=(0.9, 1.1), local_distortion=False)


def _corner_error(r, p) -> float:
    assert len(r) >= 30, len(r)
    h, _ = cv2.findHomography(r.points0.astype(np.float64), r.points1.astype(np.float64),
                              cv2.RANSAC, 3.0, maxIters=5000, confidence=0.9999)
    assert h is not None
    hh, ww = p.img0.shape
    c = np.array([[0, 0, 1], [ww - 1, 0, 1], [ww - 1, hh - 1, 1], [0, hh - 1, 1]], float)
    a, b = c @ h.T, c @ np.asarray(p.H_0to1, float).T
    return float(np.linalg.norm(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:], axis=1).mean())


def test_matcher_picks_cuda_and_mixed_precision_and_meets_the_1px_bar() -> None:
    m = xgeo.load_matcher(orientation_search=False)
    assert m.device.type == "cuda"
    assert m.describe()["precision"] in ("bfloat16", "float16")
    p = _pair()
    assert _corner_error(m.match(p.img0, p.img1), p) < 1.0


def test_cuda_float32_and_cpu_agree_on_the_known_pair() -> None:
    p = _pair()
    e_gpu = _corner_error(xgeo.load_matcher(orientation_search=False, autocast=False).match(
        p.img0, p.img1), p)
    e_cpu = _corner_error(xgeo.load_matcher(orientation_search=False, device="cpu",
                                            autocast=False).match(p.img0, p.img1), p)
    assert e_gpu < 1.0 and e_cpu < 1.0 and abs(e_gpu - e_cpu) < 0.5, (e_gpu, e_cpu)


def _agreement(r, q) -> tuple[float, float]:
    """Share of ``r``'s matches that ``q`` has at the same image-0 point, and their median gap."""
    key = {tuple(np.round(a, 2)): b for a, b in zip(r.points0, r.points1, strict=True)}
    gaps = [np.linalg.norm(key[k] - b) for a, b in zip(q.points0, q.points1, strict=True)
            if (k := tuple(np.round(a, 2))) in key]
    return len(gaps) / max(len(r), len(q)), float(np.median(gaps)) if gaps else np.inf


def test_match_batch_on_cuda_gives_each_pair_what_a_batch_of_one_gives() -> None:
    pairs = [(p.img0, p.img1) for p in (_pair(500 + k) for k in range(6))]
    for autocast, share, gap in ((False, 0.98, 0.01), (True, 0.85, 0.5)):  # bf16 kernels differ by batch size
        opts = {"orientation_search": False, "scale_search": False, "autocast": autocast}
        one = xgeo.load_matcher(batch_size=1, **opts).match_batch(pairs)
        four = xgeo.load_matcher(batch_size=4, **opts).match_batch(pairs)
        for r, q in zip(one, four, strict=True):
            s, g = _agreement(r, q)
            assert len(r) >= 100 and s >= share and g <= gap, (autocast, len(r), len(q), s, g)


def test_orientation_search_on_cuda_recovers_a_half_turn() -> None:
    p = _pair(4242, rotation=10.0)
    img1 = np.ascontiguousarray(np.asarray(p.img1, np.float32)[::-1, ::-1])  # turned by 180 deg
    h, w = img1.shape
    turn = np.array([[-1.0, 0, w - 1], [0, -1.0, h - 1], [0, 0, 1]])
    r = xgeo.load_matcher().match(p.img0, img1)
    assert r.info["rotation_deg"] % 360 in (135, 180, 225), r.info.get("orientation_scores")

    class Turned:
        img0, H_0to1 = p.img0, turn @ np.asarray(p.H_0to1, float)

    assert _corner_error(r, Turned) < 2.0


def test_training_on_cuda_lowers_the_loss_and_its_checkpoint_loads_on_cpu(tmp_path: Path) -> None:
    from training import train as T
    from xgeo.matcher.config import get_config
    from xgeo.matcher.model import UniversalMatcherNet
    from xgeo.matcher.weights import build_model
    from xgeo.synth import make_pair

    torch.manual_seed(0)
    dev = torch.device("cuda")
    net = UniversalMatcherNet(get_config("tiny")).to(dev)
    pairs = [make_pair(123 + k, size=128, mod0="optical", mod1="optical", max_rotation_deg=10.0,
                       scale_range=(0.9, 1.1), local_distortion=False) for k in range(2)]
    batch = T._to(T.make_batch(pairs), dev)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, sc = T.compute_loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(sc["loss"])
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses

    out = tmp_path / "run"
    cfg = T.load_config(REPO / "training" / "configs" / "tiny.yaml", max_steps=3, out_dir=str(out),
                        workers=0, val_every_steps=100, log_every_steps=1, threads=0, device="cuda")
    cfg.data.update(size=128, val_pairs=2, val_size=128)
    T.train(cfg, quiet=True)
    card = json.loads((out / "best.json").read_text())
    assert card["hardware"]["device"] == "cuda" and card["hardware"]["cuda"]
    net_cpu = build_model(out / "best.safetensors")
    assert next(net_cpu.parameters()).device.type == "cpu"


def test_dask_cuda_cluster_runs_the_matcher_on_its_gpu_worker() -> None:
    pytest.importorskip("dask_cuda")
    from flows.runners import open_cluster

    def on_worker() -> tuple[str, int]:
        import xgeo as _x
        from xgeo.synth import make_pair

        p = make_pair(31337, size=320, mod0="optical", mod1="optical", max_rotation_deg=15.0,
                      scale_range=(0.9, 1.1), local_distortion=False)
        m = _x.load_matcher(orientation_search=False)
        return m.device.type, len(m.match(p.img0, p.img1))

    with open_cluster(use_gpu=True, dashboard_address=None) as h:
        assert h.kind == "cuda" and h.gpu
        dev, n = h.client.submit(on_worker, resources={"GPU": 1}, pure=False).result(timeout=300)
    assert dev == "cuda" and n >= 30


@pytest.mark.skipif(not shipped_weights_path("base").is_file(), reason="no shipped base weights")
def test_shipped_base_weights_meet_the_1px_bar_on_cuda() -> None:
    p = _pair()
    m = xgeo.load_matcher(orientation_search=False, preset="base")
    assert m.describe()["preset"] == "base"
    assert _corner_error(m.match(p.img0, p.img1), p) < 1.0
