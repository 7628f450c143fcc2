"""Coarse georeferencing of the moving scene by the universal matcher, before tiling.

The tile stage matches each tile within its halo: it corrects what georeferencing left (a few
to tens of pixels), not a scene that is shifted by hundreds of pixels, rotated or scaled. When
the moving scene's georeferencing is that far off (or missing parts of it are guessed),
:func:`coarse_georef` matches overviews of both scenes (long side ``max_side``) with the
universal matcher's orientation and scale search, fits one affine by RANSAC and returns the
moving :class:`~xgeo.scenes.Scene` with that affine folded into its geotransform. Everything
after (tiles, fit, warp, report) then sees the corrected geotransform, so the final mapping is
the composition of the two. The file itself is never modified.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import cv2
import numpy as np
import rasterio
from rasterio.enums import Resampling

from xgeo.errors import RegistrationError
from xgeo.matcher.base import Matcher
from xgeo.modalities import compute_stats, normalise
from xgeo.scenes import Scene
from xgeo.tiling._plan import _same_crs, _transformer

__all__ = ["coarse_georef", "COARSE_MIN_INLIERS"]

COARSE_MIN_INLIERS = 12  # RANSAC inliers (3 overview px) needed to trust the coarse affine
_RANSAC_PX = 3.0  # in overview pixels of the moving scene


def _overview(scene: Scene, max_side: int) -> tuple[np.ndarray, float, float]:
    """The scene normalised to one band at long side <= ``max_side``: ``(img, sx, sy)`` with
    ``sx = overview width / file width`` (and ``sy`` likewise)."""
    stats = compute_stats(scene)
    f = min(1.0, max_side / max(scene.width, scene.height))
    w, h = max(8, round(scene.width * f)), max(8, round(scene.height * f))
    idx = list(scene.bands)
    with rasterio.open(scene.path) as ds:
        data = ds.read(idx, out_shape=(len(idx), h, w), out_dtype="float32",
                       resampling=Resampling.average)
        masks = ds.read_masks(idx, out_shape=(len(idx), h, w), resampling=Resampling.nearest)
    data[masks == 0] = np.nan
    data[~np.isfinite(data)] = np.nan
    return normalise(data, stats), w / scene.width, h / scene.height


def coarse_georef(ref: Scene, mov: Scene, matcher: Matcher | None = None, max_side: int = 832,
                  min_inliers: int = COARSE_MIN_INLIERS) -> tuple[Scene, dict[str, Any]]:
    """``mov`` with a geotransform corrected by matching overviews of both scenes.

    Args:
        ref: the reference scene.
        mov: the moving scene (any CRS; the affine is fitted in its own CRS).
        matcher: a matcher with orientation/scale search (default: the universal matcher with
            its defaults).
        max_side: long side of the overviews in pixels.
        min_inliers: RANSAC inliers (3 overview pixels) below which no correction is trusted.

    Returns:
        ``(mov with the corrected transform, info)``; ``info`` holds the matches, inliers, the
        correction as rotation (deg), scale and shift of the scene centre (moving-file pixels),
        the transform before and after, and the seconds.

    Raises:
        RegistrationError: too few consistent matches (the scenes may not show the same ground,
            or the overviews are too coarse for its features).
    """
    from xgeo.matcher import load_matcher

    t0 = time.perf_counter()
    m = matcher or load_matcher("universal")
    img_r, rsx, rsy = _overview(ref, max_side)
    img_m, msx, msy = _overview(mov, max_side)
    res = m.match(img_r, img_m)
    hint = ("the scenes may not show the same ground, or the overviews are too coarse: "
            "register without --coarse, or crop both scenes to their common area")
    if len(res) < min_inliers:
        raise RegistrationError(
            f"coarse alignment of {mov.path} onto {ref.path}: {len(res)} matches between the "
            f"overviews (>= {min_inliers} needed); {hint}")
    # overview pixel centres -> file pixel centres
    pr = np.stack([(res.points0[:, 0] + 0.5) / rsx - 0.5, (res.points0[:, 1] + 0.5) / rsy - 0.5], 1)
    pm = np.stack([(res.points1[:, 0] + 0.5) / msx - 0.5, (res.points1[:, 1] + 0.5) / msy - 0.5], 1)
    # where the matched ground lies (ref CRS), in the moving CRS, in moving-file pixels of the
    # current geotransform
    a, b, c, d, e, f = ref.transform
    xr = a * (pr[:, 0] + 0.5) + b * (pr[:, 1] + 0.5) + c
    yr = d * (pr[:, 0] + 0.5) + e * (pr[:, 1] + 0.5) + f
    if not _same_crs(ref.crs, mov.crs):
        xr, yr = (np.asarray(v, np.float64) for v in _transformer(ref.crs, mov.crs).transform(xr, yr))
    tm = np.array([[mov.affine.a, mov.affine.b, mov.affine.c], [mov.affine.d, mov.affine.e, mov.affine.f],
                   [0.0, 0.0, 1.0]])
    u = np.c_[xr, yr, np.ones(len(xr))] @ np.linalg.inv(tm).T
    truth = u[:, :2] - 0.5
    thr = _RANSAC_PX / min(msx, msy)
    g, inl = cv2.estimateAffine2D(pm.reshape(-1, 1, 2), truth.reshape(-1, 1, 2), method=cv2.RANSAC,
                                  ransacReprojThreshold=thr, confidence=0.9999, maxIters=5000)
    n_in = int(inl.sum()) if inl is not None else 0
    if g is None or n_in < min_inliers:
        raise RegistrationError(
            f"coarse alignment of {mov.path} onto {ref.path}: {n_in} of {len(res)} overview "
            f"matches agree on one affine (>= {min_inliers} needed); {hint}")
    # g maps pixel centres; in corner coordinates (the geotransform's) it is S(.5) g S(-.5)
    gc = np.vstack([g, [0.0, 0.0, 1.0]])
    half = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    gc = half @ gc @ np.linalg.inv(half)
    t = tm @ gc
    new = dataclasses.replace(mov, transform=tuple(float(v) for v in t[:2].ravel()))
    c = np.array([(mov.width - 1) / 2.0, (mov.height - 1) / 2.0])
    shift = g[:, :2] @ c + g[:, 2] - c
    info = {
        "matches": len(res), "inliers": n_in, "overview_side": max_side,
        "rotation_deg": round(float(np.degrees(np.arctan2(g[1, 0], g[0, 0]))), 3),
        "scale": round(float(np.sqrt(abs(np.linalg.det(g[:, :2])))), 5),
        "shift_px": [round(float(shift[0]), 2), round(float(shift[1]), 2)],
        "transform_before": list(mov.transform), "transform_after": list(new.transform),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return new, info
