"""Training smoke tests: the loss falls on generated data and checkpoints round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training import train as T
from training.losses import coarse_focal_loss, fine_l2_loss
from training.supervision import coarse_truth
from xgeo.matcher.config import get_config
from xgeo.matcher.model import UniversalMatcherNet
from xgeo.matcher.weights import build_model

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny.yaml"


def _pairs(n: int, size: int = 128) -> list:
    from xgeo.synth import make_pair

    return [make_pair(123 + k, size=size, mod0="optical", mod1="optical", max_rotation_deg=10.0,
                      scale_range=(0.9, 1.1), local_distortion=False) for k in range(n)]


def test_coarse_truth_matches_flow() -> None:
    # a pure translation by (16, 8) px: cell (x, y) -> cell (x + 2, y + 1)
    h = w = 64
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = torch.from_numpy(np.stack([xs + 16, ys + 8], -1))[None]
    valid = torch.ones(1, h, w, dtype=torch.bool)
    gt = coarse_truth(flow, valid, (h, w))
    i_x, i_y = gt.i_ids % 8, gt.i_ids // 8
    j_x, j_y = gt.j_ids % 8, gt.j_ids // 8
    assert len(gt.i_ids) == 6 * 7  # cells whose image lands inside image 1
    assert ((j_x - i_x) == 2).all() and ((j_y - i_y) == 1).all()
    assert gt.unique.all()
    torch.testing.assert_close(gt.target1[0], torch.tensor([3.5 + 16 + 8 * float(i_x[0]), 3.5 + 8 + 8 * float(i_y[0])]))


def test_losses_behave() -> None:
    conf = torch.full((1, 4, 4), 0.01)
    b, i, j = torch.tensor([0]), torch.tensor([1]), torch.tensor([2])
    bad = coarse_focal_loss(conf, b, i, j)
    conf2 = conf.clone()
    conf2[0, 1, 2] = 0.9
    assert coarse_focal_loss(conf2, b, i, j) < bad
    assert fine_l2_loss(torch.zeros(3, 2), torch.zeros(3, 2)) < 1e-2
    assert fine_l2_loss(torch.zeros(0, 2), torch.zeros(0, 2)) == 0


def test_loss_falls_on_generated_data() -> None:
    torch.manual_seed(0)
    net = UniversalMatcherNet(get_config("tiny"))
    batch = T.make_batch(_pairs(2))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        loss, sc = T.compute_loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(sc["loss"])
        assert sc["n_gt"] > 50
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses


def test_train_checkpoint_resume_and_export(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = T.load_config(TINY, max_steps=3, out_dir=str(out), workers=0, val_every_steps=100,
                        log_every_steps=1, threads=0)
    cfg.data.update(size=128, val_pairs=2, val_size=128)
    summary = T.train(cfg, quiet=True)
    assert summary["steps"] == 3
    for f in ("last.pt", "best.safetensors", "best.json", "log.jsonl", "config.json"):
        assert (out / f).is_file(), f
    recs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in recs) and any("val" in r for r in recs)
    # resume continues from step 3
    cfg2 = T.load_config(TINY, max_steps=5, out_dir=str(out), workers=0, val_every_steps=100,
                         log_every_steps=1, threads=0)
    cfg2.data.update(size=128, val_pairs=2, val_size=128)
    assert T.train(cfg2, resume=True, quiet=True)["steps"] == 5
    # export -> shipped-style weights load bit-exactly
    from training.export import export

    ck = torch.load(out / "last.pt", weights_only=True)
    w = export(out / "last.pt", tmp_path / "weights")
    net = build_model(w)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, ck["model"][k])
    card = json.loads(w.with_suffix(".json").read_text())
    assert card["steps"] == 5 and card["preset"] == "tiny" and card["n_parameters"] > 10_000
    assert card["train_config_sha256"] == T.config_sha256(cfg2)


def test_unknown_config_section(tmp_path: Path) -> None:
    from xgeo.errors import ConfigError

    p = tmp_path / "bad.yaml"
    p.write_text("data: {}\nmodel: {}\noptim: {}\n")
    with pytest.raises(ConfigError):
        T.load_config(p)


def _one_step_stage(out: Path) -> Path:
    """A first stage of one step on 128 px pairs (its run folder)."""
    cfg = T.load_config(TINY, max_steps=1, out_dir=str(out), workers=0, val_every_steps=100,
                        log_every_steps=1, threads=0)
    cfg.data.update(size=128, val_pairs=1, val_size=128)
    T.train(cfg, quiet=True)
    return out


def test_second_stage_starts_from_first_and_card_carries_fine_readout(tmp_path: Path) -> None:
    import xgeo
    from training.export import export

    first = _one_step_stage(tmp_path / "stage1")
    w1 = dict(build_model(first / "best.safetensors").named_parameters())
    # stage 2 at lr 0 from stage 1's best weights: its parameters are stage 1's (norm running
    # statistics still move in train mode)
    second = tmp_path / "stage2"
    cfg2 = T.load_config(TINY, max_steps=1, out_dir=str(second), workers=0, val_every_steps=100,
                         log_every_steps=1, threads=0, lr=0.0, warmup_steps=0,
                         init_from=str(first / "best.safetensors"), fine_local=2)
    cfg2.data.update(size=128, val_pairs=1, val_size=128)
    T.train(cfg2, quiet=True)
    ck = torch.load(second / "last.pt", weights_only=True)
    for k, v in w1.items():
        torch.testing.assert_close(ck["model"][k], v.detach())
    w = export(second / "last.pt", tmp_path / "weights")
    assert json.loads(w.with_suffix(".json").read_text())["inference"]["fine_local"] == 2
    assert xgeo.load_matcher("universal", weights=str(w)).describe()["fine_local"] == 2
    assert xgeo.load_matcher("universal", weights=str(w), fine_local=0).describe()["fine_local"] == 0
    bad = T.load_config(TINY, init_from=str(tmp_path / "missing.safetensors"), out_dir=str(second))
    with pytest.raises(T.ConfigError, match="init_from"):
        T.train(bad, quiet=True)


def test_trainable_trains_the_fine_stage_alone(tmp_path: Path) -> None:
    # train.trainable: the named parts move, everything else (BatchNorm statistics included)
    # stays bit-exactly as initialised
    first = _one_step_stage(tmp_path / "stage1")
    before = build_model(first / "best.safetensors").state_dict()
    second = tmp_path / "fine"
    cfg2 = T.load_config(TINY, max_steps=4, out_dir=str(second), workers=0, val_every_steps=2,
                         log_every_steps=1, threads=0, lr=1e-2, warmup_steps=0,
                         init_from=str(first / "best.safetensors"),
                         trainable=["fpn", "fine_scale"])
    cfg2.data.update(size=128, val_pairs=1, val_size=128)
    T.train(cfg2, quiet=True)
    after = torch.load(second / "last.pt", weights_only=True)["model"]
    moved = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert moved and all(k.startswith(("fpn.", "fine_scale")) for k in moved), sorted(moved)[:5]
    assert any(k.startswith("fpn.") for k in moved)
    bad = T.load_config(TINY, out_dir=str(tmp_path / "bad"), trainable=["decoder"])
    with pytest.raises(T.ConfigError, match="backbone"):
        T.train(bad, quiet=True)


@pytest.mark.parametrize("path", sorted((REPO / "training" / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    # a recipe in the repo must at least parse, name a preset and, where it freezes parts, name
    # parts that exist
    cfg = T.load_config(path)
    mcfg = dict(cfg.model)
    net = UniversalMatcherNet(get_config(mcfg.pop("preset", "tiny"), **mcfg))
    frozen = T._freeze(net, cfg.train.get("trainable"))
    assert any(q.requires_grad for q in net.parameters())
    assert bool(frozen) == ("trainable" in cfg.train)
    assert set(cfg.data.get("modalities", [])) <= {"optical", "thermal", "sar", "night", "dem",
                                                   "map", "depth"}
