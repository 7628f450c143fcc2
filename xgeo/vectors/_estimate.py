"""Estimate the map-raster -> image pixel model: matcher tie points, then dense refinement.

Frames: both rasters lie on the *image grid* (the image's own pixels); the map raster is the
vector map rendered there by its (possibly wrong) georeferencing. The model maps a map-raster
pixel to the image pixel that shows the same ground (``mov_to_ref`` with mov = map).

Stages (each recorded in the returned ``info``):

1. ``matcher``: the matcher (``img0`` = image, ``img1`` = map raster) on the whole grid or on
   overlapping tiles; tie points fused by :func:`xgeo.geometry.fuse`.
2. ``dense``: for linear models, a similarity correction ``S`` (shift, rotation, scale about
   the grid centre) composed onto the tie-point model, found by maximising the mutual
   information between the image and the warped map raster (Powell). Maps and images share
   boundaries, not intensities, so an area-based criterion over every pixel complements tie
   points where structure is sparse (glacier outlines, hillshades).
3. ``rematch``: the matcher once more on the corrected map raster (residual offsets are then
   small, where template matching is most precise), composed onto the dense model.
4. ``correlate`` (when a structure image is given, linear models): a search over rotations and
   shifts maximising the correlation between the image's *edge strength* (slope for DEMs,
   gradient magnitude otherwise) and the map's boundaries. It is the fallback for pairs whose
   intensities share almost nothing (mutual information below ``min_mi``): it is used only
   when its peak stands out and two disjoint halves of the image (a checkerboard of blocks)
   each find the same peak.

Otherwise the candidate with the highest mutual information wins; candidates within
``mi_tolerance`` of the best are ranked rematch > matcher > dense > correlate (tie points are
sub-pixel where they exist). Without trustworthy tie points (>= 12 inliers, RMSE <= 1 px) the
``dense`` optimum must be found again on both checkerboard halves of the image, or it is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy import fft as sfft
from scipy import optimize

from xgeo.errors import ConfigError, RegistrationError, XgeoError
from xgeo.geometry import AffineModel, GeoModel, ShiftModel, fuse
from xgeo.matcher import Matcher, Matches
from xgeo.matcher._structural import block_mean, subpixel_peak, xcorr_full

__all__ = ["Estimate", "correlate_structure", "edge_strength", "estimate_map_to_image", "match_tiled",
           "mutual_information"]

log = logging.getLogger(__name__)

_LINEAR = ("shift", "affine")


@dataclass(frozen=True)
class Estimate:
    """Result of :func:`estimate_map_to_image`.

    Attributes:
        model: map-raster pixel -> image pixel.
        kind: model kind (``shift | affine | poly2 | poly3 | tps``).
        source: which stage produced it (``matcher | dense | rematch``).
        qa: tie-point QA of the matcher stage (``xgeo.geometry.fuse`` fields) plus ``mi``.
        info: per-stage diagnostics (JSON-able).
    """

    model: GeoModel
    kind: str
    source: str
    qa: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def _tiles(shape: tuple[int, int], size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    h, w = shape
    if max(h, w) <= size + overlap:
        return [(0, h, 0, w)]
    step = size
    out = []
    for y0 in range(0, max(h - overlap, 1), step):
        for x0 in range(0, max(w - overlap, 1), step):
            out.append((y0, min(y0 + size + overlap, h), x0, min(x0 + size + overlap, w)))
    return out


def match_tiled(
    matcher: Matcher, img: np.ndarray, map_raster: np.ndarray, tile: int = 1024, overlap: int = 96
) -> tuple[Matches, np.ndarray]:
    """Match ``img`` (img0) against ``map_raster`` (img1) on overlapping tiles of one grid.

    Args:
        matcher: any :class:`~xgeo.matcher.Matcher`.
        img: float32 ``(H, W)`` image, NaN invalid.
        map_raster: float32 ``(H, W)`` map raster on the same grid.
        tile: tile side in px (the whole grid when it fits in ``tile + overlap``).
        overlap: overlap between tiles in px.

    Returns:
        ``(matches, tile_ids)``: matches in full-grid pixels and ``(N,)`` spatial block ids
        (256 px blocks of ``points0``) for the per-tile filter of the fusion.
    """
    parts: list[Matches] = []
    for y0, y1, x0, x1 in _tiles(img.shape, tile, overlap):
        m = matcher.match(img[y0:y1, x0:x1], map_raster[y0:y1, x0:x1])
        if len(m):
            parts.append(m.offset((x0, y0), (x0, y0)))
    if not parts:
        return Matches.empty(), np.zeros((0,), np.int64)
    p0 = np.concatenate([p.points0 for p in parts])
    p1 = np.concatenate([p.points1 for p in parts])
    c = np.concatenate([p.confidence for p in parts])
    m = Matches(p0, p1, c, dict(parts[0].info))
    block = 256
    bx = (p0[:, 0] // block).astype(np.int64)
    by = (p0[:, 1] // block).astype(np.int64)
    return m, by * 10_000 + bx


def _quantise(a: np.ndarray, valid: np.ndarray, bins: int) -> np.ndarray:
    v = a[valid]
    lo, hi = (np.percentile(v, [1.0, 99.0]) if v.size else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    q = np.clip(((np.where(valid, a, lo) - lo) / (hi - lo) * bins).astype(np.int32), 0, bins - 1)
    return q


def mutual_information(qa: np.ndarray, qb: np.ndarray, na: int, nb: int) -> float:
    """Mutual information (nats) of two integer label arrays ``(N,)`` in ``[0, na)``, ``[0, nb)``."""
    if qa.size == 0:
        return 0.0
    h = np.bincount(qa * nb + qb, minlength=na * nb).reshape(na, nb).astype(np.float64)
    h /= h.sum()
    pa = h.sum(1, keepdims=True)
    pb = h.sum(0, keepdims=True)
    nz = h > 0
    return float((h[nz] * np.log(h[nz] / (pa @ pb)[nz])).sum())


class _MIScore:
    """MI between the image and the map raster warped by a 3x3 affine (map -> image pixels).

    ``factor`` > 1 evaluates on block-averaged copies (the matrix is given in full-resolution
    pixels and converted: a coarse pixel centre ``u`` is the fine point ``f u + (f - 1) / 2``).
    """

    def __init__(self, img: np.ndarray, map_raster: np.ndarray, factor: int = 1,
                 bins_img: int = 32, bins_map: int = 16) -> None:
        img = block_mean(img, factor)
        self.valid = np.isfinite(img)
        self.qi = _quantise(img, self.valid, bins_img)
        self.map = block_mean(map_raster.astype(np.float32), factor)
        self.ni, self.nm = bins_img, bins_map
        self.h, self.w = img.shape
        f = float(factor)
        self._d = np.array([[f, 0.0, (f - 1) / 2], [0.0, f, (f - 1) / 2], [0.0, 0.0, 1.0]])
        self._dinv = np.linalg.inv(self._d)

    def __call__(self, m33: np.ndarray) -> float:
        m = np.eye(3)
        m[:2] = np.asarray(m33, float)[:2]
        m = self._dinv @ m @ self._d
        warped = cv2.warpAffine(self.map, m[:2], (self.w, self.h),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=-1.0)
        v = self.valid & (warped >= 0)
        if v.sum() < 0.2 * v.size:
            return 0.0
        qm = np.clip((warped[v] * self.nm).astype(np.int32), 0, self.nm - 1)
        return mutual_information(self.qi[v], qm, self.ni, self.nm)


def _similarity(p: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """3x3 similarity about ``centre`` from ``p = (tx, ty[, theta_deg, log_scale])``."""
    tx, ty = p[0], p[1]
    th = np.deg2rad(p[2]) if len(p) > 2 else 0.0
    s = float(np.exp(p[3])) if len(p) > 3 else 1.0
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) * s
    t = centre - r @ centre + np.array([tx, ty])
    out = np.eye(3)
    out[:2, :2] = r
    out[:2, 2] = t
    return out


def _as_model(m33: np.ndarray, kind: str) -> GeoModel:
    if kind == "shift":
        return ShiftModel(float(m33[0, 2]), float(m33[1, 2]))
    return AffineModel(np.asarray(m33[:2], dtype=np.float64))


def _dense_refine(img: np.ndarray, map_raster: np.ndarray, starts: list[np.ndarray], kind: str,
                  max_evals: int = 300, search_px: int = 16) -> tuple[np.ndarray, float, int]:
    """Maximise MI over a similarity correction ``S`` of ``S @ m0``, coarse to fine.

    On the coarsest level a grid of shifts (and rotations of up to 1 degree) around each start
    model picks ``m0``; Powell then refines on every level.

    Returns:
        ``(S @ m0 (3x3), MI at full resolution, number of MI evaluations)``.
    """
    h, w = img.shape
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    n = 2 if kind == "shift" else 4
    evals = 0
    levels = [f for f in (4, 2, 1) if min(h, w) // f >= 64]
    p = np.zeros(n)
    m0 = starts[0]
    for i, f in enumerate(levels):
        score = _MIScore(img, map_raster, factor=f)

        if i == 0:  # grid of shifts and small rotations around every start
            best = (np.inf, p, m0)
            angles = [0.0] if n == 2 else [-1.0, -0.5, 0.0, 0.5, 1.0]
            step = max(1, f // 2)
            for start in starts:
                for th in angles:
                    for dy in range(-search_px, search_px + 1, step):
                        for dx in range(-search_px, search_px + 1, step):
                            q = np.array([dx, dy, th, 0.0][:n], float)
                            v = -score(_similarity(q, centre) @ start)
                            evals += 1
                            if v < best[0]:
                                best = (v, q, start)
            _, p, m0 = best

        def neg(q: np.ndarray, score: _MIScore = score, base: np.ndarray = m0) -> float:
            nonlocal evals
            evals += 1
            return -score(_similarity(q, centre) @ base)

        scale = np.array([f, f, 0.25 * f, 0.002 * f][:n])  # initial Powell directions
        res = optimize.minimize(neg, p, method="Powell",
                                options={"xtol": 1e-3, "ftol": 1e-6,
                                         "maxfev": max_evals // (1 + i),
                                         "direc": np.diag(scale)})
        q = np.asarray(res.x, float)
        if n == 2 or (abs(q[2]) <= 5.0 and abs(q[3]) <= 0.05):  # else implausible: keep p
            p = q
    final = _MIScore(img, map_raster)
    m = _similarity(p, centre) @ m0
    return m, final(m), evals


def edge_strength(a: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Gradient magnitude of a Gaussian-smoothed image, NaN where ``a`` is NaN.

    Args:
        a: float ``(H, W)``, NaN invalid.
        sigma: smoothing (px) before the gradient.

    Returns:
        float32 ``(H, W)``.
    """
    from scipy import ndimage

    fin = np.isfinite(a)
    filled = np.where(fin, a, np.nanmean(a) if fin.any() else 0.0).astype(np.float64)
    gy, gx = np.gradient(ndimage.gaussian_filter(filled, sigma))
    out = np.hypot(gx, gy).astype(np.float32)
    out[~fin] = np.nan
    return out


def _standardise(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(a.shape, np.float64)
    if valid.sum() < 16:
        return out
    v = a[valid]
    out[valid] = (v - v.mean()) / (v.std() + 1e-12)
    return out


def _xcorr(a_fft: np.ndarray, b: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """``c[dy + r, dx + r] = sum_x a(x + d) b(x)`` for ``|dx|, |dy| <= r`` (``a`` given as its
    ``rfft2`` on ``shape``: one image is correlated with many rotated maps)."""
    c = xcorr_full(b, None, shape, workers=1, b_fft=a_fft)  # circular: shift d at d mod shape
    return c[np.ix_(np.arange(-radius, radius + 1) % shape[0],
                    np.arange(-radius, radius + 1) % shape[1])]


def _peak(c: np.ndarray) -> tuple[float, float]:
    """Sub-pixel ``(dx, dy)`` of the maximum of ``c``, relative to its centre."""
    r = (c.shape[0] - 1) // 2
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
    fx = fy = 0.0
    if 0 < ix < c.shape[1] - 1 and 0 < iy < c.shape[0] - 1:
        ddx, ddy = subpixel_peak(c[None], np.array([iy]), np.array([ix]), "parabola")
        fx, fy = float(ddx[0]), float(ddy[0])
    return ix - r + fx, iy - r + fy


def correlate_structure(
    structure: np.ndarray,
    map_edges: np.ndarray,
    *,
    radius: int = 32,
    max_rotation_deg: float = 2.0,
    rotation_step_deg: float = 0.25,
    block: int = 64,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Similarity (rotation about the centre + shift) aligning map boundaries with image edges.

    The map's boundaries and lines, rotated by each candidate angle, are cross-correlated (FFT)
    with the standardised image edge strength over shifts of up to ``radius`` px. The winning
    angle and shift are refined to sub-pixel/sub-step by parabolas. For the validity check the
    image is split into a checkerboard of ``block`` px squares; each half (black squares, white
    squares) is correlated on its own at the winning angle.

    Args:
        structure: float ``(H, W)`` image edge strength (e.g. DEM slope), NaN invalid.
        map_edges: float ``(H, W)``: the map's boundaries and lines rendered on the same grid
            (``xgeo.vectors.render.EDGE_STYLE``), fills left out.
        radius: largest shift searched, px.
        max_rotation_deg: rotations searched in ``[-max, +max]``.
        rotation_step_deg: rotation grid step.
        block: checkerboard block side for the split-half check, px.

    Returns:
        ``(m33, info)``: 3x3 map-pixel -> image-pixel matrix; ``info`` has ``z`` (peak height in
        standard deviations of the correlation surface), ``peak_ratio`` (peak over the best
        value more than 3 px away), ``halves_px`` (distance of each half's peak from the
        full peak), ``rotation_deg``, ``shift_px``.
    """
    h, w = structure.shape
    valid = np.isfinite(structure)
    a = _standardise(np.nan_to_num(structure), valid)
    shape = (h + 2 * radius + 1, w + 2 * radius + 1)
    fa = sfft.rfft2(a, s=shape)
    mp = np.nan_to_num(map_edges.astype(np.float64))
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    n_ang = int(round(max_rotation_deg / rotation_step_deg))
    angles = [k * rotation_step_deg for k in range(-n_ang, n_ang + 1)]
    best: tuple[float, int, np.ndarray] | None = None
    peaks = []
    for i, ang in enumerate(angles):
        rot = cv2.getRotationMatrix2D(centre, ang, 1.0)
        b = cv2.warpAffine(mp, rot, (w, h), flags=cv2.INTER_LINEAR)
        b = b - b.mean()
        c = _xcorr(fa, b, shape, radius)
        c = (c - c.mean()) / (c.std() + 1e-12)
        peaks.append(float(c.max()))
        if best is None or peaks[-1] > best[0]:
            best = (peaks[-1], i, c)
    assert best is not None
    z, i_best, c = best
    ang = angles[i_best]
    if 0 < i_best < len(angles) - 1:  # parabolic refinement of the angle
        m1, m0, p1 = peaks[i_best - 1], peaks[i_best], peaks[i_best + 1]
        d = m1 - 2 * m0 + p1
        if d < 0:
            ang += float(np.clip(0.5 * (m1 - p1) / d, -0.5, 0.5)) * rotation_step_deg
    rot = cv2.getRotationMatrix2D(centre, ang, 1.0)
    b = cv2.warpAffine(mp, rot, (w, h), flags=cv2.INTER_LINEAR)
    b = b - b.mean()
    c = _xcorr(fa, b, shape, radius)
    dx, dy = _peak(c)
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
    far = c.copy()
    far[max(0, iy - 3): iy + 4, max(0, ix - 3): ix + 4] = -np.inf
    cmin = float(c.min())
    ratio = float((c[iy, ix] - cmin) / (far.max() - cmin + 1e-12))
    halves = []
    for half in _checkerboard((h, w), block):
        ah = _standardise(np.nan_to_num(structure), valid & half)
        hx, hy = _peak(_xcorr(sfft.rfft2(ah, s=shape), b, shape, radius))
        halves.append(float(np.hypot(hx - dx, hy - dy)))
    m = np.eye(3)
    m[:2] = rot
    t = np.eye(3)
    t[0, 2], t[1, 2] = dx, dy
    info = {"z": float(z), "peak_ratio": ratio, "halves_px": halves, "rotation_deg": float(ang),
            "shift_px": [float(dx), float(dy)], "angles": len(angles)}
    return t @ m, info


def _checkerboard(shape: tuple[int, int], block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two complementary boolean ``(H, W)`` masks: black and white squares of ``block`` px."""
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]]
    board = ((yy // block + xx // block) % 2).astype(bool)
    return board, ~board


def _max_disagreement(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> float:
    """Largest distance (px) between two 3x3 models' images of a 3x3 grid over the image."""
    h, w = shape
    gx, gy = np.meshgrid(np.linspace(0, w - 1, 3), np.linspace(0, h - 1, 3))
    p = np.stack([gx.ravel(), gy.ravel(), np.ones(9)])
    return float(np.max(np.hypot(*((a @ p)[:2] - (b @ p)[:2]))))


def _corr_summary(ci: dict[str, Any] | None) -> str:
    if not ci:
        return "not run"
    return (f"z {ci['z']:.2f}, halves {max(ci['halves_px']):.1f} px apart: "
            f"{'valid' if ci.get('valid') else 'not valid'}")


def _fuse(m: Matches, tile_ids: np.ndarray, kind: str, pixel_size: float,
          threshold: float) -> tuple[GeoModel, dict[str, Any]]:
    # src = map raster pixels, dst = image pixels: the model maps map -> image.
    res = fuse(m.points1, m.points0, m.confidence, tile_ids, kind=kind, pixel_size=pixel_size,
               threshold=threshold)
    return res.model, dict(res.qa)


def estimate_map_to_image(
    img: np.ndarray,
    map_raster: np.ndarray,
    matcher: Matcher,
    *,
    kind: str = "auto",
    pixel_size: float = 1.0,
    threshold: float = 3.0,
    dense: bool = True,
    rematch: bool = True,
    mi_tolerance: float = 0.002,
    max_evals: int = 300,
    min_mi: float = 0.02,
    structure: np.ndarray | None = None,
    map_edges: np.ndarray | None = None,
    min_z: float = 3.0,
    max_halves_px: float = 2.0,
) -> Estimate:
    """Fit the map-raster -> image pixel model (see the module docstring for the stages).

    Args:
        img: float32 ``(H, W)`` image in [0, 1], NaN invalid.
        map_raster: float32 ``(H, W)`` rendered map on the same grid.
        matcher: matcher to use.
        kind: ``auto | shift | affine | poly2 | poly3 | tps``.
        pixel_size: metres per pixel (QA in metres).
        threshold: inlier threshold of the fusion, px.
        dense: run the mutual-information refinement (linear models only).
        rematch: match again after the dense stage.
        mi_tolerance: MI differences (nats) below this count as ties.
        max_evals: largest number of MI evaluations per Powell run.
        min_mi: when no tie-point model is trustworthy (>= 12 inliers, RMSE <= 1 px), a best
            MI below this (nats) means map and image share too little structure: raise rather
            than move the map by noise - unless the ``correlate`` stage is valid.
        structure: float ``(H, W)`` edge strength of the image (NaN invalid) for the
            ``correlate`` stage; ``None`` skips it.
        map_edges: float ``(H, W)`` the map's boundaries and lines alone (``EDGE_STYLE``);
            ``None`` uses ``map_raster``.
        min_z: smallest correlation peak (standard deviations of the surface) for
            ``correlate`` to be valid.
        max_halves_px: largest distance of either checkerboard half's peak from the full peak
            for ``correlate`` to be valid.

    Returns:
        :class:`Estimate`.

    Raises:
        RegistrationError: no stage produced a model.
    """
    if img.shape != map_raster.shape:
        raise ConfigError(f"image {img.shape} and map raster {map_raster.shape} differ in shape")
    info: dict[str, Any] = {"matcher": matcher.describe().get("name", type(matcher).__name__)}
    cands: dict[str, tuple[np.ndarray | None, GeoModel, str, dict[str, Any]]] = {}
    m, tids = match_tiled(matcher, img, map_raster)
    info["n_matches"] = len(m)
    qa: dict[str, Any] = {}
    try:
        model0, qa = _fuse(m, tids, kind, pixel_size, threshold)
        mat0 = model0.to_matrix()
        cands["matcher"] = (mat0, model0, model0.kind, qa)
        info["matcher_qa"] = {k: qa.get(k) for k in ("model", "n_tiepoints", "n_inliers",
                                                     "rmse_px", "ce90_px")}
    except (RegistrationError, XgeoError, ValueError) as exc:
        info["matcher_error"] = str(exc)
        model0, mat0 = None, None
    lin_kind = kind if kind in _LINEAR else "affine"
    linear_ok = kind in ("auto", *_LINEAR) and (model0 is None or mat0 is not None)
    score = _MIScore(img, map_raster)
    if dense and linear_ok:
        strong = (mat0 is not None and qa.get("n_inliers", 0) >= 12
                  and (qa.get("rmse_px") or np.inf) <= 1.0)
        if mat0 is None:
            starts, search = [np.eye(3)], 16
        elif strong:  # trusted tie points: only polish around them
            starts, search = [np.asarray(mat0, float)], 4
        else:
            starts, search = [np.asarray(mat0, float), np.eye(3)], 16
        m_dense, mi_dense, evals = _dense_refine(img, map_raster, starts, lin_kind, max_evals,
                                                 search_px=search)
        info["dense"] = {"mi": mi_dense, "evals": evals}
        if not strong:  # no trusted tie points: the MI optimum must be found by both halves
            halves = []
            for half in _checkerboard(img.shape):
                m_h, _, _ = _dense_refine(np.where(half, img, np.nan), map_raster, starts,
                                          lin_kind, max_evals, search_px=search)
                halves.append(_max_disagreement(m_h, m_dense, img.shape))
            info["dense"]["halves_px"] = halves
            info["dense"]["valid"] = max(halves) <= max_halves_px
        cands["dense"] = (m_dense, _as_model(m_dense, lin_kind), lin_kind, {})
        if rematch:
            warped = cv2.warpAffine(map_raster, m_dense[:2], (img.shape[1], img.shape[0]),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=0.0)
            m2, t2 = match_tiled(matcher, img, warped)
            try:
                r_model, qa2 = _fuse(m2, t2, lin_kind, pixel_size, threshold)
                m_re = r_model.to_matrix() @ m_dense
                cands["rematch"] = (m_re, _as_model(m_re, lin_kind), lin_kind, qa2)
                info["rematch_qa"] = {k: qa2.get(k) for k in ("model", "n_tiepoints",
                                                             "n_inliers", "rmse_px", "ce90_px")}
            except (RegistrationError, XgeoError, ValueError) as exc:
                info["rematch_error"] = str(exc)
    corr_ok = False
    if structure is not None and linear_ok:
        m_corr, cinfo = correlate_structure(
            structure, map_raster if map_edges is None else map_edges)
        corr_ok = (cinfo["z"] >= min_z and max(cinfo["halves_px"]) <= max_halves_px)
        cinfo["valid"] = corr_ok
        info["correlate"] = cinfo
        if lin_kind == "shift":
            m_corr = np.array([[1.0, 0.0, m_corr[0, 2]], [0.0, 1.0, m_corr[1, 2]], [0, 0, 1.0]])
        if corr_ok:
            cands["correlate"] = (m_corr, _as_model(m_corr, lin_kind), lin_kind, {})
    if not cands:
        raise RegistrationError(
            f"no model: {info.get('matcher_error', 'matching failed')}. Hint: check that map and "
            "image overlap, or try --model shift")
    mis = {}
    for name, (mat, _, _, _) in cands.items():
        mis[name] = score(mat) if mat is not None else float("nan")
    info["mi"] = mis
    info["mi_identity"] = score(np.eye(3))
    finite = {k: v for k, v in mis.items() if np.isfinite(v)}
    any_linear = bool(finite)
    trusted = any(c[3].get("n_inliers", 0) >= 12 and (c[3].get("rmse_px") or np.inf) <= 1.0
                  for c in cands.values() if c[3])
    if not trusted and not info.get("dense", {}).get("valid", True):
        # the MI optimum is not reproducible: never let it win, nor its rematch
        for k in ("dense", "rematch"):
            finite.pop(k, None)
    weak = not trusted and any_linear and (not finite or max(finite.values()) < min_mi)
    if weak and corr_ok:  # intensities share too little: trust the edge correlation
        chosen = "correlate"
    elif weak:
        chosen = ""
    elif finite:
        best = max(finite.values())
        ranked = [k for k in ("rematch", "matcher", "dense", "correlate")
                  if k in finite and finite[k] >= best - mi_tolerance]
        chosen = ranked[0]
    else:  # non-linear tie-point model only
        chosen = "matcher"
    if weak and not corr_ok:
        best_mi = max(v for v in mis.values() if np.isfinite(v))
        raise RegistrationError(
            f"map and image share too little structure (best mutual information "
            f"{best_mi:.4f} nats (minimum {min_mi}), MI optimum reproduced by both image halves: "
            f"{info.get('dense', {}).get('valid', 'n/a')}, no trustworthy tie points: "
            f"{info.get('matcher_error', info.get('matcher_qa'))}; edge correlation "
            f"{_corr_summary(info.get('correlate'))}). Hint: the map layers may not "
            "be visible in this image; try another band or modality")
    _, model, kind_out, qa_c = cands[chosen]
    out_qa = dict(qa_c or qa)
    out_qa["mi"] = mis.get(chosen)
    info["chosen"] = chosen
    return Estimate(model=model, kind=kind_out, source=chosen, qa=out_qa, info=info)
