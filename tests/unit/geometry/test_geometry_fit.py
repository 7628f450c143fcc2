"""Least-squares fitting of every kind."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_synth import TRUTHS, check_grid, make_tiepoints

from xgeo.errors import ConfigError, RegistrationError, ShapeError
from xgeo.geometry import fit_model, thin_to_grid


@pytest.mark.parametrize(("truth", "kind", "tol"), [
    ("shift", "shift", 1e-9), ("affine", "affine", 1e-8), ("poly2", "poly2", 1e-7),
    ("poly2", "poly3", 1e-7), ("bumps", "tps", 0.1),
])
def test_fit_model_noiseless__synthetic(truth: str, kind: str, tol: float) -> None:
    tp = make_tiepoints(TRUTHS[truth], n=3000, noise=0.0, outlier_frac=0.0, seed=1)
    m = fit_model(tp.src, tp.dst, kind)
    g = check_grid()
    err = np.linalg.norm(m(g) - TRUTHS[truth](g), axis=1).max()
    assert err < tol, f"{kind} on {truth}: {err:.3g} px"


def test_weights_zero_ignores_points() -> None:
    tp = make_tiepoints(TRUTHS["affine"], n=500, noise=0.0, outlier_frac=0.3, seed=2)
    w = (~tp.outlier).astype(float)
    m = fit_model(tp.src, tp.dst, "affine", weights=w)
    g = check_grid()
    assert np.abs(m(g) - TRUTHS["affine"](g)).max() < 1e-8
    m_bad = fit_model(tp.src, tp.dst, "affine")
    assert np.abs(m_bad(g) - TRUTHS["affine"](g)).max() > 0.5


def test_tps_thins_many_points_to_cells() -> None:
    tp = make_tiepoints(TRUTHS["bumps"], n=100_000, noise=0.2, outlier_frac=0.0, seed=5)
    m = fit_model(tp.src, tp.dst, "tps", max_nodes=400)
    assert 300 <= len(m.nodes) <= 450
    g = check_grid()
    assert np.linalg.norm(m(g) - TRUTHS["bumps"](g), axis=1).max() < 0.15
    m2 = fit_model(tp.src, tp.dst, "tps", cell_size=1000.0)
    assert len(m2.nodes) == 16


def test_thin_to_grid_means() -> None:
    src = np.array([[0.5, 0.5], [1.5, 0.5], [10.5, 0.5]])
    dst = src + [[1, 0], [3, 0], [5, 5]]
    s, d, w = thin_to_grid(src, dst, np.ones(3), cell=5.0)
    order = np.argsort(s[:, 0])
    np.testing.assert_allclose(s[order], [[1.0, 0.5], [10.5, 0.5]])
    np.testing.assert_allclose((d - s)[order], [[2.0, 0.0], [5.0, 5.0]])
    np.testing.assert_allclose(w[order], [2, 1])


def test_fit_errors() -> None:
    p = np.random.default_rng(0).uniform(0, 100, (20, 2))
    with pytest.raises(ConfigError, match="unknown model kind"):
        fit_model(p, p, "homography")
    with pytest.raises(ConfigError, match="unknown option"):
        fit_model(p, p, "affine", smoothing=1.0)
    with pytest.raises(RegistrationError, match="need >= 10"):
        fit_model(p[:5], p[:5], "poly3")
    with pytest.raises(ShapeError):
        fit_model(p, p[:10], "shift")
    line = np.stack([np.arange(20.0), np.zeros(20)], 1)
    with pytest.raises(RegistrationError, match="collinear"):
        fit_model(line, line, "affine")
