"""Per-modality normalisation to one float32 band in ``[0, 1]`` with NaN for invalid pixels.

The recipe, per scene, is fixed once by :func:`compute_stats` (so every tile of a scene is
scaled the same way) and applied tile by tile by :func:`normalise`:

1. **Band combination** (:func:`to_single_band`): the selected bands are combined with
   ``NormStats.weights``: ITU-R 601 luminance ``(0.299, 0.587, 0.114)`` for a 3-band optical or
   map selection (red, green, blue), equal weights otherwise (e.g. a VV+VH selection averages in
   linear power). A pixel is invalid if any selected band is invalid.
2. **Value transform**: SAR is converted to dB (``10 log10``) when it looks linear, i.e. all
   valid values are ``>= 0`` and either the data are float with 99th percentile ``< 5``
   (linear sigma0/gamma0) or an integer type wider than 8 bits (amplitude DNs); values ``<= 0``
   become invalid. Data already in dB (negative values) and 8-bit products are left as they are.
   Night lights (non-negative radiance, heavy tailed) go through ``log1p``.
3. **Robust stretch**: ``(v - p1) / (p99 - p1)`` clipped to ``[0, 1]``, with the 1st/99th
   percentiles of the valid transformed values of a decimated read of the whole scene.

Thermal, DEM and optical use steps 1 and 3 only. Nodata, masks, alpha bands and non-finite
values never enter the statistics and come out as NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from xgeo.errors import AllNodataError, ShapeError
from xgeo.scenes import Scene
from xgeo.scenes._scene import _read_valid

__all__ = ["NormStats", "compute_stats", "to_single_band", "normalise"]

LUMINANCE = (0.299, 0.587, 0.114)
_MAX_SAMPLES = 2_000_000
_MIN_DECIMATED = 1024
_GDAL_CACHE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class NormStats:
    """How one scene is turned into a single ``[0, 1]`` band (hashable, JSON-able).

    Attributes:
        modality: the scene modality.
        lo, hi: 1st and 99th percentile of the valid transformed values (``hi > lo``).
        bands: 1-based file bands combined (the scene's selection).
        db: SAR converted from linear to dB.
        weights: one weight per selected band (sum 1) for the band combination.
        log: ``log1p`` applied (night lights).
    """

    modality: str
    lo: float
    hi: float
    bands: tuple[int, ...]
    db: bool = False
    weights: tuple[float, ...] = (1.0,)
    log: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (round-trips through :meth:`from_dict`)."""
        d = asdict(self)
        d["bands"] = list(self.bands)
        d["weights"] = list(self.weights)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormStats:
        """Inverse of :meth:`to_dict`."""
        return cls(modality=str(d["modality"]), lo=float(d["lo"]), hi=float(d["hi"]),
                   bands=tuple(int(b) for b in d["bands"]), db=bool(d["db"]),
                   weights=tuple(float(w) for w in d["weights"]), log=bool(d.get("log", False)))


def _default_weights(modality: str, n: int) -> tuple[float, ...]:
    if modality in ("optical", "map") and n == 3:
        return LUMINANCE
    return tuple([1.0 / n] * n)


def _combine(arr: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` weighted sum (NaN where any band is NaN)."""
    if arr.ndim == 2:
        return arr.astype(np.float32, copy=True)
    if arr.ndim != 3:
        raise ShapeError("image", "(C, H, W) or (H, W)", arr.shape)
    if arr.shape[0] == 1:
        return arr[0].astype(np.float32, copy=True)
    if len(weights) != arr.shape[0]:
        raise ShapeError("image", f"({len(weights)}, H, W) to match NormStats.weights",
                         arr.shape)
    out = np.zeros(arr.shape[1:], np.float32)
    for w, band in zip(weights, arr, strict=True):
        out += np.float32(w) * band.astype(np.float32, copy=False)
    return out


def _transform(v: np.ndarray, db: bool, log: bool) -> np.ndarray:
    """Apply the value transform in place where possible (float32, NaN kept)."""
    if db:
        with np.errstate(divide="ignore", invalid="ignore"):
            v[v <= 0] = np.nan
            np.log10(v, out=v)
            v *= np.float32(10.0)
    elif log:
        np.maximum(v, 0, out=v, where=np.isfinite(v))
        np.log1p(v, out=v)
    return v


def to_single_band(arr: np.ndarray, stats: NormStats) -> np.ndarray:
    """Combine bands and apply the per-modality value transform (no stretch).

    Args:
        arr: float ``(C, H, W)`` (C = ``len(stats.bands)``) or ``(H, W)``, NaN where invalid.
        stats: the scene's :class:`NormStats`.

    Returns:
        float32 ``(H, W)``: luminance / band mean, in dB for linear SAR, ``log1p`` for night
        lights; NaN where invalid.
    """
    return _transform(_combine(np.asarray(arr), stats.weights), stats.db, stats.log)


def normalise(arr: np.ndarray, stats: NormStats, valid: np.ndarray | None = None) -> np.ndarray:
    """Normalise a window of a scene to float32 ``[0, 1]`` with NaN where invalid.

    Args:
        arr: float ``(C, H, W)`` or ``(H, W)`` raw values (NaN where invalid).
        stats: the scene's :class:`NormStats` from :func:`compute_stats`.
        valid: optional bool ``(H, W)``; False marks extra invalid pixels.

    Returns:
        float32 ``(H, W)`` in ``[0, 1]``, NaN where invalid.
    """
    v = to_single_band(arr, stats)
    if valid is not None:
        if valid.shape != v.shape:
            raise ShapeError("valid", f"{v.shape}", valid.shape)
        v[~valid] = np.nan
    v -= np.float32(stats.lo)
    v *= np.float32(1.0 / (stats.hi - stats.lo))
    np.clip(v, 0.0, 1.0, out=v)  # NaN stays NaN
    return v


def _sample_blocks(ds: Any, bands: list[int]) -> np.ndarray:
    """Full-resolution scan by blocks, used when the decimated read found no valid pixel."""
    parts: list[np.ndarray] = []
    n = 0
    for _, win in ds.block_windows(1):
        a = _read_valid(ds, bands, win)
        ok = np.all(np.isfinite(a), axis=0)
        if ok.any():
            parts.append(a[:, ok])
            n += int(ok.sum())
            if n >= _MAX_SAMPLES:
                break
    if not parts:
        return np.zeros((len(bands), 0, 1), np.float32)
    return np.concatenate(parts, axis=1)[:, :, None]


def _decimated_read(ds: Any, bands: list[int], factor: int) -> np.ndarray:
    """Read every ``factor``-th pixel (GDAL nearest decimation) in square windows.

    Windows of ``256 * factor`` source pixels keep GDAL's working set to one row of blocks of one
    window, so the read neither thrashes a small block cache nor fills a large one.

    Returns:
        float32 ``(C, ceil(H / factor), ceil(W / factor))`` with NaN where invalid.
    """
    h, w = ds.height, ds.width
    if factor == 1:
        return _read_valid(ds, bands, Window(0, 0, w, h))
    out = np.full((len(bands), math.ceil(h / factor), math.ceil(w / factor)), np.nan, np.float32)
    step = 256 * factor
    for y0 in range(0, h, step):
        for x0 in range(0, w, step):
            wh, ww = min(step, h - y0), min(step, w - x0)
            oh, ow = math.ceil(wh / factor), math.ceil(ww / factor)
            oy, ox = y0 // factor, x0 // factor
            out[:, oy:oy + oh, ox:ox + ow] = _read_valid(ds, bands, Window(x0, y0, ww, wh),
                                                         (oh, ow))
    return out


def compute_stats(scene: Scene, max_side: int = 1024) -> NormStats:
    """Fix a scene's normalisation from a decimated read of the whole file.

    Args:
        scene: the scene (its ``bands`` selection is used).
        max_side: the longest side of the decimated read (memory is ``O(max_side^2)``).

    Returns:
        The scene's :class:`NormStats`.

    Raises:
        AllNodataError: no valid pixel in the selected bands.
    """
    bands = list(scene.bands)
    factor = max(1, math.ceil(max(scene.width, scene.height) / max(int(max_side), 1)))
    # a bounded GDAL block cache (rasterio reads an integer GDAL_CACHEMAX as bytes)
    with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_BYTES), rasterio.open(scene.path) as ds:
        arr = _decimated_read(ds, bands, factor)
        n_valid = int(np.isfinite(arr).all(axis=0).sum())
        if n_valid == 0 or (factor > 1 and n_valid < _MIN_DECIMATED):
            arr = _sample_blocks(ds, bands)  # too few pixels survived decimation: scan blocks
    weights = _default_weights(scene.modality, len(bands))
    combined = _combine(arr, weights)
    v = combined[np.isfinite(combined)]
    if v.size == 0:
        raise AllNodataError(f"bands {bands} hold no valid pixel", scene.path,
                             f"check the nodata value ({scene.nodata}) and masks, or choose "
                             "other bands")
    db = log = False
    if scene.modality == "sar" and float(v.min()) >= 0:
        dt = np.dtype(scene.dtype)
        if dt.kind == "f":
            db = float(np.percentile(v, 99)) < 5.0
        elif dt.kind in "iu" and dt.itemsize >= 2:
            db = True
    elif scene.modality == "night" and float(v.min()) >= 0:
        log = True
    t = _transform(v.astype(np.float32), db, log)
    t = t[np.isfinite(t)]
    if t.size == 0:
        raise AllNodataError("no valid pixel after the dB transform (all values <= 0)",
                             scene.path, "check the nodata value and the modality")
    lo, hi = (float(q) for q in np.percentile(t, [1.0, 99.0]))
    if not hi - lo > 1e-12 * max(1.0, abs(lo)):
        hi = lo + 1.0
    return NormStats(modality=scene.modality, lo=lo, hi=hi, bands=tuple(bands), db=db,
                     weights=weights, log=log)
