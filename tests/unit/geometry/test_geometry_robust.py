"""Robust fitting and per-tile filtering with 30 % gross outliers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from geometry_synth import TRUTHS, check_grid, make_tiepoints

from xgeo.errors import ConfigError, RegistrationError
from xgeo.geometry import USAC_METHOD, filter_tile_matches, robust_fit


def test_usac_magsac_used_when_available() -> None:
    if hasattr(cv2, "USAC_MAGSAC"):
        assert USAC_METHOD == cv2.USAC_MAGSAC


@pytest.mark.parametrize(("truth", "kind", "tol"), [
    ("shift", "shift", 0.1), ("affine", "affine", 0.1), ("poly2", "poly2", 0.1),
    ("poly2", "poly3", 0.15), ("bumps", "tps", 0.3), ("affine", "tps", 0.3),
])
def test_robust_fit__synthetic(truth: str, kind: str, tol: float) -> None:
    tp = make_tiepoints(TRUTHS[truth], n=3000, noise=0.2, outlier_frac=0.3, seed=11)
    m, inl = robust_fit(tp.src, tp.dst, kind, threshold=3.0)
    g = check_grid()
    err = np.linalg.norm(m(g) - TRUTHS[truth](g), axis=1)
    assert err.max() < tol, f"{kind} on {truth}: max {err.max():.3f} px"
    assert inl[~tp.outlier].mean() > 0.99  # true tie points kept
    assert inl[tp.outlier].mean() < 0.01  # gross outliers flagged
    res = np.linalg.norm(tp.dst - m(tp.src), axis=1)[inl]
    assert np.sqrt(np.mean(res**2)) < 0.35  # ~ noise (0.2 px per axis -> 0.28 px norm)


def test_robust_linear_fails_on_strongly_nonlinear_truth() -> None:
    """An affine model cannot explain the bumps: it loses many true tie points."""
    tp = make_tiepoints(TRUTHS["bumps"], n=3000, noise=0.2, outlier_frac=0.3, seed=11)
    _, inl = robust_fit(tp.src, tp.dst, "affine", threshold=1.0)
    assert inl[~tp.outlier].mean() < 0.8


def test_robust_fit_deterministic_and_weights() -> None:
    tp = make_tiepoints(TRUTHS["affine"], n=2000, seed=3)
    a = robust_fit(tp.src, tp.dst, "affine", seed=7)
    b = robust_fit(tp.src, tp.dst, "affine", seed=7)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    m, _ = robust_fit(tp.src, tp.dst, "affine", weights=tp.confidence)
    g = check_grid()
    assert np.abs(m(g) - TRUTHS["affine"](g)).max() < 0.1


def test_robust_fit_errors() -> None:
    p = np.random.default_rng(0).uniform(0, 100, (8, 2))
    with pytest.raises(RegistrationError, match="need >= 10"):
        robust_fit(p, p, "poly3")
    with pytest.raises(ConfigError):
        robust_fit(p, p, "affine", threshold=0.0)
    with pytest.raises(ConfigError):
        robust_fit(p, p, "spline")


def _tile(n: int, outlier_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 512, (n, 2))
    dst = TRUTHS["affine"](src)
    dst += rng.normal(0, 0.3, dst.shape)
    k = int(outlier_frac * n)
    dst[:k] = rng.uniform(0, 512, (k, 2))
    return src, dst


def test_filter_tile_matches_ok() -> None:
    src, dst = _tile(200, 0.3, 0)
    mask, status = filter_tile_matches(src, dst, threshold=2.0)
    assert status == "ok"
    assert mask[60:].mean() > 0.98 and mask[:60].mean() < 0.05


def test_filter_tile_matches_small_tile_uses_shift() -> None:
    src, dst = _tile(9, 0.0, 1)
    dst = src + [1.0, 2.0]
    dst[0] += 40
    mask, status = filter_tile_matches(src, dst)
    assert status == "ok" and mask.sum() == 8 and not mask[0]


def test_filter_tile_matches_statuses() -> None:
    src, dst = _tile(5, 0.0, 2)
    mask, status = filter_tile_matches(src, dst)
    assert status == "too_few_matches" and not mask.any()
    rng = np.random.default_rng(3)
    src, dst = rng.uniform(0, 512, (300, 2)), rng.uniform(0, 512, (300, 2))
    mask, status = filter_tile_matches(src, dst, threshold=3.0)
    assert status == "no_consensus" and not mask.any()
