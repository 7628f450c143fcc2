"""The MatchAnything-protocol metrics of training.eval behave on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from training.eval import auc, corner_error, evaluate, fit_affine, markdown_table, synthetic_suite


def test_corner_error_fit_and_auc() -> None:
    h = np.array([[0.98, -0.17, 12.0], [0.17, 0.98, -5.0], [0.0, 0.0, 1.0]])
    p0 = np.random.default_rng(0).uniform(0, 300, (40, 2))
    p1 = p0 @ h[:2, :2].T + h[:2, 2]
    assert corner_error(fit_affine(p0, p1), h, (320, 320)) < 1e-4
    shifted = fit_affine(p0, p1 + [3.0, 4.0])
    assert corner_error(shifted, h, (320, 320)) == pytest.approx(5.0, abs=1e-4)
    assert corner_error(None, h, (320, 320)) == float("inf")
    assert fit_affine(p0[:2], p1[:2]) is None
    assert auc([0.0, 0.0], 5) == pytest.approx(1.0) and auc([np.inf], 5) == 0.0
    assert auc([1.0, 4.0], 5) > auc([2.0, 4.5], 5) > 0.0


def test_evaluate_scores_a_perfect_and_a_blind_method() -> None:
    pairs = synthetic_suite(1, size=96, modalities=["optical", "sar"])
    assert len(pairs) == 4

    def perfect(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pr = next(p for p in pairs if p.img0 is a or np.array_equal(p.img0, a))
        p0 = np.random.default_rng(1).uniform(0, 95, (30, 2))
        q = np.c_[p0, np.ones(30)] @ pr.H_0to1.T
        return p0, q[:, :2] / q[:, 2:]

    def blind(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = np.random.default_rng(2)
        return g.uniform(0, 95, (30, 2)), g.uniform(0, 95, (30, 2))

    res = evaluate({"perfect": perfect, "blind": blind}, pairs, progress=False)
    assert res["overall"]["perfect"]["sr5"] == 1.0
    assert res["overall"]["blind"]["sr10"] < 0.5
    assert set(res["per_type"]) == {"optical-optical", "optical-sar", "sar-optical", "sar-sar"}
    assert "| ALL | perfect | 4 |" in markdown_table(res)
