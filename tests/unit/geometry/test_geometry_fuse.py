"""Fusion of per-tile tie points: model choice, outliers, QA, failures, real tie points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from geometry_synth import TRUTHS, check_grid, make_tiepoints

from xgeo.errors import ConfigError, RegistrationError
from xgeo.geometry import FitResult, fuse

QA_KEYS = {
    "n_tiepoints", "n_inliers", "rmse_px", "ce90_px", "rmse_m", "ce90_m", "heldout_rmse_px",
    "model", "per_tile", "mean_dx_px", "mean_dy_px",
}


@pytest.mark.parametrize(("truth", "allowed", "tol"), [
    ("shift", {"shift"}, 0.1),
    ("affine", {"affine"}, 0.1),
    ("poly2", {"poly2"}, 0.1),
    ("bumps", {"tps"}, 0.3),
])
def test_fuse_auto__synthetic(truth: str, allowed: set[str], tol: float) -> None:
    tp = make_tiepoints(TRUTHS[truth], n=6000, noise=0.2, outlier_frac=0.3, seed=21)
    res = fuse(tp.src, tp.dst, tp.confidence, tp.tile_ids, kind="auto", pixel_size=10.0)
    assert isinstance(res, FitResult)
    assert res.qa["model"] in allowed, res.candidates
    g = check_grid()
    err = np.linalg.norm(res.model(g) - TRUTHS[truth](g), axis=1)
    assert err.max() < tol, f"{truth}: max {err.max():.3f} px"
    assert res.inliers[~tp.outlier].mean() > 0.98
    assert res.inliers[tp.outlier].mean() < 0.01
    qa = res.qa
    assert QA_KEYS <= set(qa)
    assert qa["n_tiepoints"] == 6000 and qa["n_inliers"] == int(res.inliers.sum())
    assert 0.2 < qa["rmse_px"] < 0.35 and qa["rmse_m"] == pytest.approx(10 * qa["rmse_px"])
    assert qa["ce90_px"] > qa["rmse_px"] and qa["ce90_m"] == pytest.approx(10 * qa["ce90_px"])
    assert 0.2 < qa["heldout_rmse_px"] < 0.45
    assert res.residuals_px.shape == (6000,)
    json.dumps(qa, allow_nan=False)
    json.dumps(res.candidates, allow_nan=False)
    assert set(res.candidates) == {"shift", "affine", "poly2", "poly3", "tps"}
    assert sum(c["chosen"] for c in res.candidates.values()) == 1


def test_fuse_auto_prefers_linear_and_reports_linear_terms() -> None:
    tp = make_tiepoints(TRUTHS["affine"], n=4000, seed=5)
    res = fuse(tp.src, tp.dst, None, tp.tile_ids)
    assert res.qa["model"] == "affine"
    lin = res.qa["linear"]
    assert lin["rotation_deg"] == pytest.approx(0.5, abs=0.002)
    assert lin["scale_x"] == pytest.approx(1.003, abs=2e-5)
    # the non-linear candidates were not meaningfully better out of sample
    c = res.candidates
    assert c["tps"]["heldout_rmse_px"] >= 0.95 * c["affine"]["heldout_rmse_px"]
    assert c["shift"]["heldout_rmse_px"] > 5 * c["affine"]["heldout_rmse_px"]


def test_fuse_fixed_kind_and_mean_shift() -> None:
    tp = make_tiepoints(TRUTHS["shift"], n=3000, seed=6)
    res = fuse(tp.src, tp.dst, tp.confidence, tp.tile_ids, kind="shift", pixel_size=30.0)
    assert res.qa["model"] == "shift" and set(res.candidates) == {"shift"}
    assert res.qa["mean_dx_px"] == pytest.approx(3.4, abs=0.02)
    assert res.qa["mean_dy_px"] == pytest.approx(-2.7, abs=0.02)
    assert res.qa["linear"]["shift_x"] == pytest.approx(3.4, abs=0.02)


def test_fuse_per_tile_statuses() -> None:
    tp = make_tiepoints(TRUTHS["affine"], n=4000, seed=8)
    src, dst, tiles = tp.src.copy(), tp.dst.copy(), tp.tile_ids.copy()
    rng = np.random.default_rng(0)
    bad = tiles == "r3c3"  # a tile of pure garbage matches
    dst[bad] = rng.uniform(1500, 2000, (int(bad.sum()), 2))
    few = np.flatnonzero(tiles == "r0c0")[3:]  # a tile with 3 matches left
    keep = np.ones(len(src), bool)
    keep[few] = False
    src, dst, tiles = src[keep], dst[keep], tiles[keep]
    res = fuse(src, dst, None, tiles, kind="affine")
    pt = res.qa["per_tile"]
    assert len(pt) == 64 and res.qa["n_tiles"] == 64
    assert pt["r3c3"]["status"] == "no_consensus" and pt["r3c3"]["n_inliers"] == 0
    assert pt["r0c0"]["status"] == "too_few_matches" and pt["r0c0"]["n"] == 3
    assert pt["r0c0"]["n_inliers"] >= 2  # unverified points join when the global model agrees
    assert pt["r5c5"]["status"] == "ok" and pt["r5c5"]["rmse_px"] < 0.4
    assert res.qa["n_tiles_ok"] == 62
    assert {"n", "n_inliers", "rmse_px", "status"} == set(pt["r5c5"])


def test_fuse_many_points() -> None:
    """200k tie points (about 140k inliers); timings are reported by the benchmark, not here."""
    tp = make_tiepoints(TRUTHS["affine"], n=200_000, seed=9)
    res = fuse(tp.src, tp.dst, tp.confidence, tp.tile_ids, kind="auto")
    g = check_grid()
    assert res.qa["model"] == "affine"
    assert np.abs(res.model(g) - TRUTHS["affine"](g)).max() < 0.02
    assert res.inliers[~tp.outlier].mean() > 0.99


def test_fuse_too_few_points_raises() -> None:
    tp = make_tiepoints(TRUTHS["shift"], n=5, outlier_frac=0.0, seed=1)
    with pytest.raises(RegistrationError, match="Hint"):
        fuse(tp.src, tp.dst, None, ["t0"] * 5)
    rng = np.random.default_rng(0)
    src, dst = rng.uniform(0, 4000, (400, 2)), rng.uniform(0, 4000, (400, 2))
    with pytest.raises(RegistrationError, match="no_consensus"):
        fuse(src, dst, None, np.repeat(np.arange(4), 100))


def test_fuse_bad_options() -> None:
    tp = make_tiepoints(TRUTHS["shift"], n=100, seed=1)
    with pytest.raises(ConfigError):
        fuse(tp.src, tp.dst, None, tp.tile_ids, kind="homography")
    with pytest.raises(ConfigError):
        fuse(tp.src, tp.dst, None, tp.tile_ids, pixel_size=0.0)


def _read_cp(path: Path) -> tuple[np.ndarray, np.ndarray]:
    a = np.loadtxt(path) - 1.0  # MATLAB 1-based -> 0-based
    return a[:, 0:2], a[:, 2:4]


def test_fuse_real_tiepoints_with_injected_warp(real_data: Path) -> None:
    """CFOG optical-SAR tie points (real matching scatter) + a known affine + 30 % outliers."""
    ref_pts, sar_pts = _read_cp(real_data / "cfog_geotiff/optical-sar_utm33/visibleToSAR2_CP.txt")
    # frame: SAR is the moving image, optical the reference
    clean = fuse(sar_pts, ref_pts, None, np.zeros(len(ref_pts), int), kind="affine",
                 pixel_size=3.5)
    assert 0.5 < clean.qa["rmse_px"] < 1.2  # README: affine fit RMSE about 0.8 px
    assert clean.qa["n_inliers"] >= 150
    th = np.deg2rad(0.4)
    a = 1.002 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    t = np.array([5.0, -3.0])
    rng = np.random.default_rng(0)
    n_out = int(0.3 * len(ref_pts) / 0.7)
    src = np.vstack([sar_pts, rng.uniform(0, 600, (n_out, 2))])
    dst = np.vstack([ref_pts @ a.T + t, rng.uniform(0, 600, (n_out, 2))])
    tiles = (src[:, 0] // 320).astype(int) * 2 + (src[:, 1] // 320).astype(int)
    res = fuse(src, dst, None, tiles, kind="affine", pixel_size=3.5)
    g = check_grid(extent=600.0, margin=50.0, n=10)
    truth = clean.model(g) @ a.T + t
    err = np.linalg.norm(res.model(g) - truth, axis=1)
    assert err.max() < 0.5, err.max()
    assert res.inliers[len(sar_pts):].mean() < 0.05
    assert res.inliers[: len(sar_pts)].mean() > 0.85
    assert res.qa["ce90_m"] == pytest.approx(3.5 * res.qa["ce90_px"])
    auto = fuse(src, dst, None, tiles, kind="auto", pixel_size=3.5)
    assert auto.qa["model"] != "shift"  # rotation + scale are plainly visible out of sample
    assert auto.candidates["shift"]["heldout_rmse_px"] > 1.5 * auto.qa["heldout_rmse_px"]


def test_fuse_real_tiepoints_identity(real_data: Path) -> None:
    """CFOG visible-infrared: same grid, authors' tie points agree to 0.02 px."""
    ref_pts, ir_pts = _read_cp(real_data / "cfog_geotiff/visible-infrared_utm49/VisibletoInfrared_CP.txt")
    res = fuse(ir_pts, ref_pts, None, np.zeros(len(ref_pts), int), pixel_size=30.0)
    assert res.qa["model"] == "shift"
    assert abs(res.qa["mean_dx_px"]) < 0.05 and abs(res.qa["mean_dy_px"]) < 0.05
    assert res.qa["rmse_px"] < 0.05 and res.qa["n_inliers"] >= 245
