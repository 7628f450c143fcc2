"""Which step of a run to ship: score every kept validation state on a large synthetic set.

    python -m training.select --run training/runs/tiny_v2_steps [--pairs 96] \
        [--real-per-type 8] [--out training/runs/tiny_v2_steps/select.json] [--resume]

A run trained with ``train.keep_val_weights: true`` leaves ``val/step_NNNNN.safetensors`` at
every validation. The in-training validation (16 pairs, one threshold) moves in steps of 1/16
and picked noise; this scores each state on ``--pairs`` synthetic pairs drawn from seeds
70,000,000+ (disjoint from training, the in-training validation at 900,000+, the threshold pick
of ``training.export`` at 60,000,000+ and the synthetic test suite at 50,000,000+), at each
candidate coarse threshold, and ranks states by SR@10 at their best threshold (ties: AUC@10).
The choice uses synthetic data only. ``--masked`` scores each state on masked copies of the
pairs as well (one side losing 30-75 % of its pixels to blob-shaped regions, filled as inference
fills them): real inputs arrive with masked clouds and nodata, which clean pairs never test.

``--real-per-type K`` additionally measures every state on the first K pairs of each real pair
type (the universal matcher with its inference defaults, at the state's chosen threshold). That
is a study of how well the synthetic score predicts real-data quality (rank correlation), not a
selection: choosing on the real suite would be choosing on the test set. Writes a JSON and a
PNG of the scores against the step.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xgeo.errors import ConfigError

__all__ = ["SELECT_SEED", "rank_correlation", "score_state", "select", "selection_pairs"]

SELECT_SEED = 70_000_000
THRESHOLDS = (0.005, 0.02, 0.05)


def selection_pairs(n: int, size: int = 256, seed: int = SELECT_SEED, masked: bool = False
                    ) -> list[Any]:
    """``n`` synthetic pairs near the training distribution: rotation <= 45 deg, scale 0.6-1.7
    (a little wider than training's 0.7-1.4, as the threshold pick of ``training.export``).

    With ``masked``, ``n`` more: the same pairs with one side losing 30-75 % of its pixels to
    blob-shaped masked regions (clouds, voids) and image 1's outside, all filled with the valid
    mean as inference fills them (:func:`training.augment.augment_pair`; the truth loses them).
    """
    import dataclasses

    from training.augment import AugmentConfig, augment_pair
    from xgeo.synth import make_pair

    pairs = [make_pair(seed + k, size=size, max_rotation_deg=45.0, scale_range=(0.6, 1.7))
             for k in range(n)]
    if not masked:
        return pairs
    cfg = AugmentConfig(fill="mean", fill_outside=True, holes=1.0, hole_share=(0.3, 0.75))
    out = list(pairs)
    for p in pairs:
        img0, img1, valid0 = augment_pair(p.img0, p.img1, p.flow_0to1, p.valid0,
                                          np.random.default_rng(p.seed), cfg, p.valid1)
        out.append(dataclasses.replace(p, img0=img0, img1=img1, valid0=valid0))
    return out


def score_state(path: str | Path, pairs: list[Any], fine_local: int = 0,
                thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, Any]:
    """Validate one weights file at each threshold; the best threshold by (SR@10, AUC@10).

    Returns:
        ``{"threshold", "sr10", "auc10", "precision3", "by_threshold": {t: metrics}}``.
    """
    from training.train import validate
    from xgeo.matcher.weights import build_model

    net = build_model(path).eval()
    table = {str(t): validate(net, pairs, threshold=t, fine_local=fine_local) for t in thresholds}
    best = max(thresholds, key=lambda t: (table[str(t)]["sr10"], table[str(t)]["auc10"]))
    m = table[str(best)]
    return {"threshold": best, "sr10": m["sr10"], "auc10": m["auc10"],
            "precision3": m["precision3"], "by_threshold": table}


def rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman's rho (average ranks for ties); NaN with fewer than 3 points or a constant side."""
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _real_sr10(path: Path, threshold: float, fine_local: int, per_type: int,
               real_root: str | Path) -> dict[str, Any]:
    from training.eval import run_eval

    res = run_eval(suites=("real",), methods=("universal",), n_real=per_type, real_root=real_root,
                   weights=str(path), fine_local=fine_local, threshold=threshold,
                   progress=False)["real"]
    return {"sr10": res["overall"]["universal"]["sr10"], "auc10": res["overall"]["universal"]["auc10"],
            "per_type": {t: v["universal"]["sr10"] for t, v in res["per_type"].items()}}


def select(run: str | Path, n_pairs: int = 96, real_per_type: int = 0,
           real_root: str | Path | None = None, out: str | Path | None = None,
           threads: int = 2, progress: bool = True, size: int = 256,
           resume: bool = False, masked: bool = False) -> dict[str, Any]:
    """Score every ``val/step_*.safetensors`` of ``run``; see the module docstring.

    With ``resume``, states already scored in ``out`` with the same settings are not scored
    again (a run still training can be scored as its states appear).

    Raises:
        ConfigError: the run has no kept validation states.
    """
    from rich.progress import track

    from training.eval import DEFAULT_REAL

    run = Path(run)
    states = sorted((run / "val").glob("step_*.safetensors"))
    if not states:
        raise ConfigError(f"{run}/val: no kept validation weights. Hint: train with "
                          "train.keep_val_weights: true (e.g. training/configs/tiny_v2_steps.yaml)")
    torch.set_num_threads(threads)
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    fine_local = int(cfg.get("train", {}).get("fine_local", 0))
    in_training = {}
    if (run / "log.jsonl").is_file():
        for line in (run / "log.jsonl").read_text().splitlines():
            r = json.loads(line)
            if "score" in r:
                in_training[int(r["step"])] = float(r["score"])
    pairs = selection_pairs(n_pairs, size, masked=masked)
    done: dict[str, dict[str, Any]] = {}
    if resume and out and Path(out).is_file():  # rows of an earlier call with the same settings
        prev = json.loads(Path(out).read_text())
        if (prev.get("pairs"), prev.get("size"), prev.get("real_per_type", 0),
                prev.get("masked", False)) == (n_pairs, size, real_per_type, masked):
            done = {r["file"]: r for r in prev.get("rows", [])}
    rows = []
    for p in track(states, description="scoring states", disable=not progress):
        if str(p) in done:
            rows.append(done[str(p)])
            continue
        step = int(p.stem.split("_")[1])
        row: dict[str, Any] = {"step": step, "file": str(p), **score_state(p, pairs, fine_local)}
        if real_per_type:
            row["real"] = _real_sr10(p, row["threshold"], fine_local, real_per_type,
                                     real_root or DEFAULT_REAL)
        rows.append(row)
        if out:  # partial results, resumable
            Path(out).write_text(json.dumps({"pairs": n_pairs, "size": size, "masked": masked,
                                             "real_per_type": real_per_type, "rows": rows}, indent=2))
    for r in rows:
        r["in_training_score"] = in_training.get(int(r["step"]))
    chosen = max(rows, key=lambda r: (r["sr10"], r["auc10"]))
    old = [r for r in rows if r["in_training_score"] is not None]
    res: dict[str, Any] = {
        "run": str(run), "pairs": n_pairs, "size": size, "masked": masked,
        "real_per_type": real_per_type,
        "seed": SELECT_SEED, "fine_local": fine_local,
        "chosen": {"step": chosen["step"], "file": chosen["file"], "threshold": chosen["threshold"]},
        "in_training_choice": max(old, key=lambda r: r["in_training_score"])["step"] if old else None,
        "rows": rows,
    }
    if real_per_type:
        real = [r["real"]["sr10"] for r in rows]
        res["rho_select_vs_real"] = rank_correlation([r["sr10"] + 1e-3 * r["auc10"] for r in rows], real)
        if old:
            res["rho_in_training_vs_real"] = rank_correlation(
                [r["in_training_score"] for r in old], [r["real"]["sr10"] for r in old])
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(res, indent=2))
        plot_selection(res, Path(out).with_suffix(".png"))
    return res


def plot_selection(res: dict[str, Any], path: Path) -> Path:
    """Scores against the step: selection SR@10 / AUC@10, in-training score, real SR@10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["sr10"] for r in rows], "o-", label=f"synthetic SR@10 ({res['pairs']} pairs)")
    ax.plot(steps, [r["auc10"] for r in rows], "o--", label="synthetic AUC@10")
    old = [(r["step"], r["in_training_score"]) for r in rows if r["in_training_score"] is not None]
    if old:
        ax.plot([o[0] for o in old], [o[1] for o in old], "s:", color="grey",
                label="in-training score (16 pairs)")
    if res.get("real_per_type"):
        ax.plot(steps, [r["real"]["sr10"] for r in rows], "^-", color="black",
                label=f"real SR@10 ({res['real_per_type']} per type; study only)")
    ax.axvline(res["chosen"]["step"], color="tab:green", lw=1, label="chosen (synthetic)")
    ax.set_xlabel("step")
    ax.set_ylabel("score")
    ax.legend(fontsize=7)
    ax.set_title(Path(res["run"]).name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.select", description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="run directory with val/step_*.safetensors")
    ap.add_argument("--pairs", type=int, default=96, help="synthetic selection pairs")
    ap.add_argument("--real-per-type", type=int, default=0,
                    help="also measure K real pairs per type (a study of the proxy, not a selection)")
    ap.add_argument("--real-root", default=None, help="shared/data/real folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON path (a PNG is written beside it)")
    ap.add_argument("--masked", action="store_true",
                    help="score on the pairs and on masked copies of them (30-75 %% of one side "
                         "lost to blob-shaped masked regions, filled as inference fills them)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows of states already scored in --out with the same settings")
    a = ap.parse_args(argv)
    out = a.out or str(Path(a.run) / "select.json")
    res = select(a.run, a.pairs, a.real_per_type, a.real_root, out, a.threads, resume=a.resume,
                 masked=a.masked)
    for r in res["rows"]:
        real = f"  real {r['real']['sr10']:.2f}" if "real" in r else ""
        old = r["in_training_score"]
        print(f"step {r['step']:5d}  synthetic SR@10 {r['sr10']:.3f} AUC@10 {r['auc10']:.3f} "
              f"(t={r['threshold']})  in-training {old if old is None else round(old, 3)}{real}")
    print(f"chosen: step {res['chosen']['step']} (in-training rule: {res['in_training_choice']})")
    for k in ("rho_select_vs_real", "rho_in_training_vs_real"):
        if k in res:
            print(f"{k}: {res[k]:.2f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
