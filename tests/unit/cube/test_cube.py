"""Analyst cube: Zarr v3 layout readable by plain xarray + rioxarray, idempotent appends,
values equal to the COGs', parallel writers, STAC collection; odc-geo reads the grid and
odc-stac loads the STAC items (skipped where those two are not installed)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr
from rasterio.transform import from_origin

from xgeo.cube import CubeError, append_to_cube, cube_stac_collection, open_cube
from xgeo.errors import MissingFileError

T = from_origin(500000.0, 5300000.0, 10.0, 10.0)


def _cog(path: Path, seed: int, bands: int = 2, transform=T, shape=(70, 90)) -> Path:
    a = np.random.default_rng(seed).integers(1, 4000, (bands, *shape)).astype(np.uint16)
    a[:, :3, :3] = 0  # nodata corner
    with rasterio.open(path, "w", driver="COG", width=shape[1], height=shape[0], count=bands,
                       dtype="uint16", crs="EPSG:32633", transform=transform, nodata=0) as d:
        d.write(a)
    return path


def test_open_zarr_coords_crs_values_and_idempotent(tmp_path: Path) -> None:
    cube = tmp_path / "aoi.zarr"
    s1, s2 = _cog(tmp_path / "s1.tif", 1), _cog(tmp_path / "s2.tif", 2)
    append_to_cube(cube, s1, time="2024-03-05T10:00", qa={"model": "affine", "rmse_px": 0.4,
                   "ce90_px": 0.7, "n_tiepoints": 120, "source_ids": ["ref", "s1"]},
                   scene_id="s1")
    append_to_cube(cube, s2, time="2024-03-01T10:00", qa={"model": "shift", "rmse_px": 0.3},
                   scene_id="s2")
    i = append_to_cube(cube, s2, time="2024-03-01T10:00", qa={"model": "shift", "rmse_px": 0.2},
                       scene_id="s2")
    assert i == 1
    ds = xr.open_zarr(cube)  # plain xarray
    assert ds.sizes == {"time": 2, "band": 2, "y": 70, "x": 90}
    assert ds.rio.crs.to_epsg() == 32633
    assert ds["data"].rio.transform() == T
    assert float(ds.x[0]) == 500005.0 and float(ds.y[0]) == 5299995.0
    np.testing.assert_allclose(ds["qa_rmse_px"].values, [0.4, 0.2])
    lazy = open_cube(cube)
    assert lazy["data"].chunks is not None  # dask-backed
    assert [str(t)[:10] for t in lazy.time.values] == ["2024-03-01", "2024-03-05"]
    # a value read back equals the COG's value at the same place
    x, y = T @ (41.5, 17.5)
    v = lazy["data"].sel(time="2024-03-05T10:00", band=2).sel(x=x, y=y).values
    with rasterio.open(s1) as d:
        assert float(v) == float(d.read(2)[17, 41])
    assert np.isnan(lazy["data"].isel(time=0, band=0, y=0, x=0).values)  # nodata -> NaN


def test_other_grid_is_resampled_and_band_mismatch_is_typed(tmp_path: Path) -> None:
    cube = tmp_path / "c.zarr"
    append_to_cube(cube, _cog(tmp_path / "a.tif", 1), time="2024-01-01", qa={}, scene_id="a")
    shifted = from_origin(500020.0, 5299980.0, 10.0, 10.0)  # 2 px right, 2 px down
    b = _cog(tmp_path / "b.tif", 2, transform=shifted, shape=(40, 50))
    append_to_cube(cube, b, time="2024-01-02", qa={}, scene_id="b")
    ds = open_cube(cube)
    with rasterio.open(b) as d:
        ref = d.read(1)
    np.testing.assert_array_equal(ds["data"].isel(time=1, band=0).values[2 + 10, 2 + 10],
                                  ref[10, 10])
    with pytest.raises(CubeError, match="bands"):
        append_to_cube(cube, _cog(tmp_path / "c.tif", 3, bands=1), time="2024-01-03", qa={},
                       scene_id="c")
    with pytest.raises(MissingFileError):
        append_to_cube(cube, tmp_path / "missing.tif", time="2024-01-03", qa={}, scene_id="m")


def _worker(args: tuple[str, str, str, str]) -> int:
    cube, cog, t, sid = args
    return append_to_cube(cube, cog, time=t, qa={"rmse_px": 1.0}, scene_id=sid)


def test_parallel_writers(tmp_path: Path) -> None:
    cube = tmp_path / "p.zarr"
    append_to_cube(cube, _cog(tmp_path / "s0.tif", 0), time="2024-01-01", qa={}, scene_id="s0")
    jobs = [(str(cube), str(_cog(tmp_path / f"s{i}.tif", i)), f"2024-01-0{i + 1}", f"s{i}")
            for i in range(1, 5)]
    jobs.append(jobs[0])  # the same scene twice, concurrently
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_worker, jobs)
    ds = open_cube(cube)
    assert sorted(map(str, ds["scene_id"].values)) == ["s0", "s1", "s2", "s3", "s4"]
    for i in range(5):
        with rasterio.open(tmp_path / f"s{i}.tif") as d:
            want = d.read(1)[30, 40]
        got = ds["data"].sel(time=f"2024-01-0{i + 1}").isel(band=0, y=30, x=40).values
        assert float(got) == float(want)


def test_stac_collection(tmp_path: Path) -> None:
    cube = tmp_path / "s.zarr"
    append_to_cube(cube, _cog(tmp_path / "a.tif", 1), time="2024-01-01",
                   qa={"model": "affine", "rmse_px": 0.5}, scene_id="a")
    append_to_cube(cube, _cog(tmp_path / "b.tif", 2), time="2024-02-01", qa={}, scene_id="b")
    coll = cube_stac_collection(cube)
    items = sorted(coll.get_items(), key=lambda it: it.id)
    assert [it.id for it in items] == ["a", "b"]
    it = items[0]
    assert it.properties["proj:code"] == "EPSG:32633"
    assert it.properties["proj:shape"] == [70, 90]
    assert it.properties["xgeo:model"] == "affine"
    assert it.assets["data"].href.endswith("a.tif")
    assert 14.9 < it.bbox[0] < 15.1 and 47.8 < it.bbox[1] < 47.9
    assert coll.assets["cube"].href.endswith("s.zarr")
    coll.normalize_hrefs(str(tmp_path / "stac"))
    assert coll.extent.temporal.intervals[0][0].year == 2024


# --------------------------------------------------------------------------- odc-geo / odc-stac
# odc-geo 0.5 still multiplies Affine objects with `*`, which affine 3 flags as pending deprecation.
_odc_warnings = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:odc")


def _two_scene_cube(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Cube of scene ``a`` (fixes the grid) and ``b`` on a grid 2 px right and 2 px down."""
    cube = tmp_path / "odc.zarr"
    a = _cog(tmp_path / "a.tif", 1)
    b = _cog(tmp_path / "b.tif", 2, transform=from_origin(500020.0, 5299980.0, 10.0, 10.0),
             shape=(40, 50))
    append_to_cube(cube, a, time="2024-01-01", qa={"model": "affine"}, scene_id="a")
    append_to_cube(cube, b, time="2024-02-01", qa={"model": "shift"}, scene_id="b")
    return cube, a, b


@_odc_warnings
def test_odc_geo_reads_the_cube_grid(tmp_path: Path) -> None:
    pytest.importorskip("odc.geo")
    import odc.geo.xr  # noqa: F401 - registers the .odc accessor
    from odc.geo.geobox import GeoBox

    cube, a, _ = _two_scene_cube(tmp_path)
    with rasterio.open(a) as src:
        want = GeoBox((src.height, src.width), src.transform, src.crs.to_wkt())
        crs, transform = src.crs, src.transform
    # CF: `data` names its grid-mapping variable on disk, so decode_coords="all" finds it too
    assert xr.open_zarr(cube)["data"].attrs["grid_mapping"] == "spatial_ref"
    opened = (xr.open_zarr(cube), xr.open_zarr(cube, decode_coords="all"), open_cube(cube))
    for ds in opened:  # plain xarray (both ways) and the project's opener
        for gb in (ds.odc.geobox, ds["data"].odc.geobox):
            assert gb is not None
            assert tuple(gb.shape) == (70, 90)
            assert gb.affine == transform
            assert gb.crs.epsg == 32633 and gb.crs == crs.to_wkt()
            assert gb == want
    # pixel centres odc-geo derives equal the cube's own x/y coordinates
    coords = want.coordinates
    np.testing.assert_array_equal(coords["x"].values, xr.open_zarr(cube).x.values)
    np.testing.assert_array_equal(coords["y"].values, xr.open_zarr(cube).y.values)


@_odc_warnings
def test_odc_stac_loads_cube_items_onto_the_cube_grid(tmp_path: Path) -> None:
    pytest.importorskip("odc.geo")
    odc_stac = pytest.importorskip("odc.stac")
    import odc.geo.xr  # noqa: F401

    cube, a, b = _two_scene_cube(tmp_path)
    items = sorted(cube_stac_collection(cube).get_items(), key=lambda it: it.id)
    assert items[0].assets["data"].extra_fields["raster:bands"][0]["data_type"] == "uint16"
    assert items[0].assets["data"].extra_fields["raster:bands"][0]["nodata"] == 0.0
    # one item alone: odc-stac derives the grid from proj:code/shape/transform
    one = odc_stac.load(items[:1])
    with rasterio.open(a) as src:
        assert one.odc.geobox.affine == src.transform and one.odc.crs.epsg == 32633
        assert tuple(one.odc.geobox.shape) == (src.height, src.width)
        assert sorted(one.data_vars) == ["data.1", "data.2"]
        assert one["data.2"].dtype == np.uint16 and one["data.2"].attrs["nodata"] == 0
        assert int(one["data.2"].isel(time=0).values[17, 41]) == int(src.read(2)[17, 41])
    # both items on the cube's geobox: the same values as the cube, nodata where it has NaN
    ds = open_cube(cube)
    both = odc_stac.load(items, geobox=ds.odc.geobox, resampling="nearest")
    assert both.odc.geobox == ds.odc.geobox
    np.testing.assert_array_equal(both.time.values, ds.time.values)
    for band in (1, 2):
        got = both[f"data.{band}"].values.astype(np.float32)
        got[got == 0] = np.nan
        np.testing.assert_array_equal(got, ds["data"].sel(band=band).values)
    with rasterio.open(b) as src:  # b's pixel (10, 10) lies at cube pixel (12, 12)
        assert int(both["data.1"].sel(time="2024-02-01").values[12, 12]) == int(src.read(1)[10, 10])


@_odc_warnings
def test_odc_stac_loads_output_items(tmp_path: Path) -> None:
    odc_stac = pytest.importorskip("odc.stac")
    from xgeo.catalog import Job, make_output_item

    ref, cog = _cog(tmp_path / "ref.tif", 5), _cog(tmp_path / "out.tif", 6)
    job = Job(id="job1", ref=ref, mov=tmp_path / "mov.tif")
    item = make_output_item(job, cog, tmp_path / "out.json", {"model": {"kind": "affine"}})
    loaded = odc_stac.load([item], bands=["data.1"])
    x, y = T @ (41.5, 17.5)
    with rasterio.open(cog) as src:
        assert loaded.odc.geobox.affine == src.transform and loaded.odc.crs.epsg == 32633
        assert tuple(loaded.odc.geobox.shape) == (src.height, src.width)
        got = loaded["data.1"].isel(time=0).sel(x=x, y=y).values
        assert got.dtype == np.uint16 and int(got) == int(src.read(1)[17, 41])
