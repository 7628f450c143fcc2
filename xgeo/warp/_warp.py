"""Apply a georegistration model to the moving file and write the result as a COG.

Frames (see ARCHITECTURE.md "Coordinate frames"): the model maps grid-mov pixel -> ref pixel
and the common grid is the reference grid, so the output on that grid is
``out[p] = mov_file[plan.grid_to_mov_file(model.inverse(p))]``.

Both paths write a tiled temporary GeoTIFF block by block (memory bounded by the block size,
not the scene), then convert it with GDAL's COG driver (:func:`xgeo.warp._cog.write_cog`), which
validates and renames atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from xgeo.errors import ConfigError, MissingFileError, NotARasterError, ShapeError
from xgeo.warp._cog import remove_quietly, temp_path_for, write_cog
from xgeo.warp._resample import RESAMPLINGS, BlockSource, coordinate_field, remap_block

__all__ = ["warp_to_cog", "geotransform_only_transform", "default_nodata"]

ProgressFn = Callable[[int, int], None]
GDAL_CACHE_MB = 256  # GDAL block cache while warping: bounds memory independently of scene size
_HALF = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])


def default_nodata(dtype: str | np.dtype, nodata: float | None) -> float:
    """The nodata value written outside coverage: the file's own, else 0 (uint) / NaN (float).

    Signed integers without nodata get the dtype minimum (e.g. -32768 for DEMs), which is far
    less likely than 0 to be a real value.
    """
    if nodata is not None:
        return float(nodata)
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.floating):
        return float("nan")
    if np.issubdtype(dt, np.signedinteger):
        return float(np.iinfo(dt).min)
    return 0.0


def _affine_of(scene: Any) -> Affine:
    aff = getattr(scene, "affine", None)
    if aff is not None:
        return aff if isinstance(aff, Affine) else Affine(*tuple(aff)[:6])
    return Affine(*tuple(scene.transform)[:6])


def _as3x3(aff: Affine) -> np.ndarray:
    return np.array([[aff.a, aff.b, aff.c], [aff.d, aff.e, aff.f], [0.0, 0.0, 1.0]])


def geotransform_only_transform(plan: Any, model: Any) -> Affine:
    """New geotransform of the moving file that applies a linear model without resampling.

    With ``M = model.to_matrix()`` (grid-mov px -> ref px) and ``A =
    plan.mov_file_to_grid_matrix()`` (mov-file px -> grid-mov px), both in the pixel-centre
    convention, ``T_new = T_ref @ H @ M @ A @ H^-1`` where ``H`` adds half a pixel (rasterio
    transforms address pixel corners). For a shift with ``A = I`` this is ``T_ref * M * A``.

    Raises:
        ConfigError: the model is not linear (``to_matrix()`` is ``None`` or not affine).
    """
    m = model.to_matrix()
    if m is None:
        raise ConfigError(
            f"resample=False needs a linear model (shift or affine), got {model.kind!r}; "
            "Hint: use resample=True or fit with kind='affine'")
    m = np.asarray(m, dtype=np.float64)
    a = np.asarray(plan.mov_file_to_grid_matrix(), dtype=np.float64)
    for name, mat in (("model.to_matrix()", m), ("plan.mov_file_to_grid_matrix()", a)):
        if mat.shape != (3, 3):
            raise ShapeError(name, "(3, 3)", mat.shape)
    t = _as3x3(_affine_of(plan.ref)) @ _HALF @ m @ a @ np.linalg.inv(_HALF)
    if not np.allclose(t[2], [0.0, 0.0, t[2, 2]], atol=1e-12) or abs(t[2, 2]) < 1e-12:
        raise ConfigError(f"resample=False needs an affine model; {model.kind!r} has a "
                          "projective part. Hint: use resample=True")
    t = t / t[2, 2]
    return Affine(t[0, 0], t[0, 1], t[0, 2], t[1, 0], t[1, 1], t[1, 2])


def _blocks(height: int, width: int, block: int) -> Iterator[tuple[int, int, int, int]]:
    for y0 in range(0, height, block):
        for x0 in range(0, width, block):
            yield x0, y0, min(block, width - x0), min(block, height - y0)


def _tile_size(block: int) -> int:
    return next(t for t in (512, 256, 128, 64, 32, 16) if block % t == 0)


def _open_mov(path: str | PathLike[str]) -> rasterio.io.DatasetReader:
    p = Path(path)
    if not p.exists():
        raise MissingFileError("moving file does not exist", p)
    try:
        return rasterio.open(p)
    except RasterioIOError as exc:
        raise NotARasterError(f"GDAL cannot open the moving file ({exc})", p) from exc


def _cast(values: np.ndarray, valid: np.ndarray, dtype: np.dtype, nodata: float) -> np.ndarray:
    """float32 ``(C, h, w)`` -> ``dtype``, rounded and clipped for integers, nodata outside."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        out = np.clip(np.rint(values), info.min, info.max).astype(dtype)
    else:
        out = values.astype(dtype)
    out[:, ~valid] = nodata
    return out


def _create_temp_tif(path: Path, ds: rasterio.io.DatasetReader, *, width: int, height: int,
                     transform: Affine, crs: CRS, dtype: np.dtype, nodata: float | None,
                     tile: int, band_names: tuple[str, ...] | None) -> rasterio.io.DatasetWriter:
    profile = dict(
        driver="GTiff", width=width, height=height, count=ds.count, dtype=dtype.name, crs=crs,
        transform=transform, nodata=nodata, tiled=True, blockxsize=tile, blockysize=tile,
        compress="DEFLATE", zlevel=1, bigtiff="IF_SAFER", interleave="pixel",
    )
    dst = rasterio.open(path, "w", **profile)
    try:
        descriptions = list(ds.descriptions)
        for i in range(ds.count):
            desc = descriptions[i]
            if not desc and band_names and i < len(band_names):
                name = str(band_names[i])
                desc = "" if name == f"band{i + 1}" else name  # Scene's placeholder name
            if desc:
                dst.set_band_description(i + 1, desc)
            btags = ds.tags(i + 1)
            if btags:
                dst.update_tags(i + 1, **btags)
        tags = {k: v for k, v in ds.tags().items() if k != "AREA_OR_POINT"}
        if tags:
            dst.update_tags(**tags)
        dst.scales, dst.offsets = ds.scales, ds.offsets
        if any(ds.units):
            dst.units = [u or "" for u in ds.units]
    except Exception:
        dst.close()
        raise
    return dst


def _check_options(block: int, resampling: str) -> None:
    if not isinstance(block, int) or block < 16 or block % 16:
        raise ConfigError(f"block={block!r} must be a positive multiple of 16 (e.g. 1024)")
    if resampling not in RESAMPLINGS:
        raise ConfigError(f"resampling={resampling!r} is not one of {tuple(RESAMPLINGS)}")


def warp_to_cog(
    plan: Any,
    model: Any,
    out_path: str | PathLike[str],
    *,
    resample: bool = True,
    block: int = 1024,
    resampling: str = "bilinear",
    progress: ProgressFn | None = None,
    compress: str = "DEFLATE",
    step: int = 16,
) -> Path:
    """Apply ``model`` to the moving file of ``plan`` and write a validated COG atomically.

    ``resample=True``: the output lies on the common (reference) grid, every band of the moving
    file in its own dtype: for each output block the chain ``ref px -> model.inverse ->
    plan.grid_to_mov_file`` is evaluated on nodes every ``step`` px and interpolated, only the
    needed window of the moving file is read, and OpenCV remaps it. Pixels the moving file does
    not cover get nodata (the file's nodata, else 0 for unsigned ints, the dtype minimum for
    signed ints, NaN for floats). Band descriptions, scales/offsets, units and tags are copied.

    ``resample=False`` (shift/affine only, AROSICS-style): the moving file's pixels are copied
    unchanged with the geotransform :func:`geotransform_only_transform` and the reference CRS.

    Args:
        plan: a ``TilePlan``-like object (``ref``, ``mov``, ``shape``, ``grid_to_mov_file``,
            ``mov_file_to_grid_matrix``).
        model: a ``GeoModel`` (``kind``, ``inverse(xy)``, ``to_matrix()``), grid-mov -> ref px.
        out_path: the COG to write; it exists only once complete and valid.
        resample: resample onto the common grid (``True``) or only rewrite the geotransform.
        block: output block edge in pixels (multiple of 16); memory scales with ``block**2``.
        resampling: ``bilinear`` (continuous data) | ``cubic`` | ``nearest`` (classes).
        progress: called as ``progress(done_blocks, total_blocks)`` after each block.
        compress: COG compression (see :func:`xgeo.warp.write_cog`).
        step: node spacing of the coordinate field (``1`` = evaluate the model at every pixel).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: bad option, or ``resample=False`` with a non-linear model.
        MissingFileError / NotARasterError: the moving file cannot be read.
    """
    _check_options(block, resampling)
    if int(step) < 1:
        raise ConfigError(f"step={step!r} must be >= 1")
    out = Path(out_path)
    if not out.parent.is_dir():
        raise MissingFileError("output folder does not exist", out.parent,
                               "create the folder or choose another output path")
    overview = "nearest" if resampling == "nearest" else "average"
    tmp = temp_path_for(out, "blocks", ".tif")
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), _open_mov(plan.mov.path) as ds:
            if resample:
                _resample_to_tif(plan, model, ds, tmp, block=block, resampling=resampling,
                                 progress=progress, step=int(step))
            else:
                transform = geotransform_only_transform(plan, model)
                _copy_to_tif(plan, ds, tmp, transform=transform, block=block, progress=progress)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            return write_cog(tmp, out, compress=compress, overview_resampling=overview)
    finally:
        remove_quietly(tmp)


def _resample_to_tif(plan: Any, model: Any, ds: rasterio.io.DatasetReader, tmp: Path, *,
                     block: int, resampling: str, progress: ProgressFn | None, step: int) -> None:
    height, width = (int(v) for v in plan.shape)
    dtype = np.dtype(np.result_type(*ds.dtypes))
    nodata = default_nodata(dtype, ds.nodata)
    use_mask = ds.nodata is None and any(
        (MaskFlags.per_dataset in f or MaskFlags.alpha in f) and MaskFlags.all_valid not in f
        for f in ds.mask_flag_enums)
    src = BlockSource(width=ds.width, height=ds.height, count=ds.count, nodata=ds.nodata)

    def mapping(xy: np.ndarray) -> np.ndarray:
        return np.asarray(plan.grid_to_mov_file(np.asarray(model.inverse(xy))), np.float64)

    crs = CRS.from_user_input(plan.ref.crs)
    blocks = list(_blocks(height, width, block))
    with _create_temp_tif(tmp, ds, width=width, height=height, transform=_affine_of(plan.ref),
                          crs=crs, dtype=dtype, nodata=nodata, tile=_tile_size(block),
                          band_names=getattr(plan.mov, "band_names", None)) as dst:
        for i, (x0, y0, w, h) in enumerate(blocks):
            map_x, map_y = coordinate_field(mapping, x0, y0, w, h, step=step)
            values, valid = remap_block(ds, src, map_x, map_y, resampling, use_mask)
            dst.write(_cast(values, valid, dtype, nodata), window=Window(x0, y0, w, h))
            if progress is not None:
                progress(i + 1, len(blocks))


def _copy_to_tif(plan: Any, ds: rasterio.io.DatasetReader, tmp: Path, *, transform: Affine,
                 block: int, progress: ProgressFn | None) -> None:
    dtype = np.dtype(np.result_type(*ds.dtypes))
    crs = CRS.from_user_input(plan.ref.crs)
    blocks = list(_blocks(ds.height, ds.width, block))
    with _create_temp_tif(tmp, ds, width=ds.width, height=ds.height, transform=transform,
                          crs=crs, dtype=dtype, nodata=ds.nodata, tile=_tile_size(block),
                          band_names=getattr(plan.mov, "band_names", None)) as dst:
        for i, (x0, y0, w, h) in enumerate(blocks):
            win = Window(x0, y0, w, h)
            dst.write(ds.read(window=win).astype(dtype, copy=False), window=win)
            if progress is not None:
                progress(i + 1, len(blocks))
