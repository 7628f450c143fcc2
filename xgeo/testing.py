"""Seeded helpers for tests and benchmarks: inject a known misregistration into a raster.

Both injectors return ``G``: a function mapping pixels ``(N, 2)`` of the *written* moving file to
pixels of the *original* moving file. If ``R0`` is the true (or measured) original-mov -> ref
mapping, the truth for the written file is ``R0(G(u))``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["similarity_matrix", "inject_geotransform_shift", "inject_resampled", "check_grid",
           "rmse"]

PointMap = Callable[[np.ndarray], np.ndarray]


def similarity_matrix(rotation_deg: float, scale: float, shift: tuple[float, float],
                      centre: tuple[float, float]) -> np.ndarray:
    """3x3 matrix ``W``: rotate by ``rotation_deg`` and scale about ``centre``, then shift."""
    a = np.deg2rad(rotation_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    cx, cy = centre
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    t0 = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    t1 = np.array([[1, 0, cx + shift[0]], [0, 1, cy + shift[1]], [0, 0, 1.0]])
    return t1 @ m @ t0


def _apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, np.float64)
    return xy @ m[:2, :2].T + m[:2, 2]


def inject_geotransform_shift(src: str | Path, dst: str | Path,
                              shift_px: tuple[float, float] = (3.4, -2.7)) -> PointMap:
    """Copy ``src`` to ``dst`` with the geotransform moved by ``shift_px`` (x, y) pixels.

    The pixels are unchanged, so the content-based truth is the identity: ``G(u) = u``.
    """
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(src) as ds:
        profile = ds.profile.copy()
        data = ds.read()
        desc = ds.descriptions
    profile["transform"] = profile["transform"] @ Affine.translation(*shift_px)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
        out.descriptions = desc
    return lambda xy: np.asarray(xy, np.float64)


def inject_resampled(src: str | Path, dst: str | Path, rotation_deg: float = 0.5,
                     scale: float = 1.003, shift_px: tuple[float, float] = (3.4, -2.7)) -> PointMap:
    """Write ``dst`` whose pixel ``u`` shows ``src`` at ``W(u)`` (same geotransform).

    ``W`` is a similarity about the image centre; out-of-image pixels become nodata.
    Returns ``G = W``.
    """
    import cv2
    import rasterio

    with rasterio.open(src) as ds:
        profile = ds.profile.copy()
        data = ds.read()
        desc = ds.descriptions
        w, h = ds.width, ds.height
    m = similarity_matrix(rotation_deg, scale, shift_px, ((w - 1) / 2, (h - 1) / 2))
    is_float = np.issubdtype(data.dtype, np.floating)
    nodata = profile.get("nodata")
    if nodata is None:
        nodata = np.nan if is_float else 0
        profile["nodata"] = nodata
    out = np.empty_like(data)
    for b in range(data.shape[0]):
        band = data[b].astype(np.float32)
        warped = cv2.warpAffine(band, m[:2].astype(np.float64), (w, h),
                                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        valid = np.isfinite(warped)
        if not is_float:
            info = np.iinfo(data.dtype)
            warped = np.clip(np.nan_to_num(warped, nan=float(nodata)), info.min, info.max)
            warped = np.round(warped)
        else:
            warped[~valid] = nodata
        out[b] = warped.astype(data.dtype)
    with rasterio.open(dst, "w", **profile) as ds_out:
        ds_out.write(out)
        ds_out.descriptions = desc
    return lambda xy: _apply(m, xy)


def check_grid(width: int, height: int, n: int = 20, margin: float = 0.15) -> np.ndarray:
    """``(n*n, 2)`` check points on a regular grid inside the image, away from the borders."""
    xs = np.linspace(margin * (width - 1), (1 - margin) * (width - 1), n)
    ys = np.linspace(margin * (height - 1), (1 - margin) * (height - 1), n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean square of the point distances between ``a`` and ``b`` ``(N, 2)``."""
    return float(np.sqrt(np.mean(np.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=1))))
