"""Export a training result as the package's shipped weights + model card.

    python -m training.export --ckpt training/runs/tiny/best.safetensors --out xgeo/matcher/weights/ \
        [--eval-json training/runs/tiny/eval.json]

Writes ``universal_<preset>.safetensors`` and ``universal_<preset>.json`` (preset, config,
parameter count, data-engine version, training-config hash, steps, hardware, training time,
metrics). ``--ckpt`` may be a run's ``best.safetensors`` (its ``best.json`` card is merged) or a
``last.pt`` resume checkpoint (read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from training.train import load_config, resolve_config_path
from xgeo.errors import WeightsError
from xgeo.matcher.config import get_config
from xgeo.matcher.model import UniversalMatcherNet
from xgeo.matcher.weights import build_model, read_card, save_weights

__all__ = ["export"]


def select_threshold(net: UniversalMatcherNet, n_pairs: int = 24, size: int = 256,
                     candidates: tuple[float, ...] = (0.0, 0.005, 0.02, 0.05, 0.1, 0.2),
                     fine_local: int = 0) -> dict[str, Any]:
    """Pick the coarse threshold with the best SR@10 (ties: precision) on held-out synthetic pairs.

    Uses seeds 60,000,000+ (neither training nor checkpoint-selection pairs); never real data.
    """
    from training.train import validate
    from xgeo.synth import make_pair

    pairs = [make_pair(60_000_000 + k, size=size, max_rotation_deg=45.0, scale_range=(0.6, 1.7))
             for k in range(n_pairs)]
    net = net.eval()
    table = {str(t): validate(net, pairs, threshold=t, fine_local=fine_local) for t in candidates}
    best = max(candidates, key=lambda t: (table[str(t)]["sr10"], table[str(t)]["precision3"]))
    return {"threshold": best, "fine_local": int(fine_local), "selection": table}


def _config_file(train_config: dict[str, Any], preset: str) -> str:
    """The ``training/configs/*.yaml`` whose ``out_dir`` is the run's (else ``<preset>.yaml``)."""
    import yaml

    out_dir = train_config.get("train", {}).get("out_dir")
    root = Path(__file__).parent / "configs"
    for f in sorted(root.glob("*.yaml")):
        try:
            if out_dir and yaml.safe_load(f.read_text()).get("train", {}).get("out_dir") == out_dir:
                return f"training/configs/{f.name}"
        except (yaml.YAMLError, AttributeError):
            continue
    return f"training/configs/{preset}.yaml"


def export(ckpt: str | Path, out_dir: str | Path, eval_json: str | Path | None = None,
           extra: dict[str, Any] | None = None, pick_threshold: bool = False,
           half: bool = False) -> Path:
    """Write shipped weights and model card from a run's checkpoint.

    Returns:
        path of the written ``.safetensors``.

    Raises:
        WeightsError: unreadable checkpoint.
    """
    ckpt = Path(ckpt)
    card: dict[str, Any] = {}
    if ckpt.suffix == ".safetensors":
        net = build_model(ckpt)
        card.update(read_card(ckpt))
    elif ckpt.suffix == ".pt":
        ck = torch.load(ckpt, map_location="cpu", weights_only=True)
        cfg_path = ckpt.parent / "config.json"
        model_cfg = dict(json.loads(cfg_path.read_text())["model"]) if cfg_path.is_file() else {}
        net = UniversalMatcherNet(get_config(model_cfg.pop("preset", "tiny"), **model_cfg))
        net.load_state_dict(ck["model"])
        card["steps"] = int(ck["step"])
        if "elapsed" in ck:
            card["elapsed_s"] = round(float(ck["elapsed"]), 1)
        best_card = ckpt.parent / "best.json"
        if best_card.is_file():  # same run, same machine
            card["hardware"] = json.loads(best_card.read_text()).get("hardware")
    else:
        raise WeightsError(f"{ckpt}: expected a .safetensors or a training .pt checkpoint")
    # the run's directory: a state kept at a validation (train.keep_val_weights) lies in val/
    run_dir = ckpt.parent.parent if ckpt.parent.name == "val" else ckpt.parent
    run_cfg = run_dir / "config.json"
    if run_cfg.is_file():
        rc = json.loads(run_cfg.read_text())
        card["train_config_sha256"] = rc.get("sha256", card.get("train_config_sha256"))
        card["train_config"] = {k: rc[k] for k in ("data", "model", "train") if k in rc}
    first = card.get("train_config", {}).get("train", {})
    if first.get("init_from") or first.get("init_from_config"):  # a later stage: name the first
        src = Path(first["init_from"]) if first.get("init_from") else Path(
            load_config(resolve_config_path(first["init_from_config"])).train.get("out_dir", "")
        ) / "best.safetensors"
        prev = read_card(src) if src.with_suffix(".json").is_file() else {}
        card["initialised_from"] = {
            "weights": str(src), "config": first.get("init_from_config"),
            **{k: prev[k] for k in ("steps", "elapsed_s", "data_engine_version",
                                    "train_config_sha256", "hardware") if k in prev}}
    if "data_engine_version" not in card:  # recorded by training runs since tiny_long
        try:
            from xgeo.synth import ENGINE_VERSION

            card["data_engine_version"] = str(ENGINE_VERSION)
        except ImportError:
            card["data_engine_version"] = "unknown"
    card["format"] = "safetensors"
    card["training_command"] = "python -m training.train --config " + _config_file(
        card.get("train_config", {}), net.cfg.preset)
    metrics = dict(card.get("metrics", {}))
    if eval_json:
        ev = json.loads(Path(eval_json).read_text())
        for suite in ("real", "synthetic"):
            if suite in ev:
                metrics[f"{suite}_eval"] = ev[suite]
    card["metrics"] = metrics
    card.update(extra or {})
    # the fine readout the run was trained (and validated) with becomes the inference default
    fine_local = int(card.get("train_config", {}).get("train", {}).get("fine_local", 0))
    if pick_threshold:
        card["inference"] = select_threshold(net, fine_local=fine_local)
    else:
        card.setdefault("inference", {})["fine_local"] = fine_local
    out = Path(out_dir) / f"universal_{net.cfg.preset}.safetensors"
    return save_weights(net, out, card, torch.float16 if half else None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", default="xgeo/matcher/weights/")
    ap.add_argument("--eval-json", default=None)
    ap.add_argument("--bench-json", default=None, help="bench_matcher.py --json output to include")
    ap.add_argument("--pick-threshold", action="store_true",
                    help="choose the inference threshold on held-out synthetic pairs")
    ap.add_argument("--half", action="store_true",
                    help="store the weights as float16 (half the file; loading casts to float32)")
    a = ap.parse_args(argv)
    extra = {"benchmark": json.loads(Path(a.bench_json).read_text())} if a.bench_json else None
    print(export(a.ckpt, a.out, a.eval_json, extra, a.pick_threshold, a.half))


if __name__ == "__main__":
    main()
