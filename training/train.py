"""Train the universal matcher from synthetic data alone.

    python -m training.train --config training/configs/tiny_v2.yaml [--resume] [--max-steps N]

(``tiny_v2.yaml`` rebuilds the shipped tiny weights: it trains its first stage,
``tiny_long.yaml``, when that stage's weights are missing, then continues from them; the model
card names both configs.)

Every batch is generated on the fly by :func:`xgeo.synth.make_pair` (procedural world, modality
translators, geometric warp with exact flow). Coarse truth and fine targets come from the flow
(:mod:`training.supervision`); losses are in :mod:`training.losses`. The run directory holds
``log.jsonl`` (loss, lr, validation metrics), ``last.pt`` (model + optimiser, for ``--resume``;
loaded with ``weights_only=True``) and ``best.safetensors`` + ``best.json`` (best validation score);
with ``train.keep_val_weights`` also ``val/step_N.safetensors`` at every validation (scored by
``python -m training.select``).
The learning rate follows warmup + cosine over ``max(step / max_steps, elapsed / max_wall)``,
so a run that is cut by its wall-time budget still anneals.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from training.augment import AugmentConfig, augment_pair
from training.losses import coarse_focal_loss, coarse_nll_loss, fine_l2_loss, fine_window_ce
from training.supervision import coarse_truth
from xgeo.errors import ConfigError
from xgeo.matcher.config import get_config
from xgeo.matcher.model import UniversalMatcherNet
from xgeo.matcher.weights import save_weights

__all__ = ["TrainConfig", "load_config", "train", "config_sha256", "make_batch", "validate"]

_SECTIONS = {"data", "model", "train"}


@dataclass(frozen=True)
class TrainConfig:
    """A parsed training config (three sections, as in the YAML)."""

    data: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "model": self.model, "train": self.train}


def load_config(path: str | Path, **train_overrides: Any) -> TrainConfig:
    """Read a YAML training config; unknown sections raise :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: training config not found")
    raw = yaml.safe_load(p.read_text()) or {}
    unknown = sorted(set(raw) - _SECTIONS)
    if unknown:
        raise ConfigError(f"{p}: unknown sections {unknown}; allowed {sorted(_SECTIONS)}")
    tr = dict(raw.get("train", {}))
    tr.update({k: v for k, v in train_overrides.items() if v is not None})
    return TrainConfig(dict(raw.get("data", {})), dict(raw.get("model", {})), tr, str(p))


def config_sha256(cfg: TrainConfig) -> str:
    """Deterministic hash of the training recipe (data + model + train sections)."""
    d = cfg.to_dict()
    skip = ("out_dir", "device", "workers", "keep_val_weights")  # where and how, not what
    d = {**d, "train": {k: v for k, v in d["train"].items() if k not in skip}}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * min(max(t, 0.0), 1.0)


def _pair_params(data: dict[str, Any], step: int) -> dict[str, Any]:
    t = step / max(1, int(data.get("ramp_steps", 1)))
    r0, r1 = data.get("max_rotation_deg", [45.0, 45.0])
    s0 = data.get("scale_range_start", [0.5, 2.0])
    s1 = data.get("scale_range_end", [0.5, 2.0])
    return {
        "max_rotation_deg": _lerp(r0, r1, t),
        "scale_range": (_lerp(s0[0], s1[0], t), _lerp(s0[1], s1[1], t)),
        "local_distortion": bool(data.get("local_distortion", True)),
        "wilderness_share": float(data.get("wilderness_share", 0.0)),
        "dem_noise_share": float(data.get("dem_noise_share", 0.0)),
    }


def _make_pair(seed: int, size: int, **kw: Any) -> Any:
    from xgeo.synth import make_pair

    return make_pair(seed, size=size, **kw)


class SyntheticPairs(torch.utils.data.Dataset):
    """Map-style dataset: sample ``k`` is the pair of seed ``seed + k`` (deterministic).

    Items: ``img0 (1, S, S)``, ``img1 (1, S, S)``, ``flow (S, S, 2)``, ``valid0 (S, S)``.
    ``data.augment`` (optional) adds appearance augmentation (:mod:`training.augment`).
    """

    def __init__(self, data: dict[str, Any], seed: int, batch_size: int) -> None:
        self.data, self.seed, self.batch_size = data, seed, batch_size
        self.size = int(data.get("size", 256))
        aug = data.get("augment")
        self.augment = AugmentConfig.from_dict(aug) if aug is not None else None

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        step = k // self.batch_size
        rng = random.Random(self.seed * 10**7 + k)
        mods = list(self.data.get("modalities", [None]))
        anchor = float(self.data.get("optical_anchor_prob", 0.0))
        mod0, mod1 = rng.choice(mods), rng.choice(mods)
        t = step / max(1, int(self.data.get("ramp_steps", 1)))
        same = _lerp(*self.data.get("same_modality_prob", [0.0, 0.0]), t)
        if rng.random() < same:  # easy pairs first: same modality, different rendering
            mod1 = mod0
        elif rng.random() < anchor:  # one side optical, as in most real registrations
            mod0 = "optical"
            if rng.random() < 0.5:
                mod0, mod1 = mod1, mod0
        for attempt in range(5):
            pr = _make_pair(self.seed * 10**7 + k * 7 + attempt, self.size, mod0=mod0, mod1=mod1,
                            **_pair_params(self.data, step))
            if pr.valid0.mean() > 0.2:
                break
        if self.augment is not None:
            arng = np.random.default_rng([self.seed, k, 0xA46])
            img0, img1, valid = augment_pair(pr.img0, pr.img1, pr.flow_0to1, pr.valid0, arng,
                                             self.augment, pr.valid1)
        else:  # stages trained before data.augment existed: invalid = 0, no augmentation
            img0 = np.nan_to_num(np.asarray(pr.img0, np.float32), nan=0.0)
            img1 = np.nan_to_num(np.asarray(pr.img1, np.float32), nan=0.0)
            valid = np.asarray(pr.valid0, bool) & np.isfinite(pr.img0)
        return {
            "img0": torch.from_numpy(img0)[None],
            "img1": torch.from_numpy(img1)[None],
            "flow": torch.from_numpy(np.asarray(pr.flow_0to1, np.float32)),
            "valid0": torch.from_numpy(valid),
        }


def make_batch(pairs: list[Any]) -> dict[str, torch.Tensor]:
    """Stack :class:`xgeo.synth.Pair` objects into a training batch (for tests and validation)."""
    ds = SyntheticPairs({}, 0, 1)
    items = []
    for pr in pairs:
        img0 = np.nan_to_num(np.asarray(pr.img0, np.float32), nan=0.0)
        img1 = np.nan_to_num(np.asarray(pr.img1, np.float32), nan=0.0)
        items.append({
            "img0": torch.from_numpy(img0)[None],
            "img1": torch.from_numpy(img1)[None],
            "flow": torch.from_numpy(np.asarray(pr.flow_0to1, np.float32)),
            "valid0": torch.from_numpy(np.asarray(pr.valid0, bool) & np.isfinite(pr.img0)),
        })
    del ds
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def compute_loss(
    net: UniversalMatcherNet, batch: dict[str, torch.Tensor], fine_weight: float = 1.0,
    max_fine: int = 1024, generator: torch.Generator | None = None, fine_ce_weight: float = 0.0,
    coarse_loss: str = "focal", fine_local: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward one batch and return ``(loss, scalars)``.

    Args:
        net: the network (train mode).
        batch: ``img0 (B,1,H,W)``, ``img1 (B,1,H,W)``, ``flow (B,H,W,2)``, ``valid0 (B,H,W)``.
        fine_weight: weight of the fine loss.
        max_fine: cap on fine-supervised matches per batch (random subset).
        generator: RNG for the subset.
        fine_ce_weight: weight of the fine window cross-entropy (0 = off).
        coarse_loss: ``"focal"`` (LoFTR's) or ``"nll"`` (dual-softmax log-likelihood).
        fine_local: the fine position the L2 loss sees: 0 = whole-window expectation, r = the
            expectation around the window's peak (what the matcher's ``fine_local=r`` returns).
    """
    img0, img1 = batch["img0"], batch["img1"]
    feats = net.encode(img0, img1)
    gt = coarse_truth(batch["flow"], batch["valid0"], (img1.shape[2], img1.shape[3]))
    conf = net.confidence_matrix(feats)
    u = gt.unique
    coarse_fn = {"focal": coarse_focal_loss, "nll": coarse_nll_loss}[coarse_loss]
    loss_c = coarse_fn(conf, gt.b_ids[u], gt.i_ids[u], gt.j_ids[u])
    m = gt.b_ids.numel()
    idx = torch.randperm(m, generator=generator)[:max_fine] if m > max_fine else torch.arange(m)
    _, p1, prob = net.refine(feats, gt.b_ids[idx], gt.i_ids[idx], gt.j_ids[idx], fine_local)
    loss_f = fine_l2_loss(p1, gt.target1[idx])
    loss = loss_c + fine_weight * loss_f
    if fine_ce_weight > 0:
        loss_ce = fine_window_ce(prob, gt.target1[idx], gt.j_ids[idx], feats.hw1[1], net.cfg.fine_window)
        loss = loss + fine_ce_weight * loss_ce
    with torch.no_grad():
        fine_px = (p1 - gt.target1[idx]).norm(dim=-1).mean().item() if m else float("nan")
    return loss, {"loss": loss.item(), "loss_c": loss_c.item(), "loss_f": loss_f.item(),
                  "n_gt": int(u.sum()), "fine_px": fine_px}


@torch.no_grad()
def validate(net: UniversalMatcherNet, pairs: list[Any], threshold: float = 0.2,
             fine_local: int = 0) -> dict[str, float]:
    """Match fixed synthetic pairs; report precision, fine error and corner success.

    Metrics: ``n_matches`` (mean), ``precision3`` (matches within 3 px of truth), ``epe_px``
    (median error of matches within 8 px), ``sr10`` / ``sr5`` / ``auc10`` (affine-RANSAC corner
    error of the MatchAnything protocol against the pair's ``H_0to1``).
    """
    from training.eval import auc, corner_error, fit_affine

    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    n, prec, epe, errs = [], [], [], []
    for pr in pairs:
        b = make_batch([pr])
        r = net.match(b["img0"].to(dev), b["img1"].to(dev), threshold, fine_local=fine_local)
        p0, p1 = r.points0.float().cpu().numpy(), r.points1.float().cpu().numpy()
        n.append(len(p0))
        if len(p0):
            flow = np.asarray(pr.flow_0to1)
            xi = np.clip(np.round(p0[:, 0]).astype(int), 0, flow.shape[1] - 1)
            yi = np.clip(np.round(p0[:, 1]).astype(int), 0, flow.shape[0] - 1)
            true = flow[yi, xi] + (p0 - np.stack([xi, yi], -1))  # local translation approx.
            ok = np.asarray(pr.valid0)[yi, xi]
            e = np.linalg.norm(p1 - true, axis=-1)[ok]
            prec.append(float((e < 3).mean()) if len(e) else 0.0)
            if (e < 8).any():
                epe.append(float(np.median(e[e < 8])))
        else:
            prec.append(0.0)
        a = fit_affine(p0, p1)
        errs.append(corner_error(a, np.asarray(pr.H_0to1, np.float64), np.asarray(pr.img0).shape))
    net.train(was)
    errs_a = np.asarray(errs)
    return {
        "n_matches": float(np.mean(n)),
        "precision3": float(np.mean(prec)),
        "epe_px": float(np.median(epe)) if epe else float("nan"),
        "sr5": float((errs_a < 5).mean()),
        "sr10": float((errs_a < 10).mean()),
        "auc10": auc(errs_a, 10.0),
    }


def _lr_factor(progress: float, step: int, warmup: int) -> float:
    w = min(1.0, (step + 1) / max(1, warmup))
    return w * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _to(batch: dict[str, torch.Tensor], dev: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(dev, non_blocking=True) for k, v in batch.items()}


def resolve_config_path(path: str | Path) -> Path:
    """A config path as given, else relative to the repository root (how recipes name them)."""
    p = Path(path)
    return p if p.is_file() else Path(__file__).resolve().parents[1] / p


def _init_weights(tr: dict[str, Any]) -> Path | None:
    """The weights a run starts from: ``init_from`` (a ``.safetensors`` file) or the best
    weights of the ``init_from_config`` run, which is trained first when they are missing
    (so a two-stage recipe stays one command)."""
    if tr.get("init_from"):
        p = Path(tr["init_from"])
        if not p.is_file():
            raise ConfigError(f"init_from {p}: weights not found. Hint: train that run first "
                              "or point init_from at a .safetensors file")
        return p
    if tr.get("init_from_config"):
        first = load_config(resolve_config_path(tr["init_from_config"]))
        p = Path(first.train.get("out_dir", "training/runs/tiny")) / "best.safetensors"
        if not p.is_file():
            print(f"[init] {p} missing: training stage 1 ({first.source}) first", flush=True)
            train(first, resume=True)
        return p
    return None


def _freeze(net: nn.Module, trainable: Sequence[str] | None) -> list[nn.Module]:
    """``train.trainable``: train only the parameters whose names start with one of these
    prefixes (e.g. ``[fpn, fine_scale]``: the fine stage on a frozen encoder); None = all.

    Returns:
        the submodules left without a trainable parameter: they stay in eval mode during
        training (their BatchNorm statistics frozen too).

    Raises:
        ConfigError: a prefix that names no parameter, or one that leaves nothing to train.
    """
    if trainable is None:
        return []
    prefixes = [str(t) for t in ([trainable] if isinstance(trainable, str) else trainable)]
    names = [n for n, _ in net.named_parameters()]
    bad = [t for t in prefixes if not any(n.startswith(t) for n in names)]
    if bad or not prefixes:
        tops = sorted({n.split(".")[0] for n in names})
        raise ConfigError(f"train.trainable {bad or prefixes}: no parameter starts with that; "
                          f"the network's parts are {tops}")
    for n, q in net.named_parameters():
        q.requires_grad_(any(n.startswith(t) for t in prefixes))
    return [m for name, m in net.named_modules()
            if name and next(m.parameters(), None) is not None
            and not any(q.requires_grad for q in m.parameters())]


def _train_mode(net: nn.Module, frozen: Sequence[nn.Module]) -> None:
    """Training mode, except the frozen parts (see :func:`_freeze`)."""
    net.train()
    for m in frozen:
        m.eval()


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) training; returns a summary dict (steps, best metrics, paths).

    Raises:
        ConfigError: bad config values.
    """
    tr, data = cfg.train, cfg.data
    init = _init_weights(tr)  # first: an earlier stage trained here must not shift our seeds
    out = Path(tr.get("out_dir", "training/runs/tiny"))
    out.mkdir(parents=True, exist_ok=True)
    seed = int(tr.get("seed", 0))
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    if tr.get("threads"):
        torch.set_num_threads(int(tr["threads"]))
    dev = _device(str(tr.get("device", "auto")))
    mcfg = dict(cfg.model)
    net = UniversalMatcherNet(get_config(mcfg.pop("preset", "tiny"), **mcfg)).to(dev)
    frozen = _freeze(net, tr.get("trainable"))
    params = [q for q in net.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(tr.get("lr", 2e-3)),
                            weight_decay=float(tr.get("weight_decay", 0.01)))
    bs = int(tr.get("batch_size", 4))
    max_steps = int(tr.get("max_steps", 1000))
    max_wall = float(tr.get("max_wall_minutes", 1e9)) * 60
    step, elapsed0, best = 0, 0.0, -1.0
    last = out / "last.pt"
    if init is not None and not (resume and last.is_file()):
        from xgeo.matcher.weights import load_state

        sd, _ = load_state(init)
        net.load_state_dict(sd)
        if not quiet:
            print(f"[init] weights from {init}", flush=True)
    if resume and last.is_file():
        ck = torch.load(last, map_location=dev, weights_only=True)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed0, best = int(ck["step"]), float(ck["elapsed"]), float(ck["best"])
    sha = config_sha256(cfg)
    (out / "config.json").write_text(json.dumps({**cfg.to_dict(), "sha256": sha}, indent=2))
    val_pairs = [
        _make_pair(900_000 + k, int(data.get("val_size", 256)),
                   max_rotation_deg=float(data.get("val_max_rotation_deg", 45.0)),
                   scale_range=tuple(data.get("scale_range_end", [0.5, 2.0])),
                   local_distortion=bool(data.get("local_distortion", True)),
                   wilderness_share=float(data.get("wilderness_share", 0.0)))
        for k in range(int(data.get("val_pairs", 16)))
    ]
    ds = SyntheticPairs(data, seed, bs)
    sampler = range(step * bs, 10**9)
    workers = int(tr.get("workers", 0))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=bs, sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
        worker_init_fn=(lambda _: torch.set_num_threads(1)) if workers else None,
    )
    log = (out / "log.jsonl").open("a")
    t0 = time.time() - elapsed0
    gen = torch.Generator().manual_seed(seed + step)
    ckpt_every = float(tr.get("ckpt_every_minutes", 5)) * 60
    last_ckpt = time.time()
    val_every, log_every = int(tr.get("val_every_steps", 200)), int(tr.get("log_every_steps", 10))
    keep_val = bool(tr.get("keep_val_weights", False))
    warmup = int(tr.get("warmup_steps", 100))
    base_lr = float(tr.get("lr", 2e-3))
    hw = {"device": str(dev), "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
          "cuda": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}

    def save_last() -> None:
        tmp = out / "last.pt.tmp"
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": time.time() - t0, "best": best}, tmp)
        os.replace(tmp, last)

    from xgeo.synth import ENGINE_VERSION as engine_version

    def run_val() -> None:
        nonlocal best
        met = validate(net, val_pairs, fine_local=int(tr.get("fine_local", 0)))
        score = met["sr10"] + 0.5 * met["precision3"]
        rec = {"step": step, "elapsed_s": round(time.time() - t0, 1), "val": met, "score": score}
        if keep_val:  # every validated state, for studies of which step to ship
            (out / "val").mkdir(exist_ok=True)
            save_weights(net, out / "val" / f"step_{step:05d}.safetensors", {
                "steps": step, "train_config_sha256": sha, "hardware": hw,
                "data_engine_version": engine_version,
                "metrics": {"synthetic_val": met}, "elapsed_s": rec["elapsed_s"]})
        if score > best:
            best = score
            save_weights(net, out / "best.safetensors", {
                "steps": step, "train_config_sha256": sha, "hardware": hw,
                "data_engine_version": engine_version,
                "metrics": {"synthetic_val": met}, "elapsed_s": rec["elapsed_s"]})
            rec["best"] = True
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if not quiet:
            print(f"[val] step {step} {json.dumps(met)} score {score:.3f}{' *best*' if rec.get('best') else ''}", flush=True)

    _train_mode(net, frozen)
    agg: dict[str, float] = {}
    n_agg = 0
    it = iter(loader)
    tstep = time.time()
    while step < max_steps and time.time() - t0 < max_wall:
        batch = _to(next(it), dev)
        progress = max(step / max_steps, (time.time() - t0) / max_wall)
        lr = base_lr * _lr_factor(progress, step, warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss, sc = compute_loss(net, batch, float(tr.get("fine_weight", 1.0)),
                                    int(tr.get("max_fine_per_batch", 1024)), gen,
                                    float(tr.get("fine_ce_weight", 0.0)),
                                    str(tr.get("coarse_loss", "focal")),
                                    int(tr.get("fine_local", 0)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        for k, v in sc.items():
            agg[k] = agg.get(k, 0.0) + float(v)
        n_agg += 1
        if step % log_every == 0:
            rec = {"step": step, "lr": lr, "elapsed_s": round(time.time() - t0, 1),
                   "s_per_step": round((time.time() - tstep) / n_agg, 3),
                   **{k: round(v / n_agg, 4) for k, v in agg.items()}}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if not quiet:
                frac = max(step / max_steps, (time.time() - t0) / max_wall)
                bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
                print(f"[{bar}] step {step} loss {rec['loss']:.4f} (c {rec['loss_c']:.4f} f {rec['loss_f']:.3f}) "
                      f"fine {rec['fine_px']:.2f}px lr {lr:.2e} {rec['s_per_step']}s/step", flush=True)
            agg, n_agg, tstep = {}, 0, time.time()
        if step % val_every == 0:
            run_val()
            _train_mode(net, frozen)
        if time.time() - last_ckpt > ckpt_every:
            save_last()
            last_ckpt = time.time()
    run_val()
    save_last()
    log.close()
    return {"steps": step, "best_score": best, "out_dir": str(out), "elapsed_s": time.time() - t0,
            "train_config_sha256": sha}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--device", default=None)
    a = ap.parse_args(argv)
    cfg = load_config(a.config, max_steps=a.max_steps, out_dir=a.out_dir, device=a.device)
    print(json.dumps(train(cfg, resume=a.resume)))


if __name__ == "__main__":
    main()
