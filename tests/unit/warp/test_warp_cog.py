"""write_cog / validate_cog: valid COGs with real (non-zero) overviews, atomic, typed errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
from warp_fakes import smooth_field, write_tif

from xgeo.errors import ConfigError, MissingFileError
from xgeo.warp import validate_cog, write_cog


def test_write_cog_has_nonzero_overviews_and_metadata(tmp_path):
    data = (smooth_field(700, 600) * 10000).astype(np.uint16)
    src = write_tif(tmp_path / "plain.tif", np.stack([data, data // 2]), nodata=0,
                    descriptions=("a", "b")).path
    assert validate_cog(src)[0] is False  # striped GeoTIFF, no overviews
    out = write_cog(src, tmp_path / "out.tif", blocksize=256)
    valid, errors, warnings = validate_cog(out)
    assert valid, errors
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2, 4]
        assert ds.block_shapes[0] == (256, 256)
        assert ds.compression.name.upper() == "DEFLATE"
        assert ds.nodata == 0 and ds.descriptions == ("a", "b")
        np.testing.assert_array_equal(ds.read(), np.stack([data, data // 2]))
        ovr = ds.read(1, out_shape=(175, 150))  # served from the 4x overview
    # overview is an average of the data, not zeros (rioxarray #410 pitfall)
    assert ovr.min() > 0
    assert abs(float(ovr.mean()) - float(data.mean())) < 0.01 * float(data.mean())
    assert sorted(os.listdir(tmp_path)) == ["out.tif", "plain.tif"]


def test_write_cog_float_nan_nodata(tmp_path):
    data = smooth_field(300, 300).astype(np.float32)
    data[:50] = np.nan
    src = write_tif(tmp_path / "f.tif", data, nodata=float("nan")).path
    out = write_cog(src, tmp_path / "o.tif", compress="ZSTD", blocksize=128)
    assert validate_cog(out)[0]
    with rasterio.open(out) as ds:
        assert np.isnan(ds.nodata)
        got = ds.read(1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(data))


def test_write_cog_rejects_bad_options(tmp_path):
    src = write_tif(tmp_path / "s.tif", np.zeros((20, 20), np.uint8)).path
    with pytest.raises(ConfigError, match="compress"):
        write_cog(src, tmp_path / "o.tif", compress="gzip")
    with pytest.raises(ConfigError, match="overview_resampling"):
        write_cog(src, tmp_path / "o.tif", overview_resampling="best")
    with pytest.raises(ConfigError, match="blocksize"):
        write_cog(src, tmp_path / "o.tif", blocksize=100)
    with pytest.raises(MissingFileError):
        write_cog(tmp_path / "nope.tif", tmp_path / "o.tif")
    with pytest.raises(MissingFileError):
        write_cog(src, tmp_path / "no_dir" / "o.tif")
    with pytest.raises(MissingFileError):
        validate_cog(tmp_path / "nope.tif")
    assert sorted(os.listdir(tmp_path)) == ["s.tif"]
