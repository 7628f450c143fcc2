"""Step selection: kept validation states are scored on synthetic pairs and one is chosen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training import train as T
from training.select import rank_correlation, select
from xgeo.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny.yaml"


def test_rank_correlation() -> None:
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation([1, 2, 3], [5, 5, 5]))
    assert np.isnan(rank_correlation([1, 2], [1, 2]))


def test_kept_states_are_scored_and_one_chosen(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = T.load_config(TINY, max_steps=2, out_dir=str(out), workers=0, val_every_steps=1,
                        log_every_steps=1, threads=0, keep_val_weights=True, fine_local=2)
    cfg.data.update(size=128, val_pairs=1, val_size=128)
    T.train(cfg, quiet=True)
    kept = sorted(p.name for p in (out / "val").glob("*.safetensors"))
    assert kept == ["step_00001.safetensors", "step_00002.safetensors"]
    res = select(out, n_pairs=2, out=tmp_path / "sel.json", threads=1, progress=False, size=128)
    assert [r["step"] for r in res["rows"]] == [1, 2]
    assert res["chosen"]["step"] in (1, 2) and res["in_training_choice"] in (1, 2)
    for r in res["rows"]:
        assert set(r["by_threshold"]) == {"0.005", "0.02", "0.05"}
        assert r["threshold"] in (0.005, 0.02, 0.05) and 0.0 <= r["auc10"] <= 1.0
        assert r["in_training_score"] is not None
    assert json.loads((tmp_path / "sel.json").read_text())["chosen"] == res["chosen"]
    assert (tmp_path / "sel.png").stat().st_size > 1000
    # a kept state exports with its run's recipe (config.json lies one level up)
    from training.export import export

    card = json.loads(export(out / "val" / "step_00002.safetensors", tmp_path / "w")
                      .with_suffix(".json").read_text())
    assert card["steps"] == 2 and card["inference"]["fine_local"] == 2
    assert card["train_config"]["train"]["keep_val_weights"] is True


def test_run_without_kept_states_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(ConfigError, match="keep_val_weights"):
        select(tmp_path / "run", n_pairs=1, progress=False)


def test_masked_selection_pairs_are_masked_copies() -> None:
    from training.select import selection_pairs

    clean = selection_pairs(2, size=96)
    both = selection_pairs(2, size=96, masked=True)
    assert len(both) == 4
    for c, m in zip(clean, both[2:], strict=True):
        assert m.seed == c.seed and np.array_equal(m.flow_0to1, c.flow_0to1)
        assert np.isfinite(m.img0).all() and np.isfinite(m.img1).all()  # filled as inference does
        # one side lost 30-75 % of its pixels: the supervision shrinks with it
        assert m.valid0.sum() < 0.8 * c.valid0.sum()
        assert m.valid0.sum() <= c.valid0.sum() and not (m.valid0 & ~c.valid0).any()
