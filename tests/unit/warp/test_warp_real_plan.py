"""warp_to_cog with the real TilePlan and GeoModels, across UTM zones (pyproj in the chain)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.warp import Resampling, calculate_default_transform, reproject
from scipy import ndimage
from warp_fakes import REF_TRANSFORM, smooth_field, write_tif

from xgeo.geometry import PolynomialModel, ShiftModel, fit_model
from xgeo.tiling import prepare_pair
from xgeo.warp import validate_cog, warp_to_cog


@pytest.fixture
def cross_zone_plan(tmp_path):
    """Reference 160x180 in EPSG:32633; moving file reprojected to EPSG:32634 (rotated grid)."""
    ref_data = (smooth_field(160, 180, seed=7) * 4000 + 500).astype(np.float32)
    write_tif(tmp_path / "ref.tif", ref_data)
    src_t = Affine(*REF_TRANSFORM)
    t34, w34, h34 = calculate_default_transform("EPSG:32633", "EPSG:32634", 180, 160,
                                                *rasterio.transform.array_bounds(160, 180, src_t))
    mov = np.full((h34, w34), np.nan, np.float32)
    reproject(ref_data, mov, src_transform=src_t, src_crs="EPSG:32633", dst_transform=t34,
              dst_crs="EPSG:32634", resampling=Resampling.bilinear, dst_nodata=np.nan)
    with rasterio.open(tmp_path / "mov.tif", "w", driver="GTiff", width=w34, height=h34,
                       count=1, dtype="float32", crs="EPSG:32634", transform=t34,
                       nodata=np.nan) as ds:
        ds.write(mov, 1)
    plan = prepare_pair(tmp_path / "ref.tif", tmp_path / "mov.tif", tmp_path / "store.zarr",
                        tile_size=64, halo=8)
    return plan, mov


def _expected(plan, mov, model) -> np.ndarray:
    """Independent truth: pyproj per pixel + scipy bilinear sampling of the moving file."""
    h, w = plan.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    grid = model.inverse(np.stack([xx.ravel(), yy.ravel()], 1))
    mx, my = Affine(*REF_TRANSFORM) @ (grid[:, 0] + 0.5, grid[:, 1] + 0.5)
    ex, ey = Transformer.from_crs(32633, 32634, always_xy=True).transform(mx, my)
    with rasterio.open(plan.mov.path) as ds:
        cx, cy = ~ds.transform @ (ex, ey)
    data = np.nan_to_num(mov).astype(np.float64)
    vals = ndimage.map_coordinates(data, [cy - 0.5, cx - 0.5], order=1, cval=np.nan)
    # bilinear support entirely inside valid moving pixels (file NaN fill is not data)
    inner = ndimage.binary_erosion(np.isfinite(mov), np.ones((5, 5), bool))
    ok = ndimage.map_coordinates(inner.astype(np.float64), [cy - 0.5, cx - 0.5], order=0)
    vals[ok < 0.5] = np.nan
    return vals.reshape(h, w)


@pytest.mark.parametrize("kind", ["shift", "poly2"])
def test_cross_zone_warp_matches_exact_chain(cross_zone_plan, tmp_path, kind):
    plan, mov = cross_zone_plan
    if kind == "shift":
        model = ShiftModel(1.5, -0.75)
    else:
        # a smooth quadratic distortion of up to ~1.5 px, fitted from exact samples
        g = np.stack(np.meshgrid(np.linspace(0, 179, 12), np.linspace(0, 159, 11)), -1)
        src = g.reshape(-1, 2)
        u = (src - [90.0, 80.0]) / 90.0
        dst = src + np.stack([1.0 + 0.8 * u[:, 0] ** 2, -0.5 + 0.6 * u[:, 0] * u[:, 1]], 1)
        model = fit_model(src, dst, "poly2")
        assert isinstance(model, PolynomialModel)
    out = warp_to_cog(plan, model, tmp_path / f"{kind}.tif", block=64)
    assert validate_cog(out)[0]
    with rasterio.open(out) as ds:
        got = ds.read(1).astype(np.float64)
        assert ds.crs.to_epsg() == 32633 and ds.transform == Affine(*REF_TRANSFORM)
    want = _expected(plan, mov, model)
    ok = np.isfinite(want) & np.isfinite(got)
    assert ok.mean() > 0.7
    err = np.abs(got[ok] - want[ok])
    # values span ~4000 with gradients up to ~500 per px: 5 ~ 0.01 px of position error
    bound = (0.01, 1e-3) if kind == "shift" else (5.0, 0.5)
    assert err.max() < bound[0] and np.median(err) < bound[1]
