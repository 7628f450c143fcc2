"""Report: JSON contract fields, GeoPackage tie points, PNG figure, previews."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from xgeo.errors import ConfigError, ShapeError
from xgeo.geometry import AffineModel, ShiftModel, fuse
from xgeo.report import (
    CONTRACT_FIELDS,
    build_report,
    plot_report,
    read_preview,
    write_json,
    write_tiepoints_gpkg,
)
from xgeo.scenes import open_scene
from xgeo.viz import checkerboard

CRS_WKT = CRS.from_epsg(32633).to_wkt()
TRANSFORM = (10.0, 0.0, 500000.0, 0.0, -10.0, 5400000.0)


@dataclass(frozen=True)
class _Plan:
    ref: object
    shape: tuple[int, int]
    a: np.ndarray = field(default_factory=lambda: np.eye(3))
    pixel_size: float = 10.0

    def mov_file_to_grid_matrix(self) -> np.ndarray:
        return self.a.copy()


def _write(path: Path, data: np.ndarray, nodata=None) -> Path:
    arr = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                       count=arr.shape[0], dtype=arr.dtype.name, crs=CRS_WKT,
                       transform=Affine(*TRANSFORM), nodata=nodata) as ds:
        ds.write(arr)
    return path


@pytest.fixture
def scene_plan(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((3, 120, 150)) * 1000 + 100).astype(np.uint16)
    ref = open_scene(_write(tmp_path / "ref.tif", img, nodata=0))
    return _Plan(ref=ref, shape=(120, 150))


@pytest.fixture
def tiepoints():
    rng = np.random.default_rng(1)
    src = rng.uniform(5, 140, size=(200, 2))
    dst = src + np.array([3.4, -2.7]) + rng.normal(0, 0.2, size=(200, 2))
    dst[:20] += rng.uniform(8, 20, size=(20, 2))  # outliers
    tiles = np.array([f"r{int(y // 60)}_c{int(x // 75)}" for x, y in src])
    conf = rng.uniform(0.3, 1.0, 200)
    return src, dst, conf, tiles


def test_report_has_contract_fields_and_is_strict_json(tmp_path, scene_plan, tiepoints):
    src, dst, conf, tiles = tiepoints
    fit = fuse(src, dst, conf, tiles, kind="affine", pixel_size=10.0)
    a = np.array([[1.0, 0, 2.0], [0, 1.0, -1.0], [0, 0, 1]])
    plan = _Plan(ref=scene_plan.ref, shape=scene_plan.shape, a=a)
    rep = build_report(status="success", model=fit.model, fit=fit, plan=plan, seconds=1.25,
                       mov_to_ref_pixel=None, inputs={"ref": tmp_path / "ref.tif"},
                       outputs={"cog": tmp_path / "out.tif"}, matcher={"name": "classical"},
                       extra={"note": np.float32(1.5)})
    path = write_json(rep, tmp_path / "r.json")
    loaded = json.loads(path.read_text())  # strict: NaN would not round-trip to None
    for key in CONTRACT_FIELDS:
        assert key in loaded
    for key in ("rmse_m", "ce90_m", "heldout_rmse_px", "model_params", "candidates",
                "per_tile", "inputs", "outputs", "matcher", "xgeo_version", "created"):
        assert key in loaded
    assert loaded["status"] == "success" and loaded["model"] == "affine"
    assert loaded["n_tiepoints"] == 200 and 170 <= loaded["n_inliers"] <= 185
    assert 0.1 < loaded["rmse_px"] < 0.5 and loaded["ce90_px"] >= loaded["rmse_px"] * 0.9
    assert loaded["rmse_m"] == pytest.approx(10 * loaded["rmse_px"])
    m = np.array(loaded["mov_to_ref_pixel"])
    np.testing.assert_allclose(m, fit.model.to_matrix() @ a)
    assert m[0, 2] == pytest.approx(3.4 + 2.0, abs=0.1) and m[1, 2] == pytest.approx(-3.7, abs=0.1)
    assert loaded["grid"]["crs"] == "EPSG:32633" and loaded["note"] == 1.5
    assert loaded["inputs"]["ref"].endswith("ref.tif")
    assert loaded["created"].endswith("+00:00")
    assert sorted(os.listdir(tmp_path)) == ["r.json", "ref.tif"]


def test_report_failed_run_and_nonlinear(scene_plan):
    rep = build_report(status="failed", model=None, fit=None, plan=None, seconds=0.5,
                       mov_to_ref_pixel=None, inputs={}, outputs={}, matcher={})
    assert rep["model"] is None and rep["mov_to_ref_pixel"] is None
    assert rep["n_tiepoints"] == 0 and rep["rmse_px"] is None
    json.dumps(rep, allow_nan=False)

    class Wavy:
        kind = "tps"

        def to_matrix(self):
            return None

        def to_dict(self):
            return {"kind": "tps"}

    rep = build_report(status="success", model=Wavy(), fit=None, plan=scene_plan, seconds=1,
                       mov_to_ref_pixel=None, inputs={}, outputs={}, matcher={})
    assert rep["model"] == "tps" and rep["mov_to_ref_pixel"] is None
    with pytest.raises(ConfigError):
        build_report(status="x", model=None, fit=None, plan=None, seconds=0,
                     mov_to_ref_pixel=None, inputs={}, outputs={}, matcher={},
                     extra={"rmse_px": 0.0})
    with pytest.raises(ShapeError):
        build_report(status="x", model=ShiftModel(1, 2), fit=None, plan=None, seconds=0,
                     mov_to_ref_pixel=np.eye(2), inputs={}, outputs={}, matcher={})


def test_tiepoints_geopackage(tmp_path, scene_plan, tiepoints):
    import geopandas as gpd

    src, dst, conf, tiles = tiepoints
    inl = np.ones(len(src), bool)
    inl[:20] = False
    res = np.linalg.norm(dst - src - [3.4, -2.7], axis=1)
    path = write_tiepoints_gpkg(tmp_path / "tp.gpkg", src_grid=src, dst_ref=dst,
                                confidence=conf, inliers=inl, residuals_px=res, tile_ids=tiles,
                                plan=scene_plan)
    gdf = gpd.read_file(path, layer="tiepoints")
    assert len(gdf) == 200 and gdf.crs.to_epsg() == 32633
    for col in ("ref_x", "ref_y", "mov_x", "mov_y", "dx", "dy", "residual_px", "confidence",
                "inlier", "tile"):
        assert col in gdf.columns
    np.testing.assert_allclose(gdf["dx"], dst[:, 0] - src[:, 0])
    assert gdf["inlier"].sum() == 180 and gdf["tile"].iloc[0] == tiles[0]
    # point = reference pixel centre on the map
    np.testing.assert_allclose(gdf.geometry.x, 500000 + 10 * (dst[:, 0] + 0.5))
    np.testing.assert_allclose(gdf.geometry.y, 5400000 - 10 * (dst[:, 1] + 0.5))
    # empty tie-point sets still give a valid layer
    empty = np.zeros((0, 2))
    p2 = write_tiepoints_gpkg(tmp_path / "e.gpkg", src_grid=empty, dst_ref=empty,
                              confidence=[], inliers=[], residuals_px=[], tile_ids=[],
                              plan=scene_plan)
    assert len(gpd.read_file(p2)) == 0
    with pytest.raises(ShapeError):
        write_tiepoints_gpkg(tmp_path / "bad.gpkg", src_grid=src[:5], dst_ref=dst,
                             confidence=conf, inliers=inl, residuals_px=res, tile_ids=tiles,
                             plan=scene_plan)
    assert sorted(os.listdir(tmp_path)) == ["e.gpkg", "ref.tif", "tp.gpkg"]


def test_previews_and_figure(tmp_path, tiepoints):
    yy, xx = np.mgrid[0:300, 0:400]
    img = ((np.sin(xx / 9.0) + np.cos(yy / 13.0)) * 1000 + 3000).astype(np.uint16)
    img[:20] = 0
    rgb = _write(tmp_path / "rgb.tif", np.stack([img, img, img]), nodata=0)
    prev = read_preview(rgb, max_side=128)
    assert prev.shape == (75, 100) and prev.dtype == np.float32
    assert np.isnan(prev[:4]).all() and np.nanmin(prev) >= 0 and np.nanmax(prev) <= 1
    assert np.nanstd(prev) > 0.2
    scene_prev = read_preview(open_scene(rgb), max_side=128)
    np.testing.assert_allclose(scene_prev, prev, equal_nan=True)

    src, dst, conf, tiles = tiepoints
    src, dst = src * 2.5, dst * 2.5  # spread over the 400x300 grid
    fit_res = np.linalg.norm(dst - src - [3.4 * 2.5, -2.7 * 2.5], axis=1)
    inl = fit_res < 3
    shifted = np.roll(prev, (1, -1), axis=(0, 1))
    out = plot_report(tmp_path / "fig.png", ref_preview=prev, mov_before=shifted,
                      mov_after=prev, scale=0.25, src_grid=src, dst_ref=dst, inliers=inl,
                      residuals_px=fit_res, title="test pair")
    import matplotlib.image as mpimg

    png = mpimg.imread(out)
    assert png.shape[0] > 500 and png.shape[1] > 500
    assert png[..., :3].std() > 0.05  # not a blank canvas
    assert sorted(os.listdir(tmp_path)) == ["fig.png", "rgb.tif"]
    with pytest.raises(ShapeError):
        plot_report(tmp_path / "x.png", ref_preview=prev[None], mov_before=prev,
                    mov_after=prev, scale=0.25, src_grid=src, dst_ref=dst, inliers=inl,
                    residuals_px=fit_res, title="bad")


def test_checkerboard_alternates():
    a, b = np.zeros((8, 8)), np.ones((8, 8))
    cb = checkerboard(a, b, n=4)
    assert cb[0, 0] == 0 and cb[0, 2] == 1 and cb[2, 0] == 1 and cb[2, 2] == 0


def test_report_with_real_models(scene_plan):
    model = AffineModel(np.array([[1.0, 0.01, 2.0], [-0.01, 1.0, -1.0]]))
    rep = build_report(status="success", model=model, fit=None, plan=scene_plan, seconds=2,
                       mov_to_ref_pixel=None, inputs={}, outputs={}, matcher={})
    np.testing.assert_allclose(np.array(rep["mov_to_ref_pixel"])[:2], model.matrix)
    assert rep["model_params"]["kind"] == "affine"
