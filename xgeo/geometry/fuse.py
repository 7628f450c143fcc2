"""Fusion of per-tile correspondences into one global georegistration model, with QA.

Steps of :func:`fuse`:

1. per tile, :func:`filter_tile_matches` keeps points agreeing on a local affine (status per tile);
2. global robust fit of every candidate kind (on a random subset of ``cv_max_points`` when there
   are more), seeded with the locally verified points (points of tiles with too few matches
   join only if the global model accepts them);
3. ``kind="auto"``: spatially blocked k-fold cross-validation (the extent is cut into up to 8x8
   blocks, blocks are dealt to folds, so a held-out point has no training neighbour in its block
   and a spline cannot "cheat") on a common evaluation set, the union of the candidates'
   inliers. The score is the held-out RMSE with residuals capped at ``2 * threshold`` (one
   surviving outlier does not decide). The simplest kind whose held-out RMSE is within 10 % (+0.1 px) of
   the best, or whose excess squared error is within two paired standard errors (taken over
   spatial blocks), wins;
4. the chosen kind is refitted robustly on every pooled point, starting from the subset fit;
5. QA: counts, RMSE and CE90 (90th percentile of residual norms) on inliers in pixels and metres,
   held-out RMSE, mean shift, linear decomposition, and a per-tile table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xgeo.errors import ConfigError, RegistrationError, ShapeError
from xgeo.geometry.fit import FIT_KINDS, fit_model, n_params_for, prepare_points
from xgeo.geometry.robust import filter_tile_matches, gate_threshold, residual_norms, robust_fit
from xgeo.geometry.transforms import GeoModel, describe_linear

__all__ = ["FitResult", "fuse", "heldout_residuals", "spatial_blocks", "spatial_folds"]

_PREFER_SIMPLER_REL = 0.10  # a richer model must beat a simpler one clearly
_PREFER_SIMPLER_ABS = 0.10
_SE_FACTOR = 2.0
_MIN_PER_PARAM = 3
_TPS_MIN_POINTS = 100


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fuse`.

    Attributes:
        model: the fitted ``mov_to_ref`` model.
        inliers: bool ``(N,)`` over the input tie points.
        residuals_px: float64 ``(N,)`` ``|dst - model(src)|`` (NaN for non-finite input).
        qa: JSON-able QA record (see :func:`fuse`).
        candidates: per kind tried, its scores (JSON-able).
    """

    model: GeoModel
    inliers: np.ndarray
    residuals_px: np.ndarray
    qa: dict[str, Any]
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)


def _f(x: float) -> float | None:
    """JSON-safe float (None for NaN/inf)."""
    return float(x) if x is not None and math.isfinite(x) else None


def spatial_blocks(xy: np.ndarray, max_blocks: int = 8) -> np.ndarray:
    """Block index ``(N,)`` of points on a regular grid of at most ``max_blocks`` per axis.

    Fewer blocks per axis when points are few (about 5 points per block at least).
    """
    n = len(xy)
    nb = int(np.clip(math.floor(math.sqrt(max(n, 1) / 5.0)), 2, max_blocks))
    lo, hi = xy.min(0), xy.max(0)
    span = np.maximum(hi - lo, 1e-9)
    ij = np.minimum(((xy - lo) / span * nb).astype(np.int64), nb - 1)
    return ij[:, 1] * nb + ij[:, 0]


def spatial_folds(xy: np.ndarray, k: int = 5, seed: int = 0, max_blocks: int = 8) -> np.ndarray:
    """Assign points to ``k`` folds by spatial block (see :func:`spatial_blocks`).

    Args:
        xy: ``(N, 2)`` points.
        k: number of folds.
        seed: random seed for dealing blocks to folds.
        max_blocks: blocks per axis at most.

    Returns:
        int ``(N,)`` fold index in ``[0, k)``.
    """
    block = spatial_blocks(xy, max_blocks)
    perm = np.random.default_rng(seed).permutation(max_blocks * max_blocks)
    return perm[block] % k


def heldout_residuals(
    src: np.ndarray, dst: np.ndarray, kind: str, folds: np.ndarray,
    weights: np.ndarray | None = None, threshold: float = 3.0, refit: bool = False,
    **fit_opts: Any,
) -> np.ndarray:
    """Held-out residual norms ``(N,)`` by k-fold cross-validation over given folds.

    Each fold is predicted by a least-squares model fitted on the other folds (with
    ``refit=True``, refitted once after gating the training residuals). Points of folds whose
    training set is too small get NaN.
    """
    w = np.ones(len(src)) if weights is None else weights
    out = np.full(len(src), np.nan)
    for f in np.unique(folds):
        te = folds == f
        tr = ~te
        try:
            m = fit_model(src[tr], dst[tr], kind, w[tr], **fit_opts)
            if refit:
                r = residual_norms(m, src[tr], dst[tr])
                keep = r < gate_threshold(r, threshold)
                if keep.sum() >= n_params_for(kind) and not keep.all():
                    sub = np.flatnonzero(tr)[keep]
                    m = fit_model(src[sub], dst[sub], kind, w[sub], **fit_opts)
            out[te] = residual_norms(m, src[te], dst[te])
        except RegistrationError:
            continue
    return out


def _eligible(kind: str, n: int) -> bool:
    if kind == "tps":
        return n >= _TPS_MIN_POINTS
    return n >= _MIN_PER_PARAM * n_params_for(kind)


def _choose(
    heldout: dict[str, np.ndarray], cands: dict[str, dict[str, Any]], blocks: np.ndarray
) -> str:
    """Simplest kind not clearly worse out of sample than the best one.

    On the points every candidate predicted, with capped held-out residuals ``r``: the best
    kind minimises ``mean(r**2)``; a simpler kind is kept when its excess
    ``mean(r_k**2 - r_best**2)`` keeps its RMSE within ``_PREFER_SIMPLER_REL`` (5 %) of the best
    (plus ``_PREFER_SIMPLER_ABS**2``) or lies within ``_SE_FACTOR`` (2) standard errors. The
    standard error is taken over spatial blocks (block sums of the paired differences), since
    residuals of neighbouring tie points are correlated.
    """
    common = np.all(np.isfinite(np.stack(list(heldout.values()))), axis=0)
    if common.sum() < 2:
        return next(k for k in FIT_KINDS if k in heldout)
    sq = {k: v[common] ** 2 for k, v in heldout.items()}
    _, binv = np.unique(blocks[common], return_inverse=True)
    nblk = int(binv.max()) + 1
    mse = {k: float(v.mean()) for k, v in sq.items()}
    best = min(mse, key=lambda k: mse[k])
    for k in sq:
        diff = sq[k] - sq[best]
        excess = float(diff.mean())
        se = 0.0
        if k != best and nblk >= 2:
            # ratio estimator over blocks: sum_b D_b / sum_b n_b, with its linearised variance
            bsum = np.bincount(binv, weights=diff, minlength=nblk)
            bcnt = np.bincount(binv, minlength=nblk).astype(float)
            z = bsum - excess * bcnt
            se = float(math.sqrt(nblk / (nblk - 1) * float((z**2).sum())) / bcnt.sum())
        cands[k]["excess_mse_px2"] = _f(excess)
        cands[k]["excess_se_px2"] = _f(se)
    tol = ((1 + _PREFER_SIMPLER_REL) ** 2 - 1) * mse[best] + _PREFER_SIMPLER_ABS**2
    for k in FIT_KINDS:
        if k in sq and cands[k]["excess_mse_px2"] <= max(tol, _SE_FACTOR * cands[k]["excess_se_px2"]):
            return k
    return best


def _stats(res: np.ndarray) -> tuple[float, float]:
    if len(res) == 0:
        return math.nan, math.nan
    return float(np.sqrt(np.mean(res**2))), float(np.percentile(res, 90))


def fuse(
    src: Any,
    dst: Any,
    confidence: Any | None,
    tile_ids: Sequence[str] | np.ndarray,
    kind: str = "auto",
    pixel_size: float = 1.0,
    threshold: float = 3.0,
    min_inliers: int = 6,
    seed: int = 0,
    *,
    candidates: Sequence[str] = FIT_KINDS,
    n_folds: int = 5,
    cv_max_points: int = 10000,
    tile_min_matches: int = 6,
    **fit_opts: Any,
) -> FitResult:
    """Fuse tie points of all tiles (common-grid pixels) into one ``mov_to_ref`` model.

    Args:
        src: ``(N, 2)`` grid-mov points ``(x, y)``.
        dst: ``(N, 2)`` reference points.
        confidence: optional ``(N,)`` matcher confidence, used as least-squares weights.
        tile_ids: ``(N,)`` tile identifier per point (str or int).
        kind: ``auto | shift | affine | poly2 | poly3 | tps``.
        pixel_size: common-grid pixel size in metres, for the metre figures.
        threshold: inlier residual ceiling in pixels (local and global).
        min_inliers: fewer global inliers raise :class:`RegistrationError`.
        seed: random seed (consensus sampling, fold assignment).
        candidates: kinds ``auto`` may choose from.
        n_folds: folds of the spatially blocked cross-validation.
        cv_max_points: model selection (candidate robust fits and cross-validation) runs on at
            most this many points (random subset); the chosen kind is refitted on all points.
        tile_min_matches: ``min_matches`` of the per-tile filter.
        **fit_opts: TPS options for :func:`fit_model`.

    Returns:
        :class:`FitResult`. ``qa`` holds ``n_tiepoints, n_inliers, inlier_ratio, rmse_px,
        ce90_px, rmse_m, ce90_m, heldout_rmse_px, heldout_rmse_m, heldout_ce90_px, model,
        kind_requested, mean_dx_px, mean_dy_px, linear`` (shift/affine decomposition or None),
        ``threshold_px, pixel_size_m, n_tiles, n_tiles_ok, seconds`` and ``per_tile``:
        ``{tile_id: {n, n_inliers, rmse_px, status}}`` where status is ``ok``,
        ``too_few_matches``, ``no_consensus`` or ``rejected_global`` (locally consistent, but
        no point fits the global model).

    Raises:
        ConfigError: unknown kind or bad option.
        ShapeError: inconsistent array lengths.
        RegistrationError: fewer than ``min_inliers`` points survive.
    """
    t0 = time.perf_counter()
    if kind != "auto" and kind not in FIT_KINDS:
        raise ConfigError(f"fuse: unknown kind {kind!r}; expected auto or one of {FIT_KINDS}")
    bad = [c for c in candidates if c not in FIT_KINDS]
    if bad:
        raise ConfigError(f"fuse: unknown candidate kinds {bad}; expected a subset of {FIT_KINDS}")
    if not (pixel_size > 0 and math.isfinite(pixel_size)):
        raise ConfigError(f"fuse: pixel_size must be > 0 metres, got {pixel_size}")
    s, d, w = prepare_points(src, dst, confidence)
    n = len(s)
    if confidence is not None:
        w = np.clip(w, 1e-3, None)
    tids = np.asarray(tile_ids).reshape(-1)
    if len(tids) != n:
        raise ShapeError("tile_ids", f"({n},)", tids.shape)
    finite = np.all(np.isfinite(s), 1) & np.all(np.isfinite(d), 1)

    # 1) per-tile filter
    uniq, inv = np.unique(tids.astype(str), return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    verified = np.zeros(n, bool)
    unverified = np.zeros(n, bool)
    status: dict[str, str] = {}
    for t, name in enumerate(uniq):
        idx = order[bounds[t] : bounds[t + 1]]
        m, st = filter_tile_matches(s[idx], d[idx], w[idx], threshold, tile_min_matches,
                                    seed=seed + t)
        status[str(name)] = st
        if st == "ok":
            verified[idx] = m
        elif st == "too_few_matches":
            unverified[idx] = finite[idx]
    pool = verified | unverified
    t_tiles = time.perf_counter() - t0

    def fail(count: int, what: str) -> RegistrationError:
        counts = {k: list(status.values()).count(k) for k in sorted(set(status.values()))}
        return RegistrationError(
            f"fuse: only {count} of {n} tie points {what} (need >= {min_inliers}); tile "
            f"statuses {counts}. Hint: use smaller tiles or more matches per tile, raise the "
            f"threshold (now {threshold} px), or check that the pair overlaps; if the moving "
            f"scene is rotated, scaled or hundreds of pixels off, register with --coarse"
        )

    if pool.sum() < max(min_inliers, 1):
        raise fail(int(pool.sum()), "passed the per-tile filter")
    init = verified if verified.sum() >= min_inliers else None

    # 2) global robust fits of the candidates (on a random subset when the pool is large)
    kinds = [kind] if kind != "auto" else [k for k in FIT_KINDS if k in candidates]
    kinds = [k for k in kinds if k == kind or _eligible(k, int(pool.sum()))]
    pidx = np.flatnonzero(pool)
    rng = np.random.default_rng(seed)
    sub = pidx
    if kind == "auto" and len(pidx) > cv_max_points:
        sub = np.sort(rng.choice(pidx, size=cv_max_points, replace=False))

    def robust(k: str, idx: np.ndarray) -> tuple[GeoModel, np.ndarray]:
        return robust_fit(s[idx], d[idx], k, threshold, weights=w[idx],
                          init_inliers=None if init is None else init[idx], seed=seed,
                          **(fit_opts if k == "tps" else {}))

    fits: dict[str, tuple[GeoModel, np.ndarray]] = {}
    cands: dict[str, dict[str, Any]] = {}
    for k in kinds:
        tk = time.perf_counter()
        try:
            fits[k] = robust(k, sub)
        except RegistrationError as e:
            cands[k] = {"status": "failed", "error": str(e)}
            continue
        cands[k] = {"status": "fitted", "n_inliers": int(fits[k][1].sum()),
                    "n_fitted_on": len(sub), "n_params": int(fits[k][0].n_params),
                    "fit_seconds": round(time.perf_counter() - tk, 4)}
    if not fits:
        raise fail(0, f"could be fitted with {kinds}")

    # 3) held-out residuals on a common evaluation set: the union of the candidates' inliers
    union = np.zeros(len(sub), bool)
    for _, msk in fits.values():
        union |= msk
    ev = sub[union]
    if len(ev) > cv_max_points:
        ev = np.sort(rng.choice(ev, size=cv_max_points, replace=False))
    folds = spatial_folds(s[ev], n_folds, seed) if len(ev) >= 2 * n_folds else None
    cap = 2.0 * threshold
    heldout: dict[str, np.ndarray] = {}
    for k in fits:
        if folds is None or not _eligible(k, len(ev)):
            cands[k].update(heldout_rmse_px=None, heldout_ce90_px=None, score_px=None)
            continue
        tk = time.perf_counter()
        r = heldout_residuals(s[ev], d[ev], k, folds, w[ev], threshold,
                              **(fit_opts if k == "tps" else {}))
        heldout[k] = np.minimum(r, cap)
        rf = r[np.isfinite(r)]
        rmse, _ = _stats(np.minimum(rf, cap))
        cands[k].update(heldout_rmse_px=_f(rmse), heldout_ce90_px=_f(_stats(rf)[1]),
                        score_px=_f(rmse), n_heldout=len(rf),
                        cv_seconds=round(time.perf_counter() - tk, 4))
    if kind == "auto":
        if heldout:
            chosen = _choose(heldout, cands, spatial_blocks(s[ev]))
        else:  # too few points for cross-validation: the simplest fitted kind
            chosen = next(k for k in FIT_KINDS if k in fits)
    else:
        chosen = kind
    if chosen not in fits:
        raise fail(0, f"fitted a {chosen} model ({cands[chosen].get('error')})")
    for k in cands:
        cands[k]["chosen"] = k == chosen

    # 4) final model, on every pooled point
    if len(sub) == len(pidx):
        model, pmask = fits[chosen]
    else:  # start from the subset model: usually one or two refinement rounds
        m0, m0_in = fits[chosen]
        r0 = residual_norms(m0, s[pidx], d[pidx])
        gate0 = gate_threshold(residual_norms(m0, s[sub[m0_in]], d[sub[m0_in]]), threshold)
        start = np.zeros(n, bool)
        start[pidx[r0 < gate0]] = True
        try:
            model, pmask = robust_fit(s[pidx], d[pidx], chosen, threshold, weights=w[pidx],
                                      init_inliers=start[pidx], seed=seed,
                                      **(fit_opts if chosen == "tps" else {}))
        except RegistrationError as e:
            raise fail(0, f"fitted the final {chosen} model ({e})") from e
    inliers = np.zeros(n, bool)
    inliers[pidx[pmask]] = True
    residuals = np.full(n, np.nan)
    residuals[finite] = residual_norms(model, s[finite], d[finite])
    n_in = int(inliers.sum())
    if n_in < min_inliers:
        raise fail(n_in, f"are inliers of the global {chosen} model")

    # 5) QA
    rin = residuals[inliers]
    rmse, ce90 = _stats(rin)
    disp = model(s[inliers]) - s[inliers]
    per_tile: dict[str, dict[str, Any]] = {}
    for t, name in enumerate(uniq):
        idx = order[bounds[t] : bounds[t + 1]]
        ti = idx[inliers[idx]]
        st = status[str(name)]
        if st == "ok" and len(ti) == 0:
            st = "rejected_global"
        per_tile[str(name)] = {
            "n": int(len(idx)),
            "n_inliers": int(len(ti)),
            "rmse_px": _f(_stats(residuals[ti])[0]) if len(ti) else None,
            "status": st,
        }
    ho = cands[chosen].get("heldout_rmse_px")
    qa: dict[str, Any] = {
        "model": chosen,
        "kind_requested": kind,
        "n_tiepoints": n,
        "n_inliers": n_in,
        "inlier_ratio": n_in / n if n else 0.0,
        "rmse_px": _f(rmse),
        "ce90_px": _f(ce90),
        "rmse_m": _f(rmse * pixel_size),
        "ce90_m": _f(ce90 * pixel_size),
        "heldout_rmse_px": ho,
        "heldout_rmse_m": None if ho is None else ho * pixel_size,
        "heldout_ce90_px": cands[chosen].get("heldout_ce90_px"),
        "mean_dx_px": float(disp[:, 0].mean()),
        "mean_dy_px": float(disp[:, 1].mean()),
        "linear": describe_linear(model) if model.to_matrix() is not None else None,
        "threshold_px": float(threshold),
        "pixel_size_m": float(pixel_size),
        "n_tiles": len(uniq),
        "n_tiles_ok": sum(1 for v in per_tile.values() if v["status"] == "ok"),
        "per_tile": per_tile,
        "seconds": round(time.perf_counter() - t0, 4),
        "seconds_tile_filter": round(t_tiles, 4),
    }
    return FitResult(model, inliers, residuals, qa, cands)
