"""The weight-free classical matcher: dense structural features + FFT template matching.

Registered as ``"classical"``: ``xgeo.load_matcher("classical", window=64, ...)``. It is the
baseline and the fallback of the learned universal matcher, behind the same contract.

Method (CFOG-like, Ye et al., "Fast and robust matching for multimodal remote sensing image
registration", IEEE TGRS 2019):

1. Each image becomes ``orientations`` channels of absolute directional derivatives (unsigned
   orientation, so contrast inversion between modalities does not matter), Gaussian-smoothed in
   space, ``[1, 2, 1]``-smoothed across orientation and L2-normalised per pixel: they encode the
   shape of local structure, not intensity.
2. Optionally (``global_search=True``) a coarse offset is found by masked NCC of the channel
   stacks of downsampled images, so images offset by up to about a quarter of their size match.
3. A grid of ``window`` x ``window`` templates of image 0 (every ``spacing`` px; windows with
   invalid pixels or little gradient energy are skipped) is correlated with image 1 over
   ``+-search`` px around the coarse offset, all channels jointly, by batched FFTs (zero-mean
   normalised cross-correlation, NCC). The integer peak is refined to sub-pixel by a 3-point
   quadratic fit per axis.
4. Reliability (``confidence``) in ``[0, 1)``: ``1 - exp(-u / 0.1)`` with
   ``u = (p1 - p2) / (1 - p2)``, ``p1`` the NCC peak and ``p2 >= 0`` the best NCC at least
   ``exclusion + 1`` px away from it (see :func:`xgeo.matcher._structural.reliability`).
   Peaks on the border of the search range, and matched windows of image 1 with invalid
   content, are dropped.

Assumptions: the two images are roughly aligned (offset within ``search`` px, or within a
quarter of the image size with ``global_search``), with small rotation (< ~5 deg) and scale
difference (< ~5 %) - the situation after geo-referencing. It is not rotation or scale invariant.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from xgeo.errors import ConfigError, ShapeError
from xgeo.matcher._structural import (
    Features,
    box_sums,
    global_offset,
    match_windows,
    oriented_gradient_channels,
    window_grid,
)
from xgeo.matcher.base import Matcher, Matches, register_matcher

__all__ = ["StructuralMatcher"]

_SUBPIXEL = ("parabola", "gaussian", "none")


@register_matcher("classical")
class StructuralMatcher(Matcher):
    """CFOG-like structural template matcher (weight-free, CPU, numpy/scipy.fft).

    Options (keyword arguments; unknown keys raise :class:`~xgeo.errors.ConfigError`) are listed
    in :attr:`default_conf` with one comment each.

    Example:
        >>> m = StructuralMatcher(window=64, search=24)
        >>> r = m.match(optical, sar)    # r.points0, r.points1 (N, 2), r.confidence (N,)
    """

    name = "classical"
    default_conf: ClassVar[dict[str, Any]] = {
        "window": 64,            # template side in px (image 0)
        "spacing": 48,           # grid step between template windows in px
        "search": 24,            # largest offset searched per axis in px (around global offset)
        "min_score": 0.05,       # drop matches with confidence below this
        "orientations": 9,       # number of unsigned gradient orientations (channels)
        "sigma": 0.8,            # spatial Gaussian sigma of the channels in px
        "presmooth": 0.5,        # Gaussian sigma applied before the gradient in px
        "subpixel": "parabola",  # sub-pixel peak refinement: parabola | gaussian | none
        "exclusion": 3,          # radius around the peak ignored for the second peak in px
        "min_energy": 0.25,      # skip windows with gradient energy < this x median window energy
        "max_invalid": 0.05,     # skip windows whose invalid (NaN) fraction exceeds this
        "global_search": True,   # coarse masked-NCC offset on downsampled images first
        "global_max_size": 256,  # longer side of the downsampled images for the global search
        "batch": 64,             # windows per FFT batch (memory vs overhead)
        "workers": 1,            # scipy.fft workers
        "adaptive": True,        # shrink window/spacing/search for images < 3 windows wide
    }

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.default_conf))
        if unknown:
            raise ConfigError(
                f"StructuralMatcher: unknown option(s) {unknown}; allowed: "
                f"{sorted(self.default_conf)}. Hint: e.g. load_matcher('classical', window=32)"
            )
        conf = {**self.default_conf, **options}
        for key in ("window", "spacing", "search", "orientations", "batch", "workers",
                    "global_max_size"):
            if not isinstance(conf[key], (int, np.integer)) or conf[key] < 1:
                raise ConfigError(f"StructuralMatcher: {key} must be a positive int, got "
                                  f"{conf[key]!r}")
        if conf["window"] < 8:
            raise ConfigError(f"StructuralMatcher: window must be >= 8 px, got {conf['window']}")
        if conf["subpixel"] not in _SUBPIXEL:
            raise ConfigError(f"StructuralMatcher: subpixel must be one of {_SUBPIXEL}, got "
                              f"{conf['subpixel']!r}")
        for key in ("min_score", "max_invalid", "min_energy"):
            if not 0.0 <= float(conf[key]) <= 1.0:
                raise ConfigError(f"StructuralMatcher: {key} must be in [0, 1], got {conf[key]}")
        for key in ("sigma", "presmooth"):
            if float(conf[key]) < 0:
                raise ConfigError(f"StructuralMatcher: {key} must be >= 0, got {conf[key]}")
        self.conf: dict[str, Any] = conf

    def describe(self) -> dict[str, Any]:
        """Name and every option: a JSON-able identity for reports and cache keys."""
        return {"name": self.name, **{k: self.conf[k] for k in sorted(self.conf)}}

    def _effective_conf(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Options for an image of ``shape``: small images (e.g. 120 px patches) get smaller
        windows, spacing and search so that a grid of windows still fits."""
        c = self.conf
        side = min(shape)
        if not c["adaptive"] or side >= 3 * c["window"]:
            return c
        # Large, densely overlapping windows: on 120 px Sentinel-1/2 patches, 64-80 px windows
        # at ~13 px spacing gave a per-patch offset scatter 2-3x lower than 32-48 px windows.
        w = min(c["window"], max(16, int(0.55 * side) // 2 * 2))
        return {**c, "window": w, "spacing": max(6, side // 9),
                "search": min(c["search"], max(6, side // 15))}

    def _features(self, img: np.ndarray) -> Features:
        """Structural channels of a float32 ``(H, W)`` image (NaN invalid)."""
        c = self.conf
        return oriented_gradient_channels(img, orientations=c["orientations"], sigma=c["sigma"],
                                          presmooth=c["presmooth"])

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        """Match float32 ``(H0, W0)`` against ``(H1, W1)`` images in ``[0, 1]`` (NaN invalid).

        Returns:
            :class:`Matches`: ``points0`` window centres in image 0, ``points1`` matched
            positions in image 1, ``confidence`` the reliability; ``info`` holds the global
            offset, window counts and timings.
        """
        for nm, a in (("img0", img0), ("img1", img1)):
            if a.ndim != 2:
                raise ShapeError(nm, "(H, W)", a.shape)
        c = self._effective_conf(img0.shape)
        t0 = time.perf_counter()
        w = c["window"]
        info: dict[str, Any] = {"matcher": self.name}
        if c is not self.conf:
            info["adapted"] = {k: c[k] for k in ("window", "spacing", "search")}
        if min(img0.shape) < w or min(img1.shape) < 8:
            return Matches.empty(**info, reason=f"image smaller than window={w}")
        F0 = self._features(img0)
        F1 = self._features(img1)
        t1 = time.perf_counter()
        offset = (0, 0)
        if c["global_search"]:
            g = global_offset(img0, img1, max_size=c["global_max_size"], near=c["search"] // 2,
                              feature_kw={"orientations": c["orientations"], "sigma": c["sigma"]},
                              workers=c["workers"])
            info.update(global_offset=(g.dx, g.dy), global_ncc=g.ncc, global_ncc2=g.ncc2,
                        global_ncc_near=g.ncc_near)
            # Move the local search only when the coarse peak lies beyond what the local search
            # covers anyway, is clearly better than every offset the local search covers, and
            # is distinct from the runner-up.
            if (max(abs(g.dx), abs(g.dy)) > c["search"] // 2 and g.ncc > g.ncc_near + 0.05
                    and g.ncc2 < 0.9 * g.ncc):
                offset = (int(round(g.dx)), int(round(g.dy)))
        info["offset_used"] = offset
        t2 = time.perf_counter()
        corners = window_grid(img0.shape, w, c["spacing"])
        n_grid = len(corners)
        if n_grid:
            # Skip windows with invalid pixels or little structure (energy before normalisation).
            inv = (~F0.valid).astype(np.float32)
            ys, xs = corners[:, 1], corners[:, 0]
            cs_inv = box_sums(inv, w)[ys, xs] / (w * w)
            energy = box_sums(F0.energy, w)[ys, xs] / (w * w)
            ok = cs_inv <= c["max_invalid"]
            ref = float(np.median(energy[ok])) if ok.any() else 0.0
            ok &= energy >= max(c["min_energy"] * ref, 1e-6)
            corners = corners[ok]
        info.update(n_grid=n_grid, n_windows=len(corners))
        if len(corners) == 0:
            info["seconds"] = time.perf_counter() - t0
            return Matches.empty(**info)
        wm = match_windows(F0, F1, corners, w, c["search"], offset=offset,
                           max_invalid=c["max_invalid"], exclusion=c["exclusion"],
                           subpixel=c["subpixel"], batch=c["batch"], workers=c["workers"])
        t3 = time.perf_counter()
        sel = wm.keep & (wm.confidence >= c["min_score"])
        info.update(n_kept=int(sel.sum()),
                    seconds=t3 - t0,
                    seconds_features=t1 - t0,
                    seconds_global=t2 - t1,
                    seconds_matching=t3 - t2)
        return Matches(wm.points0[sel], wm.points1[sel], wm.confidence[sel], info)

