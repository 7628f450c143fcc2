"""Small raster writers for tests and benchmarks (tiled GeoTIFFs, optional nodata and masks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

__all__ = ["write_raster"]


def write_raster(path: str | Path, data: np.ndarray, crs: str | None = "EPSG:32633",
                 transform: Affine | Sequence[float] = Affine(10, 0, 500000, 0, -10, 5000000),
                 nodata: float | None = None, descriptions: Sequence[str] | None = None,
                 mask: np.ndarray | None = None, tags: dict[str, str] | None = None,
                 blocksize: int = 256) -> Path:
    """Write ``data`` ``(H, W)`` or ``(C, H, W)`` as a tiled, deflate-compressed GeoTIFF.

    Args:
        path: output file.
        data: pixel values in the dtype to write.
        crs: CRS string or ``None`` for a file without CRS.
        transform: geotransform (``Affine`` or its 6 numbers).
        nodata: nodata value to declare.
        descriptions: one band description per band.
        mask: bool ``(H, W)`` internal per-dataset mask (True = valid).
        tags: dataset tags.
        blocksize: tile side (multiple of 16).

    Returns:
        The path.
    """
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    aff = transform if isinstance(transform, Affine) else Affine(*transform[:6])
    count, h, w = arr.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": arr.dtype,
               "transform": aff, "nodata": nodata, "compress": "deflate"}
    if h >= blocksize and w >= blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions):
                ds.set_band_description(i + 1, d)
        if mask is not None:
            ds.write_mask(np.where(mask, 255, 0).astype(np.uint8))
        if tags:
            ds.update_tags(**tags)
    return Path(path)
