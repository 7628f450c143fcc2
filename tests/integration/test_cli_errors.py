"""Bad input: typed error naming the file, non-zero exit code, no partial output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from xgeo.cli import app


def _write(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:32633",
           origin=(500000.0, 5300000.0), nodata=None) -> Path:
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                   dtype=data.dtype.name, transform=from_origin(*origin, 10.0, 10.0))
    if crs:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return _write(tmp_path / "good.tif", (rng.random((200, 200)) * 1000).astype(np.uint16))


def _bad_inputs(tmp_path: Path, good: Path) -> dict[str, Path]:
    notraster = tmp_path / "notraster.tif"
    notraster.write_text("this is not an image")
    arr = np.ones((200, 200), np.uint16)
    return {
        "missing": tmp_path / "missing.tif",
        "not_a_raster": notraster,
        "no_crs": _write(tmp_path / "nocrs.tif", arr, crs=None),
        "no_overlap": _write(tmp_path / "far.tif", arr, origin=(900000.0, 1000000.0)),
        "all_nodata": _write(tmp_path / "nodata.tif", np.zeros((200, 200), np.uint16), nodata=0),
    }


@pytest.mark.parametrize("case", ["missing", "not_a_raster", "no_crs", "no_overlap", "all_nodata"])
def test_bad_input_typed_error_and_no_output(tmp_path: Path, good: Path, case: str) -> None:
    bad = _bad_inputs(tmp_path, good)[case]
    out = tmp_path / "out" / "result.tif"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["register", str(good), str(bad), "-o", str(out),
                                      "--matcher", "classical"])
    assert result.exit_code != 0, result.output
    assert bad.name in result.output, result.output
    assert "error" in result.output.lower()
    assert list(out.parent.iterdir()) == [], "no partial output may remain"


def test_errors_are_typed(tmp_path: Path, good: Path) -> None:
    from xgeo import errors
    from xgeo.pipeline import RegisterConfig, register

    bad = _bad_inputs(tmp_path, good)
    expect = {"missing": errors.MissingFileError, "not_a_raster": errors.NotARasterError,
              "no_crs": errors.MissingCRSError, "no_overlap": errors.NoOverlapError,
              "all_nodata": errors.AllNodataError}
    for case, exc in expect.items():
        with pytest.raises(exc) as info:
            register(good, bad[case], tmp_path / "x.tif", RegisterConfig(matcher="classical"))
        assert bad[case].name in str(info.value)
    assert not (tmp_path / "x.tif").exists()


def test_matcher_options_parse_json_values_and_refuse_malformed_items() -> None:
    from xgeo.cli import matcher_options
    from xgeo.errors import ConfigError

    assert matcher_options(["autocast=false", "orientations=8", "device=cpu", "threshold=0.2"]) == (
        ("autocast", False), ("device", "cpu"), ("orientations", 8), ("threshold", 0.2))
    assert matcher_options(None) == ()
    for bad in ("autocast", "=1"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            matcher_options([bad])


@pytest.mark.parametrize("extra", [["--matcher-option", "autocast"],
                                   ["--matcher", "classical", "--matcher-option", "bogus=1"]])
def test_bad_matcher_option_typed_error_and_no_output(tmp_path: Path, good: Path,
                                                      extra: list[str]) -> None:
    out = tmp_path / "out" / "result.tif"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["register", str(good), str(good), "-o", str(out), *extra])
    assert result.exit_code == 2, result.output
    assert "error" in result.output.lower() and ("KEY=VALUE" in result.output or "bogus" in result.output)
    assert list(out.parent.iterdir()) == []
