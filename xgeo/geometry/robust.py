"""Robust fitting: consensus seeds (OpenCV USAC/MAGSAC++) and residual gating.

* ``shift``: one-point consensus on the displacement vectors (vectorised numpy, MSAC score).
* ``affine``: ``cv2.estimateAffine2D`` with ``cv2.USAC_MAGSAC`` (``cv2.RANSAC`` when the build
  lacks USAC) on at most ``max_consensus_points`` points, then least-squares refits on inliers.
* ``poly2``, ``poly3``, ``tps``: an affine consensus seed with a widened threshold (or the
  caller's ``init_inliers``), then alternating least-squares fit and gating of all points.

Gating: a point is an inlier when its residual norm is below
``clip(median + 3 * 1.4826 * MAD, min(1 px, threshold), threshold)`` of the current inliers'
residuals, so ``threshold`` is a ceiling and low-noise fits trim their tails a little tighter.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from xgeo.errors import ConfigError, RegistrationError
from xgeo.geometry.fit import FIT_KINDS, fit_model, prepare_points
from xgeo.geometry.transforms import AffineModel, GeoModel, ShiftModel

__all__ = ["robust_fit", "filter_tile_matches", "residual_norms", "gate_threshold",
           "USAC_METHOD"]

USAC_METHOD: int = int(getattr(cv2, "USAC_MAGSAC", cv2.RANSAC))
"""OpenCV robust method used for affine consensus (USAC_MAGSAC when available)."""

_MIN_POINTS = {"shift": 1, "affine": 3, "poly2": 6, "poly3": 10, "tps": 10}
_MAX_REFINE = 12
_CONVERGED_FRACTION = 1e-3  # stop refining once fewer points than this change side
_NONLINEAR_SEED_FACTOR = 2.0


def residual_norms(model: GeoModel, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Residual norms ``|dst - model(src)|`` ``(N,)`` in pixels."""
    if len(src) == 0:
        return np.zeros(0)
    return np.linalg.norm(dst - model(src), axis=1)


def gate_threshold(res: np.ndarray, threshold: float) -> float:
    """Inlier gate from residual norms of the current inliers (see module docstring)."""
    if len(res) == 0:
        return float(threshold)
    med = float(np.median(res))
    mad = float(np.median(np.abs(res - med)))
    return float(np.clip(med + 3.0 * 1.4826 * mad, min(1.0, threshold), threshold))


def _shift_consensus(
    src: np.ndarray, dst: np.ndarray, threshold: float, rng: np.random.Generator,
    n_hyp: int = 256, n_score: int = 5000,
) -> np.ndarray:
    """One-point consensus for a translation; returns the best displacement ``(2,)``."""
    d = dst - src
    n = len(d)
    hyp = d[rng.choice(n, size=min(n_hyp, n), replace=False)]
    sc = d[rng.choice(n, size=min(n_score, n), replace=False)]
    r2 = ((sc[None, :, :] - hyp[:, None, :]) ** 2).sum(-1)
    score = np.minimum(r2, threshold**2).sum(1)  # MSAC: truncated quadratic loss
    best = hyp[int(np.argmin(score))]
    for _ in range(3):
        inl = np.linalg.norm(d - best, axis=1) < threshold
        if not inl.any():
            break
        best = np.median(d[inl], axis=0)
    return best


def _affine_consensus(
    src: np.ndarray, dst: np.ndarray, threshold: float, confidence: float, max_iters: int,
    rng: np.random.Generator, max_points: int,
) -> AffineModel | None:
    idx = np.arange(len(src))
    if len(idx) > max_points:
        idx = rng.choice(len(src), size=max_points, replace=False)
    cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))
    m, _ = cv2.estimateAffine2D(
        src[idx].astype(np.float32), dst[idx].astype(np.float32), method=USAC_METHOD,
        ransacReprojThreshold=float(threshold), maxIters=int(max_iters),
        confidence=float(confidence), refineIters=10,
    )
    if m is None or not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:, :2])) < 1e-9:
        return None
    return AffineModel(m.astype(np.float64))


def robust_fit(
    src: Any,
    dst: Any,
    kind: str = "affine",
    threshold: float = 3.0,
    confidence: float = 0.999,
    max_iters: int = 10000,
    weights: Any | None = None,
    *,
    init_inliers: np.ndarray | None = None,
    seed: int = 0,
    max_consensus_points: int = 20000,
    max_refine: int = _MAX_REFINE,
    **fit_opts: Any,
) -> tuple[GeoModel, np.ndarray]:
    """Fit a ``mov_to_ref`` model robustly to tie points with gross outliers.

    Args:
        src: ``(N, 2)`` grid-mov points.
        dst: ``(N, 2)`` reference points.
        kind: ``shift | affine | poly2 | poly3 | tps``.
        threshold: inlier residual ceiling in pixels.
        confidence: consensus confidence (OpenCV).
        max_iters: consensus iteration cap (OpenCV).
        weights: optional ``(N,)`` least-squares weights (e.g. matcher confidence).
        init_inliers: optional ``(N,)`` bool starting inlier set; skips the consensus seed
            (used by :func:`xgeo.geometry.fuse` with locally verified points).
        seed: random seed (subsampling and OpenCV RNG), for reproducible results.
        max_consensus_points: points drawn at random for the consensus stage; all points are
            gated afterwards.
        max_refine: cap on fit-and-gate rounds (refining stops earlier once fewer than 0.1 %
            of the points change side).
        **fit_opts: passed to :func:`fit_model` (TPS options).

    Returns:
        ``(model, inliers)`` with ``inliers`` bool ``(N,)``.

    Raises:
        ConfigError: bad kind or threshold.
        RegistrationError: too few points, or no consensus.
    """
    if kind not in FIT_KINDS:
        raise ConfigError(f"robust_fit: unknown kind {kind!r}; expected one of {FIT_KINDS}")
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ConfigError(f"robust_fit: threshold must be > 0 px, got {threshold}")
    s, d, w = prepare_points(src, dst, weights)
    n = len(s)
    good = np.all(np.isfinite(s), 1) & np.all(np.isfinite(d), 1) & (w > 0)
    need = _MIN_POINTS[kind]
    if good.sum() < need:
        raise RegistrationError(
            f"robust_fit({kind!r}): {int(good.sum())} usable tie points, need >= {need}. "
            "Hint: match more tiles or choose a simpler model kind"
        )
    rng = np.random.default_rng(seed)
    gi = np.flatnonzero(good)

    # --- seed
    if init_inliers is not None:
        mask = good & np.asarray(init_inliers, dtype=bool).reshape(n)
        if mask.sum() < need:
            mask = np.zeros(n, bool)  # too small a seed: fall back to consensus
    else:
        mask = np.zeros(n, bool)
    if not mask.any():
        if kind == "shift":
            t = _shift_consensus(s[gi], d[gi], threshold, rng)
            seed_model: GeoModel = ShiftModel(float(t[0]), float(t[1]))
            seed_thr = threshold
        else:
            seed_thr = threshold if kind == "affine" else _NONLINEAR_SEED_FACTOR * threshold
            if len(gi) < 3:
                raise RegistrationError(f"robust_fit({kind!r}): fewer than 3 usable points")
            am = _affine_consensus(s[gi], d[gi], seed_thr, confidence, max_iters, rng,
                                   max_consensus_points)
            if am is None:
                raise RegistrationError(
                    f"robust_fit({kind!r}): no affine consensus among {len(gi)} tie points at "
                    f"{seed_thr:.2f} px. Hint: raise the threshold or check the matches"
                )
            seed_model = am
        mask = good & (residual_norms(seed_model, s, d) < seed_thr)
        if mask.sum() < need:
            raise RegistrationError(
                f"robust_fit({kind!r}): only {int(mask.sum())} consensus inliers "
                f"(need >= {need}) among {len(gi)} points at {seed_thr:.2f} px"
            )

    # --- refine: least squares on inliers, gate all points, repeat until stable
    model = fit_model(s[mask], d[mask], kind, w[mask], **fit_opts)
    res = residual_norms(model, s, d)
    res[~good] = np.inf
    for _ in range(max(int(max_refine), 0)):
        new = res < gate_threshold(res[mask], threshold)
        changed = int(np.count_nonzero(new != mask))
        if new.sum() < need or changed == 0:
            break
        mask = new
        model = fit_model(s[mask], d[mask], kind, w[mask], **fit_opts)
        res = residual_norms(model, s, d)
        res[~good] = np.inf
        if changed <= _CONVERGED_FRACTION * n:
            break
    mask = res < max(gate_threshold(res[mask], threshold), 1e-12)
    return model, mask


def filter_tile_matches(
    src: Any,
    dst: Any,
    confidence: Any | None = None,
    threshold: float = 3.0,
    min_matches: int = 6,
    *,
    local_model: str = "auto",
    max_iters: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, str]:
    """Keep the tie points of one tile that agree on a local affine (or shift) model.

    A consensus counts only when it has ``>= min_matches`` inliers and clearly more than random
    matches would give by chance: ``n_in >= 3 + mu + 4 sqrt(mu)``, where
    ``mu = n * pi * threshold**2 / area`` is the expected number of random points within the
    threshold of any prediction (``area``: bounding box of ``dst`` padded by the threshold).

    Args:
        src: ``(N, 2)`` grid-mov points of the tile (any frame; only relative geometry matters).
        dst: ``(N, 2)`` reference points.
        confidence: optional ``(N,)`` matcher confidence (least-squares weights).
        threshold: inlier residual ceiling in pixels.
        min_matches: fewer points (or inliers) than this fail the tile.
        local_model: ``"affine"``, ``"shift"`` or ``"auto"`` (shift below 12 points).
        max_iters: consensus iteration cap.
        seed: random seed.

    Returns:
        ``(inliers (N,) bool, status)`` with status ``"ok" | "too_few_matches" |
        "no_consensus"``; the mask is all False unless the status is ``"ok"``.
    """
    s, d, w = prepare_points(src, dst, confidence)
    n = len(s)
    none = np.zeros(n, bool)
    good = np.all(np.isfinite(s), 1) & np.all(np.isfinite(d), 1)
    ng = int(good.sum())
    if ng < max(int(min_matches), 3):
        return none, "too_few_matches"
    if local_model not in ("auto", "affine", "shift"):
        raise ConfigError(f"filter_tile_matches: local_model must be auto|affine|shift, "
                          f"got {local_model!r}")
    kind = local_model if local_model != "auto" else ("shift" if ng < 12 else "affine")
    w = np.where(w > 0, w, 1e-6)  # confidence weights LSQ only; never drops points here
    try:
        _, mask = robust_fit(s, d, kind, threshold, 0.999, max_iters, w, seed=seed,
                             max_refine=4)
    except RegistrationError:
        return none, "no_consensus"
    n_in = int(mask.sum())
    ext = d[good].max(0) - d[good].min(0) + 2.0 * threshold
    mu = ng * math.pi * threshold**2 / max(float(ext[0] * ext[1]), 1.0)
    if n_in < min_matches or n_in < 3.0 + mu + 4.0 * math.sqrt(mu):
        return none, "no_consensus"
    return mask, "ok"
