"""Previews and matplotlib drawing helpers for registration reports (LightGlue ``viz2d`` style).

Nothing here writes files; :func:`xgeo.report.plot_report` assembles and saves the figure.
matplotlib is imported lazily inside the drawing functions (Agg, no pyplot global state), so
``import xgeo.viz`` stays cheap.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError

from xgeo.errors import ConfigError, MissingFileError, NotARasterError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "read_preview",
    "stretch",
    "checkerboard",
    "draw_vectors",
    "draw_residual_histogram",
    "draw_checkerboard",
    "report_figure",
    "rmse_ce90",
]

_LUMA = np.array([0.299, 0.587, 0.114])


def stretch(img: np.ndarray, lo: float = 2.0, hi: float = 98.0) -> np.ndarray:
    """Robust percentile stretch of finite values to float32 ``[0, 1]``; NaN stays NaN.

    Args:
        img: ``(H, W)`` array, NaN for invalid pixels.
        lo: lower percentile mapped to 0.
        hi: upper percentile mapped to 1.
    """
    a = np.asarray(img, dtype=np.float32)
    fin = np.isfinite(a)
    out = np.full(a.shape, np.nan, np.float32)
    if not fin.any():
        return out
    p0, p1 = np.percentile(a[fin], [lo, hi])
    span = float(p1 - p0) if p1 > p0 else 1.0
    out[fin] = np.clip((a[fin] - p0) / span, 0.0, 1.0)
    return out


def read_preview(path_or_scene: Any, max_side: int = 1024) -> np.ndarray:
    """Decimated, normalised single-channel preview of a raster.

    The file is read at ``ceil(max(H, W) / max_side)`` decimation with GDAL ``average``
    (overviews are used when present, so COGs are cheap). Three bands or more become luminance
    of the first three (or of a ``Scene``'s selected ``bands``); SAR scenes in linear power are
    shown in dB. Files of the same size give previews of the same shape.

    Args:
        path_or_scene: a path, or an object with ``path`` (and optionally ``bands``,
            ``modality``) such as :class:`xgeo.scenes.Scene`.
        max_side: longest side of the preview in pixels.

    Returns:
        float32 ``(h, w)`` in ``[0, 1]`` (2-98 % stretch), NaN where the raster is invalid.
    """
    if int(max_side) < 8:
        raise ConfigError(f"max_side={max_side} must be >= 8")
    is_path = isinstance(path_or_scene, (str, PathLike))
    path = Path(path_or_scene) if is_path else Path(path_or_scene.path)
    bands = None if is_path else getattr(path_or_scene, "bands", None)
    modality = None if is_path else getattr(path_or_scene, "modality", None)
    if not path.exists():
        raise MissingFileError("raster for the preview does not exist", path)
    try:
        ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise NotARasterError(f"GDAL cannot open the raster ({exc})", path) from exc
    with ds:
        idx = [int(b) for b in bands][:3] if bands else list(range(1, min(ds.count, 3) + 1))
        if len(idx) == 2:
            idx = idx[:1]
        f = max(1, math.ceil(max(ds.width, ds.height) / int(max_side)))
        shape = (len(idx), max(1, math.ceil(ds.height / f)), max(1, math.ceil(ds.width / f)))
        data = ds.read(idx, out_shape=shape, resampling=Resampling.average, masked=True)
    arr = np.ma.filled(data.astype(np.float64), np.nan)
    if modality == "sar":
        fin = np.isfinite(arr)
        if fin.any() and np.nanmin(arr) >= 0 and np.nanmedian(arr) < 5:  # linear power
            arr = 10.0 * np.log10(np.maximum(arr, 1e-6))
    img = np.tensordot(_LUMA, arr, axes=1) if len(idx) == 3 else arr[0]
    return stretch(img)


def checkerboard(a: np.ndarray, b: np.ndarray, n: int = 8) -> np.ndarray:
    """Interleave two ``(H, W)`` images in ``n`` squares along the longer side.

    Returns:
        ``(H, W)`` array: ``a`` on the even squares, ``b`` on the odd ones.
    """
    if a.shape != b.shape:
        raise ConfigError(f"checkerboard needs equal shapes, got {a.shape} and {b.shape}")
    h, w = a.shape
    side = max(1, math.ceil(max(h, w) / max(1, n)))
    yy, xx = np.mgrid[0:h, 0:w]
    odd = ((yy // side) + (xx // side)) % 2 == 1
    return np.where(odd, b, a)


def rmse_ce90(residuals: np.ndarray) -> tuple[float, float]:
    """RMSE and 90th percentile of the finite residual norms (NaN when there are none)."""
    r = np.asarray(residuals, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    return float(np.sqrt(np.mean(r * r))), float(np.percentile(r, 90))


def _nice(x: float) -> float:
    """Largest of 1, 2, 5 x 10^k that is <= x (at least 1)."""
    if not math.isfinite(x) or x <= 1:
        return 1.0
    k = 10 ** math.floor(math.log10(x))
    return float(max(m * k for m in (1, 2, 5) if m * k <= x))


def draw_vectors(ax: Axes, ref_preview: np.ndarray, scale: float, src_grid: np.ndarray,
                 dst_ref: np.ndarray, inliers: np.ndarray, residuals_px: np.ndarray,
                 max_arrows: int = 2500, seed: int = 0) -> float:
    """Tie-point displacement vectors over the reference preview.

    Arrows start at the reference position ``dst_ref`` and point along ``dst_ref - src_grid``
    (the misregistration, exaggerated). Inliers are coloured by residual, outliers red.

    Args:
        ax: matplotlib axes.
        ref_preview: ``(h, w)`` float in ``[0, 1]``.
        scale: preview pixels per grid pixel.
        src_grid: ``(N, 2)`` grid-mov points.
        dst_ref: ``(N, 2)`` reference points.
        inliers: bool ``(N,)``.
        residuals_px: ``(N,)`` residual norms in grid pixels.
        max_arrows: arrows drawn at most (random, seeded subset).
        seed: seed of the subset.

    Returns:
        The exaggeration factor used.
    """
    ax.imshow(ref_preview, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    src = np.asarray(src_grid, np.float64).reshape(-1, 2)
    dst = np.asarray(dst_ref, np.float64).reshape(-1, 2)
    inl = np.asarray(inliers, bool).reshape(-1)
    res = np.asarray(residuals_px, np.float64).reshape(-1)
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    if len(ok) > max_arrows:
        keep = np.zeros(len(ok), bool)
        keep[np.random.default_rng(seed).choice(len(ok), max_arrows, replace=False)] = True
        ok &= keep
    d = dst - src
    mag = np.hypot(d[:, 0], d[:, 1])
    h, w = ref_preview.shape[:2]
    p90 = float(np.percentile(mag[ok], 90)) if ok.any() else 0.0
    exag = _nice(0.05 * max(h, w) / (p90 * scale)) if p90 > 0 else 1.0
    pos = (dst + 0.5) * scale - 0.5
    vec = d * scale * exag
    sel = ok & inl
    if sel.any():
        r = np.where(np.isfinite(res[sel]), res[sel], 0.0)
        vmax = max(float(np.percentile(r, 95)), 1e-6)
        q = ax.quiver(pos[sel, 0], pos[sel, 1], vec[sel, 0], vec[sel, 1], r, cmap="viridis",
                      angles="xy", scale_units="xy", scale=1.0, width=0.003, clim=(0, vmax))
        ax.figure.colorbar(q, ax=ax, fraction=0.046, pad=0.02, label="residual (px)")
    out = ok & ~inl
    if out.any():
        ax.quiver(pos[out, 0], pos[out, 1], vec[out, 0], vec[out, 1], color="red",
                  angles="xy", scale_units="xy", scale=1.0, width=0.002, alpha=0.7)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(f"tie points: {int((ok & inl).sum())} inliers, {int(out.sum())} outliers "
                 f"(vectors x{exag:g})", fontsize=9)
    ax.set_axis_off()
    return exag


def draw_residual_histogram(ax: Axes, residuals_px: np.ndarray, inliers: np.ndarray) -> None:
    """Histogram of inlier residuals with RMSE and CE90 lines."""
    r = np.asarray(residuals_px, np.float64).reshape(-1)[np.asarray(inliers, bool).reshape(-1)]
    r = r[np.isfinite(r)]
    if r.size == 0:
        ax.text(0.5, 0.5, "no inliers", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("residuals", fontsize=9)
        return
    rmse, ce90 = rmse_ce90(r)
    ax.hist(r, bins=min(50, max(5, r.size // 5)), color="0.6", edgecolor="0.3")
    ax.axvline(rmse, color="tab:blue", lw=2, label=f"RMSE {rmse:.3f} px")
    ax.axvline(ce90, color="tab:orange", lw=2, ls="--", label=f"CE90 {ce90:.3f} px")
    ax.set_xlabel("residual (px)")
    ax.set_ylabel("tie points")
    ax.legend(fontsize=8)
    ax.set_title(f"inlier residuals (n={r.size})", fontsize=9)


def draw_checkerboard(ax: Axes, ref: np.ndarray, mov: np.ndarray, title: str,
                      n: int = 8) -> None:
    """Checkerboard of two previews of the same grid (cropped to the common shape)."""
    h = min(ref.shape[0], mov.shape[0])
    w = min(ref.shape[1], mov.shape[1])
    ax.imshow(checkerboard(ref[:h, :w], mov[:h, :w], n), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def report_figure(*, ref_preview: np.ndarray, mov_before: np.ndarray, mov_after: np.ndarray,
                  scale: float, src_grid: np.ndarray, dst_ref: np.ndarray, inliers: np.ndarray,
                  residuals_px: np.ndarray, title: str) -> Figure:
    """The report figure: vectors, residual histogram, before/after checkerboards.

    Args: as :func:`xgeo.report.plot_report`.

    Returns:
        A matplotlib ``Figure`` (Agg canvas, not registered with pyplot).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 10), layout="constrained")
    gs = fig.add_gridspec(2, 2)
    draw_vectors(fig.add_subplot(gs[0, 0]), ref_preview, scale, src_grid, dst_ref, inliers,
                 residuals_px)
    draw_residual_histogram(fig.add_subplot(gs[0, 1]), residuals_px, inliers)
    draw_checkerboard(fig.add_subplot(gs[1, 0]), ref_preview, mov_before,
                      "before: reference / moving on the grid")
    draw_checkerboard(fig.add_subplot(gs[1, 1]), ref_preview, mov_after,
                      "after: reference / registered output")
    fig.suptitle(title, fontsize=11)
    return fig
