"""xgeo.catalog: job catalogs round trip, output items validate, broken items are caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from xgeo.catalog import (
    CatalogError,
    Job,
    SceneSpec,
    make_output_item,
    read_jobs,
    validate_output_item,
    write_job_catalog,
    write_output_item,
)
from xgeo.errors import MissingFileError


def _tif(path: Path, *, cog: bool = False, crs: str = "EPSG:32633", count: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 251).astype(np.uint16)
    profile = {"driver": "COG" if cog else "GTiff", "width": 64, "height": 64, "count": count,
               "dtype": "uint16", "crs": crs, "transform": from_origin(500000, 5300000, 10, 10),
               "nodata": 0}
    with rasterio.open(path, "w", **profile) as ds:
        for b in range(count):
            ds.write(arr, b + 1)
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    ref = _tif(tmp_path / "data" / "ref.tif")
    mov = _tif(tmp_path / "data" / "mov.tif", crs="EPSG:32634")
    scenes = [SceneSpec("ref-a", str(ref), "optical"), SceneSpec("mov-a", str(mov), "sar")]
    jobs = [("job-b", "ref-a", "mov-a", {"tile_size": 256}), ("job-a", "ref-a", "mov-a", {})]
    return write_job_catalog(tmp_path / "cat", scenes, jobs)


def test_job_catalog_round_trip(catalog: Path, tmp_path: Path) -> None:
    jobs = read_jobs(catalog)
    assert [j.id for j in jobs] == ["job-a", "job-b"]
    j = jobs[1]
    assert j.ref == (tmp_path / "data" / "ref.tif").resolve()
    assert j.mov == (tmp_path / "data" / "mov.tif").resolve()
    assert (j.ref_modality, j.mov_modality) == ("optical", "sar")
    assert j.config_overrides() == {"tile_size": 256, "ref_modality": "optical",
                                    "mov_modality": "sar"}
    assert j.aoi is not None and -180 < j.aoi[0] < j.aoi[2] < 180  # lon/lat bbox of the ref
    assert j.ref_item and Path(j.ref_item).exists()
    # hrefs are relative: the catalog and its data can move together
    scene = json.loads(next((catalog.parent / "scenes").rglob("ref-a.json")).read_text())
    assert not Path(scene["assets"]["data"]["href"]).is_absolute()
    assert scene["properties"]["proj:code"] == "EPSG:32633"
    assert read_jobs(catalog.parent)[0].id == "job-a"  # the folder works too


def test_job_catalog_errors(tmp_path: Path) -> None:
    ref = _tif(tmp_path / "r.tif")
    with pytest.raises(CatalogError, match="unknown scene"):
        write_job_catalog(tmp_path / "c1", [SceneSpec("r", str(ref))], [("j", "r", "nope", {})])
    with pytest.raises(CatalogError, match="unknown modality"):
        write_job_catalog(tmp_path / "c2", [SceneSpec("r", str(ref), "lidar")], [])
    with pytest.raises(MissingFileError):
        read_jobs(tmp_path / "nowhere" / "catalog.json")


def test_missing_generated_scene_is_regenerated(tmp_path: Path, monkeypatch) -> None:
    import xgeo.synth

    calls = []

    def fake_write(out_dir, seed, shape, ref_modality, mov_modality, **kw):  # noqa: ANN001
        calls.append((Path(out_dir), seed, shape))
        _tif(Path(out_dir) / "ref.tif")
        _tif(Path(out_dir) / "mov.tif")

    fake_write(tmp_path / "gen", 5, (64, 64), "optical", "sar")
    recipe = {"seed": 5, "shape": [64, 64], "ref_modality": "optical", "mov_modality": "sar"}
    scenes = [SceneSpec("g-ref", str(tmp_path / "gen" / "ref.tif"), "optical", synth=recipe),
              SceneSpec("g-mov", str(tmp_path / "gen" / "mov.tif"), "sar", synth=recipe)]
    cat = write_job_catalog(tmp_path / "cat", scenes, [("g", "g-ref", "g-mov", {})])
    calls.clear()
    for f in (tmp_path / "gen").glob("*.tif"):
        f.unlink()
    monkeypatch.setattr(xgeo.synth, "write_scene_pair", fake_write, raising=False)
    (job,) = read_jobs(cat)
    assert job.ref.exists() and job.mov.exists()
    assert calls and calls[0][1:] == (5, (64, 64))


def _output(tmp_path: Path) -> tuple[Job, Path, Path]:
    ref = _tif(tmp_path / "in" / "ref.tif")
    mov = _tif(tmp_path / "in" / "mov.tif")
    out = _tif(tmp_path / "out" / "j" / "j.tif", cog=True, count=2)
    rep = tmp_path / "out" / "j" / "j_report.json"
    rep.write_text(json.dumps({"status": "ok", "model": {"kind": "affine"}, "rmse_px": 0.4,
                               "n_inliers": 50, "config_sha256": "abc"}))
    job = Job("j", ref, mov, "optical", "sar")
    return job, out, rep


def test_output_item_valid(tmp_path: Path) -> None:
    job, cog, rep = _output(tmp_path)
    item = make_output_item(job, cog, rep, json.loads(rep.read_text()),
                            properties={"xgeo:cache_key": "k1"})
    path = write_output_item(item, cog.with_name("j.stac.json"))
    d = json.loads(path.read_text())
    assert d["properties"]["proj:code"] == "EPSG:32633"
    assert d["properties"]["proj:shape"] == [64, 64]
    assert d["properties"]["xgeo:model"] == "affine"
    assert d["properties"]["xgeo:cache_key"] == "k1"
    assert len(d["assets"]["data"]["raster:bands"]) == 2
    assert d["assets"]["data"]["raster:bands"][0]["data_type"] == "uint16"
    assert d["assets"]["data"]["href"] == "./j.tif"
    rels = sorted(lk["rel"] for lk in d["links"])
    assert rels == ["derived_from", "derived_from", "describedby"]
    assert any("projection/v2" in e for e in d["stac_extensions"])
    item2 = validate_output_item(path)
    assert item2.id == "j"
    # deterministic: writing again gives the same bytes
    before = path.read_bytes()
    write_output_item(make_output_item(job, cog, rep, json.loads(rep.read_text()),
                                       properties={"xgeo:cache_key": "k1"}), path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda d: d["properties"].__setitem__("proj:code", "EPSG:4326"), "proj:code"),
        (lambda d: d["properties"].__setitem__("proj:shape", [1, 1]), "proj:shape"),
        (lambda d: d["assets"]["data"].__setitem__("raster:bands", []), "raster:bands"),
        (lambda d: d.__setitem__("links", [lk for lk in d["links"]
                                           if lk["rel"] != "describedby"]), "describedby"),
        (lambda d: d.pop("geometry"), "core schema"),
        (lambda d: d["assets"]["qa_report"].__setitem__("href", "./gone.json"), "gone.json"),
    ],
)
def test_output_item_problems_are_caught(tmp_path: Path, mutate, expect: str) -> None:  # noqa: ANN001
    job, cog, rep = _output(tmp_path)
    path = write_output_item(make_output_item(job, cog, rep), cog.with_name("j.stac.json"))
    d = json.loads(path.read_text())
    mutate(d)
    path.write_text(json.dumps(d))
    with pytest.raises(CatalogError, match=expect):
        validate_output_item(path)
