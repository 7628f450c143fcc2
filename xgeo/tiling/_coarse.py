"""Coarse georeferencing of the moving scene by the universal matcher, before tiling.

The tile stage matches each tile within its halo: it corrects what georeferencing left (a few
to tens of pixels), not a scene that is shifted by hundreds of pixels, rotated or scaled. When
the moving scene's georeferencing is that far off (or missing parts of it are guessed),
:func:`coarse_georef` matches overviews of both scenes (long side ``max_side``) with the
universal matcher's orientation and scale search, fits one affine by RANSAC and returns the
moving :class:`~xgeo.scenes.Scene` with that affine folded into its geotransform. Each scene is
read around the other's footprint (with a margin) and both at one ground resolution, so a small
scene inside a large one, or products of different pixel sizes, reach the matcher at scale ~1.
Everything after (tiles, fit, warp, report) then sees the corrected geotransform, so the final
mapping is the composition of the two. The file itself is never modified.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import cv2
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from xgeo.errors import RegistrationError
from xgeo.matcher.base import Matcher
from xgeo.modalities import NormStats, compute_stats, normalise
from xgeo.scenes import Scene
from xgeo.scenes._scene import _read_valid
from xgeo.tiling._plan import _HALF, _HALF_INV, _matrix, grid_to_mov_file, mov_file_to_grid_matrix
from xgeo.tiling._prepare import footprint_on_grid

__all__ = ["coarse_georef", "COARSE_MIN_INLIERS"]

COARSE_MIN_INLIERS = 12  # RANSAC inliers (3 overview px) needed to trust the coarse affine
_RANSAC_PX = 3.0  # in overview pixels of the moving scene
_TIGHT_MARGIN = 0.1  # second pass: windows around the corrected footprint


def _window(a: Scene, b: Scene, margin: float) -> tuple[int, int, int, int]:
    """``(x0, y0, w, h)`` of ``a``'s pixels around ``b``'s footprint (as ``a``'s georeferencing
    places it), grown by ``margin`` times its larger side on every side, clipped to ``a``."""
    x0, y0, x1, y1 = footprint_on_grid(a, b)
    if not np.all(np.isfinite([x0, y0, x1, y1])):
        return 0, 0, a.width, a.height
    grow = margin * max(x1 - x0, y1 - y0)
    xa, ya = max(0, math.floor(x0 - grow)), max(0, math.floor(y0 - grow))
    xb, yb = min(a.width, math.ceil(x1 + grow) + 1), min(a.height, math.ceil(y1 + grow) + 1)
    if xb - xa < 8 or yb - ya < 8:  # footprints apart: the whole scene
        return 0, 0, a.width, a.height
    return xa, ya, xb - xa, yb - ya


def _overview(scene: Scene, stats: NormStats, win: tuple[int, int, int, int],
              factor: float) -> tuple[np.ndarray, float, float]:
    """``win`` of the scene normalised to one band (``stats``) and shrunk by ``factor`` (<= 1):
    ``(img, sx, sy)`` with ``sx = overview width / window width`` (and ``sy`` likewise)."""
    x0, y0, w, h = win
    ow, oh = max(8, round(w * factor)), max(8, round(h * factor))
    with rasterio.open(scene.path) as ds:
        data = _read_valid(ds, list(scene.bands), Window(x0, y0, w, h), (oh, ow),
                           resampling=Resampling.average)
    return normalise(data, stats), ow / w, oh / h


def _common_factors(ref: Scene, mov: Scene, wr: tuple[int, int, int, int],
                    wm: tuple[int, int, int, int], max_side: int) -> tuple[float, float]:
    """Shrink factors that put both windows at one ground resolution (the search then sees
    scale 1 between them, whatever the two products' pixel sizes) with the larger overview's
    long side at most ``max_side``; never above native resolution."""
    m = mov_file_to_grid_matrix(ref, mov)
    mov_px = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))  # one mov pixel in ref pixels
    extent = max(wr[2], wr[3], wm[2] * mov_px, wm[3] * mov_px)  # in ref pixels
    gsd = max(extent / max_side, 1.0, mov_px)  # overview pixel in ref pixels
    return 1.0 / gsd, mov_px / gsd


def _one_pass(ref: Scene, mov: Scene, stats: tuple[NormStats, NormStats], m: Matcher,
              max_side: int, margin: float, min_inliers: int) -> tuple[np.ndarray, dict[str, Any]]:
    """One overview match: ``(g, info)``, ``g`` the 3x3 affine (moving-file pixel centres ->
    where the matched ground puts them under ``mov``'s geotransform); ``stats``: the two
    scenes' normalisation."""
    # each side around the other's footprint (a small scene inside a large one), at one ground
    # resolution
    wr, wm = _window(ref, mov, margin), _window(mov, ref, margin)
    fr, fm = _common_factors(ref, mov, wr, wm, max_side)
    img_r, rsx, rsy = _overview(ref, stats[0], wr, fr)
    img_m, msx, msy = _overview(mov, stats[1], wm, fm)
    res = m.match(img_r, img_m)
    hint = ("the scenes may not show the same ground, or the overviews are too coarse: "
            "register without --coarse, or crop both scenes to their common area")
    if len(res) < min_inliers:
        raise RegistrationError(
            f"coarse alignment of {mov.path} onto {ref.path}: {len(res)} matches between the "
            f"overviews (>= {min_inliers} needed); {hint}")
    # overview pixel centres -> file pixel centres
    pr = np.stack([wr[0] + (res.points0[:, 0] + 0.5) / rsx - 0.5,
                   wr[1] + (res.points0[:, 1] + 0.5) / rsy - 0.5], 1)
    pm = np.stack([wm[0] + (res.points1[:, 0] + 0.5) / msx - 0.5,
                   wm[1] + (res.points1[:, 1] + 0.5) / msy - 0.5], 1)
    # where the matched ground lies, in moving-file pixels of the current geotransform
    truth = grid_to_mov_file(ref, mov, pr)
    thr = _RANSAC_PX / min(msx, msy)
    g, inl = cv2.estimateAffine2D(pm.reshape(-1, 1, 2), truth.reshape(-1, 1, 2), method=cv2.RANSAC,
                                  ransacReprojThreshold=thr, confidence=0.9999, maxIters=5000)
    n_in = int(inl.sum()) if inl is not None else 0
    if g is None or n_in < min_inliers:
        raise RegistrationError(
            f"coarse alignment of {mov.path} onto {ref.path}: {n_in} of {len(res)} overview "
            f"matches agree on one affine (>= {min_inliers} needed); {hint}")
    return np.vstack([g, [0.0, 0.0, 1.0]]), {
        "matches": len(res), "inliers": n_in, "ref_window": list(wr), "mov_window": list(wm),
        "overview_shapes": [list(img_r.shape), list(img_m.shape)],
        "overview_px": round(1.0 / fr, 3)}  # overview pixel in reference pixels


def _corrected(mov: Scene, g: np.ndarray) -> Scene:
    """``mov`` whose geotransform puts file pixel centre ``p`` where it put ``g(p)``."""
    t = _matrix(mov.affine) @ _HALF @ g @ _HALF_INV  # pixel centres -> corner convention
    return dataclasses.replace(mov, transform=tuple(float(v) for v in t[:2].ravel()))


def coarse_georef(ref: Scene, mov: Scene, matcher: Matcher | None = None, max_side: int = 832,
                  min_inliers: int = COARSE_MIN_INLIERS,
                  margin: float = 0.5) -> tuple[Scene, dict[str, Any]]:
    """``mov`` with a geotransform corrected by matching overviews of both scenes.

    A first pass reads each scene around the other's footprint grown by ``margin``; a second
    pass around the corrected footprints (grown by 10 %: the two windows then show about the
    same ground, finer where they are smaller than ``max_side``) refines it, and is kept only
    when it has ``min_inliers`` too.

    Args:
        ref: the reference scene.
        mov: the moving scene (any CRS; the affine is fitted in its own CRS).
        matcher: a matcher with orientation/scale search for both passes (default: the
            universal matcher with its defaults, and without the search for the second pass).
        max_side: long side of the larger overview in pixels.
        min_inliers: RANSAC inliers (3 overview pixels) below which no correction is trusted.
        margin: each scene is read around the other's footprint (as the current
            georeferencing places it) grown by this share of its larger side on every side
            (the whole scene when they do not meet): how far off the georeferencing may be.

    Returns:
        ``(mov with the corrected transform, info)``; ``info`` holds the matches, inliers, the
        correction as rotation (deg), scale and shift of the scene centre (moving-file pixels),
        the transform before and after, each pass's windows and overview sizes, the seconds.

    Raises:
        RegistrationError: too few consistent matches (the scenes may not show the same ground,
            or the overviews are too coarse for its features).
    """
    from xgeo.matcher import load_matcher

    t0 = time.perf_counter()
    m = matcher or load_matcher("universal")
    stats = (compute_stats(ref), compute_stats(mov))  # once: the windows change, the scenes not
    g, first = _one_pass(ref, mov, stats, m, max_side, margin, min_inliers)
    passes = [first]
    new = _corrected(mov, g)
    # the first pass left a few degrees at most: the refinement needs no orientation/scale search
    near = matcher or load_matcher("universal", orientation_search=False, scale_search=False)
    try:
        g2, second = _one_pass(ref, new, stats, near, max_side, _TIGHT_MARGIN, min_inliers)
    except RegistrationError as exc:
        passes.append({"kept": False, "reason": str(exc)})
    else:
        g, new = g @ g2, _corrected(new, g2)
        passes.append(second)
    c = np.array([(mov.width - 1) / 2.0, (mov.height - 1) / 2.0])
    shift = g[:2, :2] @ c + g[:2, 2] - c
    last = next(p for p in reversed(passes) if "inliers" in p)
    info = {
        "matches": last["matches"], "inliers": last["inliers"], "overview_side": max_side,
        "passes": passes,
        "rotation_deg": round(float(np.degrees(np.arctan2(g[1, 0], g[0, 0]))), 3),
        "scale": round(float(np.sqrt(abs(np.linalg.det(g[:2, :2])))), 5),
        "shift_px": [round(float(shift[0]), 2), round(float(shift[1]), 2)],
        "transform_before": list(mov.transform), "transform_after": list(new.transform),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return new, info
