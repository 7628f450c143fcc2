"""Cloud-optimised GeoTIFF writing and validation (GDAL COG driver), atomic on disk.

A COG is never written straight from a lazily computed array (rioxarray #410 gave all-zero
overviews that way): callers first write a finished, tiled GeoTIFF block by block, then
:func:`write_cog` converts it with GDAL's COG driver (tiling, overviews, compression), validates
the result and moves it into place with one :func:`os.replace`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate

from xgeo.errors import ConfigError, MissingFileError, XgeoError

__all__ = ["write_cog", "validate_cog", "temp_path_for", "remove_quietly", "atomic_target"]

COMPRESSIONS: tuple[str, ...] = ("DEFLATE", "LZW", "ZSTD", "LERC", "NONE", "JPEG", "WEBP")
OVERVIEW_RESAMPLINGS: tuple[str, ...] = (
    "nearest", "average", "bilinear", "cubic", "cubicspline", "lanczos", "mode", "rms",
)


def temp_path_for(out_path: Path, tag: str, suffix: str = ".tif") -> Path:
    """A hidden, unique path next to ``out_path`` (same filesystem, so renames are atomic)."""
    return out_path.parent / f".{out_path.name}.{tag}.{uuid.uuid4().hex[:10]}{suffix}"


def remove_quietly(path: Path) -> None:
    """Remove ``path`` and its sidecars (GDAL ``.aux.xml``/``.ovr``/``.msk``, SQLite journals)."""
    sidecars = (".aux.xml", ".ovr", ".msk", "-journal", "-wal", "-shm")
    for p in (path, *(path.with_name(path.name + s) for s in sidecars)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def atomic_target(out_path: str | PathLike[str], tag: str, suffix: str) -> Iterator[Path]:
    """Yield a temporary path next to ``out_path``; on success rename it onto ``out_path``.

    On any exception the temporary file (and its GDAL sidecars) is removed and ``out_path`` is
    left untouched, so a reader never sees a half-written file.
    """
    out = Path(out_path)
    if not out.parent.is_dir():
        raise MissingFileError("output folder does not exist", out.parent,
                               "create the folder or choose another output path")
    tmp = temp_path_for(out, tag, suffix)
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        remove_quietly(tmp)


def validate_cog(path: str | PathLike[str]) -> tuple[bool, list[str], list[str]]:
    """Check that ``path`` is a valid Cloud-Optimised GeoTIFF.

    Uses :func:`rio_cogeo.cogeo.cog_validate` (the ``rio cogeo validate`` command exits 0 even
    for invalid files, so only the Python function is trustworthy).

    Returns:
        ``(is_valid, errors, warnings)``.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError("file to validate does not exist", p)
    valid, errors, warnings = cog_validate(str(p), quiet=True)
    return bool(valid), list(errors), list(warnings)


def write_cog(
    src_tif: str | PathLike[str],
    out_path: str | PathLike[str],
    *,
    compress: str = "DEFLATE",
    overview_resampling: str = "average",
    blocksize: int = 512,
) -> Path:
    """Convert a finished GeoTIFF to a validated COG at ``out_path``, atomically.

    The COG driver copies nodata, band descriptions, colour interpretation and tags from the
    source, tiles it (``blocksize`` square), builds overviews down to one tile and compresses.

    Args:
        src_tif: a finished raster GDAL can read (typically a tiled temporary GeoTIFF).
        out_path: final path; it appears only once the COG is complete and valid.
        compress: ``DEFLATE`` | ``LZW`` | ``ZSTD`` | ``LERC`` | ``NONE`` | ``JPEG`` | ``WEBP``.
        overview_resampling: GDAL overview resampling (``average`` for continuous data,
            ``nearest``/``mode`` for classes).
        blocksize: COG tile size in pixels (multiple of 16).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: unknown compression/resampling, bad blocksize.
        MissingFileError: ``src_tif`` or the output folder does not exist.
        XgeoError: GDAL wrote a file that does not validate as COG (nothing is left behind).
    """
    src = Path(src_tif)
    if not src.is_file():
        raise MissingFileError("source raster for the COG does not exist", src)
    comp = str(compress).upper()
    if comp not in COMPRESSIONS:
        raise ConfigError(f"compress={compress!r} is not one of {COMPRESSIONS}")
    ovr = str(overview_resampling).lower()
    if ovr not in OVERVIEW_RESAMPLINGS:
        raise ConfigError(
            f"overview_resampling={overview_resampling!r} is not one of {OVERVIEW_RESAMPLINGS}")
    if int(blocksize) < 16 or int(blocksize) % 16:
        raise ConfigError(f"blocksize={blocksize} must be a positive multiple of 16")

    options: dict[str, str] = {
        "COMPRESS": comp,
        "BLOCKSIZE": str(int(blocksize)),
        "OVERVIEW_RESAMPLING": ovr.upper(),
        "OVERVIEWS": "IGNORE_EXISTING",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(src) as ds:
        floating = ds.dtypes[0].startswith("float")
    if comp in ("DEFLATE", "LZW", "ZSTD"):
        options["PREDICTOR"] = "FLOATING_POINT" if floating else "YES"

    with atomic_target(out_path, "cog", ".tif") as tmp:
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True, GDAL_PAM_ENABLED=False):
            rasterio.shutil.copy(str(src), str(tmp), driver="COG", strict=True, **options)
        valid, errors, _ = validate_cog(tmp)
        if not valid:
            raise XgeoError(f"{out_path}: GDAL wrote a GeoTIFF that is not a valid COG: {errors}")
    return Path(out_path)
