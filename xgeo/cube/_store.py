"""The analyst cube: registered scenes in one Zarr v3 store per AOI/grid.

Layout (CF + GDAL conventions that ``xr.open_zarr`` + rioxarray and odc-geo read)::

    data       (time, band, y, x) float32, NaN = nodata, chunks (1, bands, 512, 512)
    x, y       pixel-centre coordinates in the grid CRS
    band       1-based band index; attribute ``long_names`` lists descriptions
    time       datetime64 (seconds since 1970-01-01, int64 on disk)
    spatial_ref  scalar grid-mapping variable (``crs_wkt``, ``spatial_ref``, ``GeoTransform``)
    scene_id, source_href, qa_model, qa_json       (time,) strings
    qa_rmse_px, qa_ce90_px, qa_n_tiepoints, qa_n_inliers  (time,) numbers

Slices are stored in arrival order (``open_cube`` sorts by time). Appends are idempotent by
``scene_id`` (the same scene again overwrites its own slice) and safe for parallel writers: a
file lock serialises the small metadata step (find or reserve the slice index, resize the time
axis, write time + scene id), then the pixels go in as a region write of that one slice, whose
chunks no other writer touches.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import rioxarray  # noqa: F401 - registers the .rio accessor used on cube datasets
import xarray as xr
import zarr
from affine import Affine
from pyproj import CRS
from rasterio.warp import Resampling, reproject

from xgeo.errors import ConfigError, InputError, MissingFileError, NotARasterError

__all__ = ["append_to_cube", "open_cube", "cube_grid", "CubeError", "QA_NUMERIC"]

CHUNK = 512
QA_NUMERIC = {
    "qa_rmse_px": ("rmse_px", np.float64),
    "qa_ce90_px": ("ce90_px", np.float64),
    "qa_n_tiepoints": ("n_tiepoints", np.float64),
    "qa_n_inliers": ("n_inliers", np.float64),
}
QA_TEXT = ("scene_id", "source_href", "qa_model", "qa_json")
TIME_ENCODING = {"units": "seconds since 1970-01-01T00:00:00", "calendar": "proleptic_gregorian",
                 "dtype": "int64"}


class CubeError(InputError):
    """The cube store is not an xgeo cube, or a scene does not fit its grid/bands."""


@contextmanager
def _locked(cube: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``<cube>.lock`` (POSIX ``flock``)."""
    lock = cube.with_name(cube.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _quiet() -> Any:
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
    return ctx


def _read_cog(path: Path) -> tuple[np.ndarray, Affine, CRS, list[str]]:
    if not path.exists():
        raise MissingFileError("scene file does not exist", path, hint="check the path")
    try:
        with rasterio.open(path) as ds:
            arr = ds.read(masked=True)
            data = np.ma.filled(arr.astype(np.float32), np.nan)
            if ds.crs is None:
                raise CubeError("raster has no CRS", path, hint="only georeferenced COGs go in")
            names = [d or f"band{i + 1}" for i, d in enumerate(ds.descriptions)]
            return data, ds.transform, CRS.from_user_input(ds.crs.to_wkt()), names
    except rasterio.errors.RasterioIOError as exc:
        raise NotARasterError(f"cannot open as a raster ({exc})", path,
                              hint="pass a COG written by xgeo register") from exc


def cube_grid(cube: str | Path) -> tuple[Affine, CRS, tuple[int, int], int]:
    """``(transform, crs, (H, W), n_bands)`` of an existing cube."""
    ds = xr.open_zarr(cube, consolidated=False)
    gt = [float(v) for v in str(ds["spatial_ref"].attrs["GeoTransform"]).split()]
    t = Affine.from_gdal(*gt)
    crs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
    return t, crs, (ds.sizes["y"], ds.sizes["x"]), ds.sizes["band"]


def _onto_grid(data: np.ndarray, t: Affine, crs: CRS, gt: Affine, gcrs: CRS,
               shape: tuple[int, int]) -> np.ndarray:
    if crs == gcrs and t.almost_equals(gt) and data.shape[1:] == shape:
        return data
    out = np.full((data.shape[0], *shape), np.nan, np.float32)
    for b in range(data.shape[0]):
        reproject(data[b], out[b], src_transform=t, src_crs=crs.to_wkt(), dst_transform=gt,
                  dst_crs=gcrs.to_wkt(), src_nodata=np.nan, dst_nodata=np.nan,
                  resampling=Resampling.nearest)
    return out


def _qa_vars(qa: dict[str, Any], scene_id: str, href: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scene_id": np.array([scene_id], dtype=object),
        "source_href": np.array([href], dtype=object),
        "qa_model": np.array([str(qa.get("model", qa.get("kind", "")))], dtype=object),
        "qa_json": np.array([json.dumps(qa, default=str, sort_keys=True)], dtype=object),
    }
    for var, (key, dt) in QA_NUMERIC.items():
        v = qa.get(key)
        out[var] = np.array([np.nan if v is None else float(v)], dtype=dt)
    return out


def _slice_dataset(data: np.ndarray, gt: Affine, crs: CRS, names: list[str], time: Any,
                   qa: dict[str, Any], scene_id: str, href: str) -> xr.Dataset:
    nb, h, w = data.shape
    x = gt.c + gt.a * (np.arange(w) + 0.5)
    y = gt.f + gt.e * (np.arange(h) + 0.5)
    t = np.array([pd.Timestamp(time).tz_localize(None) if pd.Timestamp(time).tzinfo is None
                  else pd.Timestamp(time).tz_convert("UTC").tz_localize(None)],
                 dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"data": (("time", "band", "y", "x"), data[None].astype(np.float32))},
        coords={"time": t, "band": np.arange(1, nb + 1), "y": y, "x": x},
    )
    for k, v in _qa_vars(qa, scene_id, href).items():
        ds[k] = ("time", v)
    ds = ds.rio.write_crs(crs.to_wkt()).rio.write_transform(gt)
    ds["band"].attrs["long_names"] = list(names)
    ds["x"].attrs.update(standard_name="projection_x_coordinate", units="m", axis="X")
    ds["y"].attrs.update(standard_name="projection_y_coordinate", units="m", axis="Y")
    ds["data"].attrs.update(long_name="registered reflectance / value", _xgeo="cube")
    ds.attrs.update(coordinates="spatial_ref", title="xgeo analyst cube",
                    Conventions="CF-1.8", xgeo_cube_version="1")
    return ds


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    nb, h, w = ds.sizes["band"], ds.sizes["y"], ds.sizes["x"]
    return {
        # ``encoding=`` replaces the variable's own, which holds rioxarray's grid_mapping: name it
        # again so ``data`` carries the CF ``grid_mapping`` attribute on disk (odc-geo, GDAL).
        "data": {"chunks": (1, nb, min(CHUNK, h), min(CHUNK, w)), "grid_mapping": "spatial_ref"},
        "time": dict(TIME_ENCODING, chunks=(CHUNK,)),
        **{k: {"chunks": (CHUNK,)} for k in (*QA_TEXT, *QA_NUMERIC)},
    }


def append_to_cube(
    cube_path: str | Path,
    cog_path: str | Path,
    *,
    time: Any,
    qa: dict[str, Any] | None = None,
    scene_id: str,
) -> int:
    """Append (or replace) one registered scene as a time slice of a Zarr v3 cube.

    The first scene fixes the grid (CRS, transform, size) and band count; later scenes on
    another grid are resampled onto it (nearest neighbour, so values are copied, not blended).

    Args:
        cube_path: ``*.zarr`` directory (created if missing).
        cog_path: registered COG (``xgeo register`` output).
        time: acquisition time (anything ``pandas.Timestamp`` parses; UTC when tz-aware).
        qa: per-scene QA (``model, rmse_px, ce90_px, n_tiepoints, n_inliers, source_ids, ...``).
        scene_id: unique id; appending the same id again overwrites its slice.

    Returns:
        The slice index (storage order) written.

    Raises:
        CubeError: band count differs from the cube's, or the store is not an xgeo cube.
        MissingFileError, NotARasterError: unreadable COG.
    """
    if not scene_id:
        raise ConfigError("append_to_cube: scene_id must be a non-empty string")
    cube = Path(cube_path)
    cog = Path(cog_path)
    data, t, crs, names = _read_cog(cog)
    qa = dict(qa or {})
    href = str(cog.resolve())
    ctx = _quiet()
    try:
        with _locked(cube):
            if not (cube / "zarr.json").exists():
                ds = _slice_dataset(data, t, crs, names, time, qa, scene_id, href)
                ds.to_zarr(cube, mode="w-", zarr_format=3, consolidated=True,
                           encoding=_encoding(ds))
                return 0
            gt, gcrs, shape, nb = cube_grid(cube)
            if data.shape[0] != nb:
                raise CubeError(f"scene has {data.shape[0]} bands, the cube {nb}", cog,
                                hint="use one cube per band set")
            existing = xr.open_zarr(cube, consolidated=False)["scene_id"].values
            hits = [i for i, v in enumerate(existing.tolist()) if str(v) == scene_id]
            if len(hits):
                index = int(hits[0])
            else:  # reserve a slice: grow the time axis of every time-indexed array
                index = len(existing)
                group = zarr.open_group(str(cube), mode="r+")
                for _name, arr in group.arrays():
                    dims = arr.metadata.dimension_names or ()
                    if dims and dims[0] == "time":
                        arr.resize((index + 1, *arr.shape[1:]))
                zarr.consolidate_metadata(str(cube))
            head = _slice_dataset(data[:, :1, :1], gt, gcrs, names, time, qa, scene_id, href)
            head = head[["scene_id"]].drop_vars(["band", "x", "y", "spatial_ref"],
                                                errors="ignore")
            head.to_zarr(cube, region={"time": slice(index, index + 1)}, mode="r+",
                         consolidated=False)
            # xarray leaves index coordinates alone in region writes: write time ourselves,
            # encoded as on creation (int64 seconds since the epoch).
            seconds = int((head["time"].values[0] - np.datetime64("1970-01-01T00:00:00", "ns"))
                          // np.timedelta64(1, "s"))
            zarr.open_group(str(cube), mode="r+")["time"][index] = seconds
        # Pixels and QA of this slice: chunks of this time index belong to this writer alone.
        on_grid = _onto_grid(data, t, crs, gt, gcrs, shape)
        ds = _slice_dataset(on_grid, gt, gcrs, names, time, qa, scene_id, href)
        ds = ds.drop_vars(["band", "x", "y", "spatial_ref"])
        ds.to_zarr(cube, region={"time": slice(index, index + 1)}, mode="r+", consolidated=False)
        return index
    finally:
        ctx.__exit__(None, None, None)


def open_cube(path: str | Path, sort: bool = True) -> xr.Dataset:
    """Open a cube lazily (dask), sorted by time; CRS available through ``ds.rio.crs``.

    Raises:
        CubeError: the path is not an xgeo cube.
    """
    p = Path(path)
    if not (p / "zarr.json").exists():
        raise CubeError("not a Zarr v3 cube", p, hint="create it with xgeo.cube.append_to_cube")
    ctx = _quiet()
    try:
        ds = xr.open_zarr(p, consolidated=None)
    finally:
        ctx.__exit__(None, None, None)
    if "data" not in ds or "spatial_ref" not in ds.coords:
        raise CubeError("store lacks the xgeo cube variables (data, spatial_ref)", p)
    if sort and ds.sizes.get("time", 0) > 1:
        ds = ds.sortby("time")
    return ds
