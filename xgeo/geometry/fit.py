"""Least-squares fitting of every model kind (no outlier handling; see ``robust.py``).

TPS: tie points are averaged into a regular grid of cells (weighted by count and weight), and
the regularised spline is solved on the cell means, so every tie point contributes and the solve
stays small however many points there are (AROSICS caps TPS at 7000 GCPs instead).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg

from xgeo.errors import ConfigError, RegistrationError, ShapeError
from xgeo.geometry.transforms import (
    AffineModel,
    GeoModel,
    PolynomialModel,
    ShiftModel,
    TPSModel,
    as_points,
    poly_design,
    poly_exponents,
    sqdist,
    tps_kernel,
)

__all__ = ["fit_model", "n_params_for", "FIT_KINDS", "thin_to_grid"]

FIT_KINDS: tuple[str, ...] = ("shift", "affine", "poly2", "poly3", "tps")

TPS_DEFAULTS: dict[str, Any] = {
    "smoothing": 1e-2,  # regulariser on normalised coordinates (scale = half the extent)
    "max_nodes": 625,  # target number of grid cells (nodes) after thinning
    "cell_size": None,  # cell size in pixels; overrides max_nodes when given
    "min_points_per_node": 4,  # fewer points: fewer, larger cells (max_nodes <= N / this)
}


def n_params_for(kind: str) -> int:
    """Nominal parameter count of a kind (TPS: its affine part plus a 10-node minimum)."""
    return {"shift": 2, "affine": 6, "poly2": 12, "poly3": 20, "tps": 26}[_check_kind(kind)]


def _check_kind(kind: str) -> str:
    if kind not in FIT_KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; expected one of {', '.join(FIT_KINDS)}")
    return kind


def prepare_points(
    src: Any, dst: Any, weights: Any | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate tie points; return float64 ``src (N, 2)``, ``dst (N, 2)``, weights ``(N,)``.

    Raises:
        ShapeError: shapes disagree.
    """
    s, d = as_points(src, "src"), as_points(dst, "dst")
    if len(s) != len(d):
        raise ShapeError("dst", f"({len(s)}, 2) like src", d.shape)
    if weights is None:
        w = np.ones(len(s))
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != len(s):
            raise ShapeError("weights", f"({len(s)},)", w.shape)
        w = np.where(np.isfinite(w), np.clip(w, 0.0, None), 0.0)
    return s, d, w


def _normaliser(src: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = src.min(axis=0), src.max(axis=0)
    center = 0.5 * (lo + hi)
    scale = max(0.5 * float(np.max(hi - lo)), 1.0)
    return center, scale


def _wlstsq(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, int]:
    sw = np.sqrt(w)[:, None]
    coef, _, rank, _ = np.linalg.lstsq(a * sw, b * sw, rcond=None)
    return coef, int(rank)


def thin_to_grid(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray, cell: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average tie points into square cells of ``cell`` pixels.

    Args:
        src: ``(N, 2)`` grid-mov points.
        dst: ``(N, 2)`` reference points.
        w: ``(N,)`` non-negative weights.
        cell: cell size in pixels.

    Returns:
        ``(src_mean (M, 2), dst_mean (M, 2), weight_sum (M,))`` over non-empty cells.
    """
    keep = w > 0
    src, dst, w = src[keep], dst[keep], w[keep]
    ij = np.floor((src - src.min(axis=0)) / cell).astype(np.int64)
    ncol = int(ij[:, 0].max()) + 1 if len(ij) else 1
    key = ij[:, 1] * ncol + ij[:, 0]
    uniq, inv = np.unique(key, return_inverse=True)
    ws = np.bincount(inv, weights=w, minlength=len(uniq))
    out_s = np.stack([np.bincount(inv, weights=w * src[:, k], minlength=len(uniq)) for k in (0, 1)], 1)
    out_d = np.stack([np.bincount(inv, weights=w * dst[:, k], minlength=len(uniq)) for k in (0, 1)], 1)
    return out_s / ws[:, None], out_d / ws[:, None], ws


def _fit_tps(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray, smoothing: float, max_nodes: int,
    cell_size: float | None, min_points_per_node: int,
) -> TPSModel:
    center, scale = _normaliser(src)
    if cell_size is None:
        lo, hi = src.min(axis=0), src.max(axis=0)
        area = max(float(np.prod(np.maximum(hi - lo, 1.0))), 1.0)
        nodes = min(int(max_nodes), max(16, len(src) // max(int(min_points_per_node), 1)))
        cell_size = max(math.sqrt(area / max(nodes, 4)), 1e-6)
    s_c, d_c, w_c = thin_to_grid(src, dst, w, float(cell_size))
    m = len(s_c)
    if m < 4:
        raise RegistrationError(
            f"TPS fit: only {m} grid cells hold tie points (cell {cell_size:.1f} px)",
        )
    u = (s_c - center) / scale
    k = tps_kernel(sqdist(u, u))
    rel = w_c / w_c.mean()
    k[np.diag_indices(m)] += float(smoothing) / rel
    p = np.hstack([np.ones((m, 1)), u])
    a = np.zeros((m + 3, m + 3))
    a[:m, :m] = k
    a[:m, m:] = p
    a[m:, :m] = p.T
    b = np.zeros((m + 3, 2))
    b[:m] = d_c
    try:
        sol = scipy.linalg.solve(a, b, assume_a="sym")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError) as e:
        raise RegistrationError(
            f"TPS fit: singular system with {m} nodes; tie points may be collinear"
        ) from e
    return TPSModel(u, sol[:m], sol[m:], center, scale, float(smoothing))


def fit_model(
    src: Any, dst: Any, kind: str, weights: Any | None = None, **opts: Any
) -> GeoModel:
    """Weighted least-squares fit of a ``mov_to_ref`` model.

    Args:
        src: ``(N, 2)`` grid-mov points ``(x, y)``.
        dst: ``(N, 2)`` reference points.
        kind: ``shift | affine | poly2 | poly3 | tps``.
        weights: optional ``(N,)`` non-negative weights (e.g. matcher confidence).
        **opts: TPS only: ``smoothing`` (default 1e-2, on coordinates normalised to half the
            extent), ``max_nodes`` (default 625 grid cells, and at most ``N / min_points_per_node``)
            or ``cell_size`` (pixels).

    Returns:
        The fitted model.

    Raises:
        ConfigError: unknown kind or option.
        RegistrationError: too few points for the kind, or a degenerate configuration.
    """
    _check_kind(kind)
    s, d, w = prepare_points(src, dst, weights)
    unknown = set(opts) - (set(TPS_DEFAULTS) if kind == "tps" else set())
    if unknown:
        raise ConfigError(f"fit_model({kind!r}): unknown option(s) {sorted(unknown)}; "
                          f"TPS accepts {sorted(TPS_DEFAULTS)}")
    good = (w > 0) & np.all(np.isfinite(s), 1) & np.all(np.isfinite(d), 1)
    s, d, w = s[good], d[good], w[good]
    need = {"shift": 1, "affine": 3, "poly2": 6, "poly3": 10, "tps": 4}[kind]
    if len(s) < need:
        raise RegistrationError(f"fit_model({kind!r}): {len(s)} usable points, need >= {need}")
    if kind == "shift":
        t = np.average(d - s, axis=0, weights=w)
        return ShiftModel(float(t[0]), float(t[1]))
    if kind == "affine":
        center, scale = _normaliser(s)
        u = (s - center) / scale
        coef, rank = _wlstsq(np.hstack([np.ones((len(u), 1)), u]), d, w)  # (3, 2)
        if rank < 3:
            raise RegistrationError("fit_model('affine'): tie points are collinear")
        lin = coef[1:].T / scale
        t = coef[0] - lin @ center
        return AffineModel(np.hstack([lin, t[:, None]]))
    if kind in ("poly2", "poly3"):
        deg = int(kind[-1])
        center, scale = _normaliser(s)
        design = poly_design((s - center) / scale, deg)
        coef, rank = _wlstsq(design, d, w)
        if rank < len(poly_exponents(deg)):
            raise RegistrationError(f"fit_model({kind!r}): tie points too degenerate "
                                    "(collinear or clustered) for this degree")
        return PolynomialModel(deg, coef, center, scale)
    o = {**TPS_DEFAULTS, **opts}
    return _fit_tps(s, d, w, float(o["smoothing"]), int(o["max_nodes"]), o["cell_size"],
                    int(o["min_points_per_node"]))
