"""Modalities: robust stretch ignoring nodata, SAR linear vs dB, luminance, all-nodata errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xgeo.errors import AllNodataError
from xgeo.modalities import LUMINANCE, NormStats, compute_stats, normalise, to_single_band
from xgeo.scenes import open_scene, read_window
from xgeo.scenes._testing import write_raster


def test_stretch_ignores_nodata(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(100, 200, (64, 64)).astype(np.float32)
    a[:16] = -9999.0  # a quarter nodata, far below the data range
    s = open_scene(write_raster(tmp_path / "o.tif", a, nodata=-9999))
    st = compute_stats(s)
    valid = a[16:]
    assert st.lo == pytest.approx(np.percentile(valid, 1), rel=1e-4)
    assert st.hi == pytest.approx(np.percentile(valid, 99), rel=1e-4)
    out = normalise(read_window(s, (0, 64, 0, 64)), st)
    assert out.dtype == np.float32 and out.shape == (64, 64)
    assert np.isnan(out[:16]).all() and np.isfinite(out[16:]).all()
    assert out[16:].min() == 0.0 and out[16:].max() == 1.0
    assert 0.4 < np.median(out[16:]) < 0.6


def test_normalise_extra_valid_mask() -> None:
    st = NormStats("optical", 0.0, 10.0, (1,))
    arr = np.array([[0.0, 5.0], [10.0, 20.0]], np.float32)
    valid = np.array([[True, False], [True, True]])
    out = normalise(arr, st, valid)
    assert out[0, 0] == 0 and np.isnan(out[0, 1]) and out[1, 0] == 1 and out[1, 1] == 1
    assert arr[0, 1] == 5.0  # input untouched


def test_sar_linear_converted_to_db_matches_db_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    db = rng.uniform(-25, -2, (64, 64)).astype(np.float32)
    lin = (10 ** (db / 10)).astype(np.float32)
    lin[0, :8] = 0.0  # zero power is invalid in dB
    s_lin = open_scene(write_raster(tmp_path / "s1_VV_linear.tif", lin))
    s_db = open_scene(write_raster(tmp_path / "s1_VV_db.tif", db))
    assert s_lin.modality == s_db.modality == "sar"
    st_lin, st_db = compute_stats(s_lin), compute_stats(s_db)
    assert st_lin.db and not st_db.db
    assert st_lin.lo == pytest.approx(st_db.lo, abs=0.05)
    assert st_lin.hi == pytest.approx(st_db.hi, abs=0.05)
    n_lin = normalise(read_window(s_lin, (0, 64, 0, 64)), st_lin)
    n_db = normalise(read_window(s_db, (0, 64, 0, 64)), st_db)
    assert np.isnan(n_lin[0, :8]).all()
    np.testing.assert_allclose(n_lin[1:], n_db[1:], atol=5e-3)


def test_sar_8bit_left_alone_and_16bit_to_db(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    u8 = rng.integers(1, 255, (32, 32), dtype=np.uint8)
    assert not compute_stats(open_scene(write_raster(tmp_path / "a_SAR.tif", u8))).db
    u16 = rng.integers(1, 4000, (32, 32), dtype=np.uint16)
    assert compute_stats(open_scene(write_raster(tmp_path / "b_SAR.tif", u16))).db


def test_night_log_and_rgb_luminance(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rad = rng.lognormal(0, 2, (32, 32)).astype(np.float32)
    st = compute_stats(open_scene(write_raster(tmp_path / "viirs_dnb.tif", rad)))
    assert st.log and st.modality == "night"
    rgb = rng.integers(0, 255, (3, 32, 32), dtype=np.uint8)
    s = open_scene(write_raster(tmp_path / "rgb.tif", rgb))
    st = compute_stats(s)
    assert st.weights == LUMINANCE and st.bands == (1, 2, 3)
    lum = to_single_band(rgb.astype(np.float32), st)
    expected = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    np.testing.assert_allclose(lum, expected, rtol=1e-5)


def test_all_nodata_raises_named(tmp_path: Path) -> None:
    p = write_raster(tmp_path / "empty.tif", np.zeros((32, 32), np.uint16), nodata=0)
    with pytest.raises(AllNodataError, match="empty.tif"):
        compute_stats(open_scene(p))


def test_sparse_valid_pixels_found_past_decimation(tmp_path: Path) -> None:
    a = np.zeros((512, 512), np.uint16)
    a[300:304, 300:304] = np.arange(10, 170, 10).reshape(4, 4)  # ~1 pixel survives 4x decimation
    st = compute_stats(open_scene(write_raster(tmp_path / "sparse.tif", a, nodata=0)),
                       max_side=128)
    assert 10 <= st.lo < 12 and 155 < st.hi <= 160


def test_windowed_decimated_read_matches_whole_read(tmp_path: Path) -> None:
    import rasterio

    from xgeo.modalities._norm import _decimated_read

    rng = np.random.default_rng(4)
    a = rng.integers(1, 255, (1024, 1536), dtype=np.uint8)
    p = write_raster(tmp_path / "big.tif", a)
    with rasterio.open(p) as ds:
        got = _decimated_read(ds, [1], 2)
        whole = ds.read(1, out_shape=(512, 768)).astype(np.float32)
    assert got.shape == (1, 512, 768)
    np.testing.assert_array_equal(got[0], whole)
    st = compute_stats(open_scene(p), max_side=300)
    assert st.lo == pytest.approx(np.percentile(a, 1), abs=2)
    assert st.hi == pytest.approx(np.percentile(a, 99), abs=2)
