"""warp_to_cog: resampling onto the common grid, geotransform-only mode, atomicity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage
from warp_fakes import (
    CRS_WKT,
    REF_TRANSFORM,
    FakePlan,
    FakeScene,
    FakeWavyModel,
    affine_model,
    apply_h,
    shift_model,
    smooth_at,
    smooth_field,
    write_tif,
)

from xgeo.errors import ConfigError, MissingFileError
from xgeo.warp import _resample as resample_mod
from xgeo.warp import validate_cog, warp_to_cog


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), {"nodata": ds.nodata, "desc": ds.descriptions, "dtype": ds.dtypes[0],
                           "transform": ds.transform, "crs": ds.crs, "count": ds.count}


def _only(tmp_path: Path, *names: str) -> None:
    assert sorted(os.listdir(tmp_path)) == sorted(names)


def test_shift_moves_content_like_scipy(float_pair, tmp_path):
    plan, data = float_pair
    out = warp_to_cog(plan, shift_model(3.4, -2.7), tmp_path / "out.tif", block=64)
    valid, errors, _ = validate_cog(out)
    assert valid, errors
    arr, meta = _read(out)
    got = arr[0]
    # out[p] = mov[p - t]  <=>  scipy.ndimage.shift(mov, (dy, dx)) with t = (3.4, -2.7)
    want = ndimage.shift(data.astype(np.float64), (-2.7, 3.4), order=1, mode="nearest")
    interior = (slice(6, -6), slice(6, -6))
    err = np.abs(got[interior] - want[interior])
    assert np.isfinite(got[interior]).all()
    assert err.max() < 0.05 and err.mean() < 1e-3
    # outside coverage: NaN (float file without nodata)
    assert np.isnan(meta["nodata"])
    assert np.isnan(got[:, :3]).all() and np.isfinite(got[5:-5, 3]).all()
    h = got.shape[0]
    assert np.isnan(got[h - 3:, :]).all() and np.isfinite(got[h - 4, 5:-5]).all()
    xr = rioxarray.open_rasterio(out)
    assert xr.rio.crs == CRS.from_wkt(CRS_WKT)
    assert tuple(xr.rio.transform())[:6] == pytest.approx(REF_TRANSFORM)
    assert xr.shape == (1, 160, 200)
    _only(tmp_path, "mov.tif", "ref.tif", "out.tif")


def test_uint16_affine_nodata_and_descriptions(uint16_pair, tmp_path):
    plan, data = uint16_pair
    model = affine_model(4.0, 1.02, 2.5, -1.25, cx=85, cy=75)
    calls = []
    out = warp_to_cog(plan, model, tmp_path / "out.tif", block=64,
                      progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (9, 9) and len(calls) == 9
    arr, meta = _read(out)
    assert meta["dtype"] == "uint16" and meta["count"] == 3 and meta["nodata"] == 0
    assert meta["desc"] == ("red", "green", "blue")
    assert validate_cog(out)[0]
    # expected: bilinear sample of the file at model.inverse(p) (same grid, A = I)
    yy, xx = np.mgrid[0:150, 0:170]
    src = model.inverse(np.stack([xx.ravel(), yy.ravel()], 1))
    inside = ((src[:, 0] > 1) & (src[:, 0] < 168) & (src[:, 1] > 1) & (src[:, 1] < 148))
    hole = (src[:, 0] > 76) & (src[:, 0] < 99) & (src[:, 1] > 56) & (src[:, 1] < 74)
    keep = inside & ~hole
    for b in range(3):
        want = ndimage.map_coordinates(data[b].astype(np.float64), [src[:, 1], src[:, 0]],
                                       order=1)
        got = arr[b].ravel().astype(np.float64)
        assert np.abs(got[keep] - want[keep]).max() <= 1.0
    # outside the moving file, and in its nodata hole: nodata
    outside = ((src[:, 0] < -1) | (src[:, 0] > 170) | (src[:, 1] < -1) | (src[:, 1] > 150))
    assert outside.sum() > 100 and (arr[:, outside.reshape(150, 170)] == 0).all()
    centre = model(np.array([[87.0, 65.0]]))[0]
    assert (arr[:, int(round(centre[1])), int(round(centre[0]))] == 0).all()


def test_nearest_integer_shift_is_exact(uint16_pair, tmp_path):
    plan, data = uint16_pair
    out = warp_to_cog(plan, shift_model(3, -2), tmp_path / "out.tif", resampling="nearest",
                      block=64)
    arr, _ = _read(out)
    # out[y, x] = mov[y + 2, x - 3]
    np.testing.assert_array_equal(arr[:, :-2, 3:], data[:, 2:, :-3])
    assert (arr[:, :, :3] == 0).all() and (arr[:, -2:, :] == 0).all()


def test_bilinear_and_cubic_against_analytic_truth(float_pair, tmp_path):
    plan, _ = float_pair
    model = shift_model(1.5, 0.25)
    yy, xx = np.mgrid[0:160, 0:200].astype(np.float64)
    truth = smooth_at(xx - 1.5, yy - 0.25)  # out[p] = f(p - t)
    inner = (slice(8, -8), slice(8, -8))
    errs = {}
    for method in ("bilinear", "cubic"):
        got = _read(warp_to_cog(plan, model, tmp_path / f"{method}.tif", resampling=method))[0][0]
        errs[method] = np.abs(got[inner] - truth[inner]).max()
    # OpenCV's cubic is Keys a=-0.75 (not 3rd-order accurate): comparable to bilinear here
    assert errs["bilinear"] < 0.006 and errs["cubic"] < 0.006


def test_nonlinear_model_coarse_field_matches_dense(float_pair, tmp_path):
    plan, _ = float_pair
    model = FakeWavyModel()
    a = _read(warp_to_cog(plan, model, tmp_path / "coarse.tif", block=64))[0][0]
    b = _read(warp_to_cog(plan, model, tmp_path / "dense.tif", block=64, step=1))[0][0]
    both = np.isfinite(a) & np.isfinite(b)
    assert both.mean() > 0.9
    assert np.abs(a[both] - b[both]).max() < 2e-3


def test_window_reads_stay_block_sized(float_pair, tmp_path, monkeypatch):
    plan, _ = float_pair
    sizes: list[tuple[int, int]] = []
    original = resample_mod._source_window

    def spy(map_x, map_y, src):
        win = original(map_x, map_y, src)
        if win is not None:
            sizes.append((win[2] - win[0], win[3] - win[1]))
        return win

    monkeypatch.setattr(resample_mod, "_source_window", spy)
    warp_to_cog(plan, affine_model(3.0, 1.0, 1.0, 1.0, 100, 80), tmp_path / "o.tif", block=32)
    assert len(sizes) >= 30
    assert max(max(s) for s in sizes) <= 32 * 1.1 + 2 * 3 + 2


def test_finer_moving_file_is_read_decimated(tmp_path):
    # moving file at 5 m (2x finer) over the same area as a 10 m reference grid
    h, w = 256, 256
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = (0.01 * xx + 0.02 * yy).astype(np.float32)
    t_mov = (5.0, 0.0, REF_TRANSFORM[2], 0.0, -5.0, REF_TRANSFORM[5])
    mov = write_tif(tmp_path / "mov.tif", ramp, transform=t_mov)
    ref = write_tif(tmp_path / "ref.tif", np.zeros((128, 128), np.float32))
    a = np.array([[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1]])  # centre convention
    plan = FakePlan(ref=ref, mov=mov, a=a)
    got = _read(warp_to_cog(plan, shift_model(0, 0), tmp_path / "out.tif", block=64))[0][0]
    gy, gx = np.mgrid[0:128, 0:128].astype(np.float64)
    want = 0.01 * (2 * gx + 0.5) + 0.02 * (2 * gy + 0.5)
    assert np.abs(got[2:-2, 2:-2] - want[2:-2, 2:-2]).max() < 1e-3


def test_geotransform_only(tmp_path):
    data = (smooth_field(90, 110, seed=5) * 5000).astype(np.int16)
    # moving file offset by (+5, -3) grid pixels from the reference grid
    t_mov = (10.0, 0.0, REF_TRANSFORM[2] + 50.0, 0.0, -10.0, REF_TRANSFORM[5] + 30.0)
    mov = write_tif(tmp_path / "mov.tif", data, transform=t_mov, nodata=-9999,
                    descriptions=("dem",))
    ref = write_tif(tmp_path / "ref.tif", np.zeros((100, 120), np.int16))
    a = np.array([[1.0, 0, 5], [0, 1.0, -3], [0, 0, 1]])
    plan = FakePlan(ref=ref, mov=mov, a=a)
    model = affine_model(2.0, 0.99, 1.3, -0.6, 40, 40)
    out = warp_to_cog(plan, model, tmp_path / "out.tif", resample=False, block=32)
    assert validate_cog(out)[0]
    arr, meta = _read(out)
    np.testing.assert_array_equal(arr[0], data)
    assert meta["nodata"] == -9999 and meta["desc"] == ("dem",)
    assert meta["crs"] == CRS.from_wkt(CRS_WKT)
    # a moving-file pixel centre lands where the model sends it on the reference grid
    pts = np.array([[0.0, 0.0], [109.0, 0.0], [0.0, 89.0], [55.0, 44.0]])
    ref_px = apply_h(model.m @ a, pts)
    t_new, t_ref = meta["transform"], Affine(*REF_TRANSFORM)
    for p, q in zip(pts, ref_px, strict=True):
        assert t_new @ (p[0] + 0.5, p[1] + 0.5) == pytest.approx(t_ref @ (q[0] + 0.5, q[1] + 0.5))
    # pure shift with A = I reduces to T_ref * M
    plan0 = FakePlan(ref=ref, mov=write_tif(tmp_path / "m0.tif", data))
    out0 = warp_to_cog(plan0, shift_model(3.4, -2.7), tmp_path / "o0.tif", resample=False)
    assert tuple(_read(out0)[1]["transform"])[:6] == pytest.approx(
        tuple(Affine(*REF_TRANSFORM) @ Affine.translation(3.4, -2.7))[:6])


def test_geotransform_only_refuses_nonlinear(float_pair, tmp_path):
    plan, _ = float_pair
    with pytest.raises(ConfigError, match="linear"):
        warp_to_cog(plan, FakeWavyModel(), tmp_path / "out.tif", resample=False)
    _only(tmp_path, "mov.tif", "ref.tif")


def test_bad_options(float_pair, tmp_path):
    plan, _ = float_pair
    with pytest.raises(ConfigError):
        warp_to_cog(plan, shift_model(0, 0), tmp_path / "o.tif", block=100)
    with pytest.raises(ConfigError):
        warp_to_cog(plan, shift_model(0, 0), tmp_path / "o.tif", resampling="lanczos9")
    with pytest.raises(MissingFileError, match="output folder"):
        warp_to_cog(plan, shift_model(0, 0), tmp_path / "nope" / "o.tif")
    _only(tmp_path, "mov.tif", "ref.tif")


def test_failure_in_cog_copy_leaves_nothing(float_pair, tmp_path, monkeypatch):
    plan, _ = float_pair
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("xgeo.warp._cog.rasterio.shutil.copy", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        warp_to_cog(plan, shift_model(1, 1), tmp_path / "out.tif")
    _only(tmp_path, "mov.tif", "ref.tif")


def test_failure_mid_blocks_leaves_nothing_and_keeps_old_output(float_pair, tmp_path):
    plan, _ = float_pair
    (tmp_path / "out.tif").write_bytes(b"previous")

    def stop(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        warp_to_cog(plan, shift_model(1, 1), tmp_path / "out.tif", block=32, progress=stop)
    _only(tmp_path, "mov.tif", "ref.tif", "out.tif")
    assert (tmp_path / "out.tif").read_bytes() == b"previous"


def test_real_landsat_shift(real_data, tmp_path):
    path = real_data / "landsat8_oli_tirs" / "l8_B4.tif"
    with rasterio.open(path) as ds:
        scene = FakeScene(path=path, crs=ds.crs.to_wkt(), transform=tuple(ds.transform)[:6],
                          width=ds.width, height=ds.height, count=ds.count, dtype=ds.dtypes[0],
                          nodata=ds.nodata)
        data = ds.read(1).astype(np.float64)
    plan = FakePlan(ref=scene, mov=scene)
    out = warp_to_cog(plan, shift_model(3.4, -2.7), tmp_path / "b4.tif")
    assert validate_cog(out)[0]
    got = _read(out)[0][0].astype(np.float64)
    want = ndimage.shift(data, (-2.7, 3.4), order=1, mode="nearest")
    inner = (slice(8, -8), slice(8, -8))
    ok = (data[inner] > 0) & (got[inner] > 0)  # away from the file's zero fill
    assert ok.mean() > 0.9
    assert np.abs(got[inner][ok] - want[inner][ok]).max() <= 0.5 + 1e-6 + 1e-3 * want.max()
