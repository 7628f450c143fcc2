"""Scenes: opening, validation errors, band selection, modality inference, lazy reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from xgeo.errors import ConfigError, MissingCRSError, MissingFileError, NotARasterError
from xgeo.scenes import Scene, infer_modality, open_dataarray, open_scene, read_window
from xgeo.scenes._testing import write_raster

T = Affine(10, 0, 500000, 0, -10, 5000000)


def test_open_scene_fields(tmp_path: Path) -> None:
    data = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    p = write_raster(tmp_path / "scene.tif", data, transform=T, nodata=0)
    s = open_scene(p)
    assert (s.width, s.height, s.count, s.dtype, s.nodata) == (30, 40, 1, "uint16", 0.0)
    assert s.transform == tuple(T)[:6] and s.affine == T
    assert s.res == pytest.approx(10.0)
    assert s.bounds == pytest.approx((500000, 5000000 - 400, 500300, 5000000))
    assert "UTM zone 33N" in s.crs
    assert s.modality == "optical" and s.bands == (1,) and s.band_names == ("band1",)
    assert Scene.from_dict(s.to_dict()) == s and hash(s) == hash(Scene.from_dict(s.to_dict()))


def test_rgb_band_selection_by_description_and_alpha(tmp_path: Path) -> None:
    data = np.ones((4, 32, 32), np.uint8)
    p = write_raster(tmp_path / "rgbn.tif", data, descriptions=["blue", "green", "red", "nir"])
    assert open_scene(p).bands == (3, 2, 1)
    p2 = write_raster(tmp_path / "plain.tif", data[:3])
    assert open_scene(p2).bands == (1, 2, 3)
    assert open_scene(p2, bands=[2]).bands == (2,)
    assert open_scene(p, modality="sar").bands == (1,)


def test_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tif"
    with pytest.raises(MissingFileError, match="nope.tif") as e:
        open_scene(missing)
    assert e.value.hint and e.value.path == str(missing)

    text = tmp_path / "notes.tif"
    text.write_text("this is not a raster")
    with pytest.raises(NotARasterError, match="notes.tif"):
        open_scene(text)

    p = write_raster(tmp_path / "nocrs.tif", np.ones((20, 20), np.uint8), crs=None,
                     transform=Affine.identity())
    with pytest.raises(MissingCRSError, match="nocrs.tif") as e2:
        open_scene(p)
    assert "EPSG" in str(e2.value)

    ok = write_raster(tmp_path / "ok.tif", np.ones((20, 20), np.uint8))
    with pytest.raises(ConfigError, match="out of range"):
        open_scene(ok, bands=[2])
    with pytest.raises(ConfigError, match="modality"):
        open_scene(ok, modality="hyperspectral")


@pytest.mark.parametrize("name, expected", [
    ("S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VV.tif", "sar"),
    ("x_VH.tif", "sar"),
    ("SAR2_sen.tif", "sar"),
    ("sigma0_vv_db.tif", "sar"),
    ("l8_B10.tif", "thermal"),
    ("LC08_L1TP_B11.TIF", "thermal"),
    ("S2A_MSIL2A_20170613T101031_87_48_B10.tif", "optical"),  # S2 B10 is cirrus SWIR
    ("LE07_L1TP_140041_B6_VCID_1.TIF", "thermal"),
    ("scene_TIR.tif", "thermal"),
    ("AST_L1A_00303182012144228_Z.tif", "dem"),
    ("srtm_dem_30m.tif", "dem"),
    ("VNP46A1_night.tif", "night"),
    ("viirs_dnb.tif", "night"),
    ("osm_map.tif", "map"),
    ("l8_B4.tif", "optical"),
    ("LE71400412000304SGS00_B4.tif", "optical"),
    ("visible2_ref.tif", "optical"),
])
def test_infer_modality_from_names(name: str, expected: str) -> None:
    assert infer_modality(name) == expected


def test_infer_modality_on_real_files(real_data: Path) -> None:
    found = {p.name: open_scene(p).modality for p in real_data.rglob("*.tif")}
    assert found["l8_B10.tif"] == "thermal"
    assert found["l8_B4.tif"] == "optical"
    assert found["AST_L1A_00303182012144228_Z.tif"] == "dem"
    assert found["SAR2_sen.tif"] == "sar"
    s1 = [k for k in found if k.startswith("S1A_")]
    s2 = [k for k in found if k.startswith("S2")]
    assert s1 and all(found[k] == "sar" for k in s1)
    assert s2 and all(found[k] == "optical" for k in s2)


def test_infer_modality_from_tags_and_descriptions(tmp_path: Path) -> None:
    a = np.ones((20, 20), np.float32)
    p = write_raster(tmp_path / "a.tif", a, tags={"XGEO_MODALITY": "night"})
    assert open_scene(p).modality == "night"
    p2 = write_raster(tmp_path / "b.tif", a, descriptions=["elevation"])
    assert open_scene(p2).modality == "dem"
    assert open_scene(p2, modality="thermal").modality == "thermal"


def test_read_window_masks_nodata_internal_mask_and_nan(tmp_path: Path) -> None:
    a = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    a[0, 0] = -9999
    a[1, 1] = np.nan
    p = write_raster(tmp_path / "n.tif", a, nodata=-9999)
    w = read_window(open_scene(p), (0, 4, 0, 4))
    assert w.shape == (1, 4, 4) and w.dtype == np.float32
    assert np.isnan(w[0, 0, 0]) and np.isnan(w[0, 1, 1]) and w[0, 2, 3] == a[2, 3]

    mask = np.ones((32, 32), bool)
    mask[5:10, 5:10] = False
    b = np.full((32, 32), 7, np.uint8)
    pm = write_raster(tmp_path / "m.tif", b, mask=mask)
    wm = read_window(open_scene(pm), (0, 32, 0, 32))[0]
    assert np.array_equal(np.isnan(wm), ~mask)
    assert np.all(wm[mask] == 7)


def test_open_dataarray_is_lazy_and_masked(tmp_path: Path) -> None:
    a = np.full((64, 48), 5, np.int16)
    a[:4] = -1
    s = open_scene(write_raster(tmp_path / "d.tif", a, nodata=-1))
    da = open_dataarray(s, chunks=32)
    assert da.chunks is not None and da.shape == (1, 64, 48)
    v = da.values
    assert np.isnan(v[0, :4]).all() and (v[0, 4:] == 5).all()
