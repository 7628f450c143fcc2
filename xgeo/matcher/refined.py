"""Learned coarse geometry + structural sub-pixel refinement (``"universal+structural"``).

The learned matcher is robust to rotation, scale and modality but its tie points scatter by a
few pixels; the structural (CFOG-style) matcher is precise to a tenth of a pixel but only
where the two images are already roughly aligned. This matcher chains them:

1. ``coarse`` matches (default: the shipped universal matcher with orientation search);
2. a RANSAC affine ``A`` (image 1 -> image 0) from them, replaced by a shift when a shift
   explains its inliers as well (:func:`coarse_shift`, ``prefer_shift``): on a small tile (a
   120 px Sentinel patch) scattered learned points tilt the affine's linear part by more than
   the evidence supports (``info["coarse_model"]``). With fewer than ``min_inliers``
   inliers there is no coarse geometry: with ``fallback_identity`` the structural matcher runs
   on the images as they lie (georeferenced tiles are roughly aligned already;
   ``info["fallback"] = "identity"``), otherwise the coarse matches are returned unchanged
   (``info["refined"] = False``);
3. image 1 resampled into image 0's frame by ``A``; when ``A``'s linear part is so close to the
   identity that it moves points by at most ``snap_px`` across a structural template window (a
   georeferenced tile), by ``A``'s translation rounded to whole pixels instead, so that nothing
   is interpolated: the structural matcher then sees image 1's own pixels, as the classical
   matcher alone does (:func:`snapped`; ``info["snapped"]``);
4. the structural matcher on (image 0, resampled image 1), whose tie points are mapped back
   to image 1 through ``A^-1``;
5. a check that the refinement agrees with the coarse evidence: refined points farther than
   ``ransac_px`` from ``A`` are dropped, and if the refined points' own affine keeps fewer than
   ``min_support_kept`` of the coarse inliers, the coarse matches stand (``refined`` False).
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from xgeo.errors import ConfigError
from xgeo.matcher.base import Matcher, Matches, load_matcher, register_matcher

__all__ = ["RefinedMatcher", "coarse_affine", "coarse_shift", "points_back", "refine_with",
           "resample_into", "snapped"]

_DEFAULTS: dict[str, Any] = {
    "min_inliers": 8,  # coarse RANSAC inliers needed before refining
    "ransac_px": 8.0,  # coarse RANSAC threshold in image-0 px (learned points scatter)
    "min_refined": 6,  # fewer refined matches than this: keep the coarse ones
    "fallback_identity": True,  # no coarse geometry: try the structural matcher as the inputs lie
    "min_support_kept": 0.8,  # the refined affine must keep this share of the coarse inliers
    "snap_px": 0.5,  # near-identity coarse affines (px across a template window) -> whole-px shift
    "prefer_shift": True,  # a shift replaces the coarse affine when it explains the matches as well
}


def coarse_affine(m: Matches, ransac_px: float) -> tuple[np.ndarray | None, int]:
    """RANSAC affine ``(2, 3)`` mapping ``m.points1`` (image 1) to ``m.points0``, and its inliers."""
    if len(m) < 3:
        return None, 0
    a, inl = cv2.estimateAffine2D(m.points1.astype(np.float64), m.points0.astype(np.float64),
                                  method=cv2.RANSAC, ransacReprojThreshold=float(ransac_px),
                                  maxIters=5000, confidence=0.999, refineIters=10)
    if a is None or inl is None:
        return None, 0
    return a, int(inl.sum())


def coarse_shift(m: Matches, a: np.ndarray, ransac_px: float) -> tuple[np.ndarray, bool]:
    """The shift that best explains the coarse matches, and whether it explains them as well as
    the affine ``a`` does.

    The matches compared are those within ``ransac_px`` of the affine or of the shift (the
    median displacement of the affine's inliers): both models' support, so that the affine's
    own choice of inliers does not favour it. The shift is their mean displacement; "as well" is
    the Bayesian information criterion on the least-squares residuals of either model (2
    coordinates per match; 2 parameters against 6): the affine's 4 extra parameters must reduce
    the residual sum of squares by more than the matches' scatter alone would. On a 120 px tile
    whose learned matches scatter by 3-4 px a fitted linear part of a few per cent is not
    supported; on a 640 px tile with hundreds of matches half a degree of rotation is.

    Returns:
        ``(2, 3)`` ``[I | t]`` (image 1 -> image 0 px), and True when the shift is preferred.
    """
    near = _residuals(m, a) <= ransac_px
    disp = m.points0.astype(np.float64) - m.points1
    if near.sum() < 4:
        return np.c_[np.eye(2), np.zeros(2)], False
    near |= _residuals(m, np.c_[np.eye(2), np.median(disp[near], axis=0)]) <= ransac_px
    d, p1 = disp[near], m.points1[near].astype(np.float64)
    shift = np.c_[np.eye(2), d.mean(0)]
    x = np.c_[p1, np.ones(len(p1))]
    coef, *_ = np.linalg.lstsq(x, p1 + d, rcond=None)
    rss_affine = float(((x @ coef - p1 - d) ** 2).sum())
    rss_shift = float(((d - d.mean(0)) ** 2).sum())
    n = 2 * len(d)
    eps = 1e-12
    bic_shift = n * np.log(rss_shift / n + eps) + 2 * np.log(n)
    bic_affine = n * np.log(rss_affine / n + eps) + 6 * np.log(n)
    return shift, bool(bic_shift <= bic_affine)


def snapped(a: np.ndarray, window: float, tol_px: float) -> np.ndarray | None:
    """``a`` as a whole-pixel shift, when its linear part is that close to the identity.

    Resampling by a fractional shift or a slight rotation low-passes image 1 by an amount that
    varies with the sub-pixel phase, which the structural matcher's sub-pixel peak then follows;
    a whole-pixel shift copies pixels. The linear part is dropped when it moves points by at most
    ``tol_px`` across ``window`` (largest singular value of ``L - I`` times half the window), so
    the structural matcher, which tolerates a few degrees and per cent, measures what is left.

    Args:
        a: ``(2, 3)`` affine from image-1 to image-0 pixels.
        window: side of the structural matcher's template window (px).
        tol_px: largest displacement across the window that the linear part may cause.

    Returns:
        ``(2, 3)`` ``[I | round(t)]``, or None when ``a`` is farther from a shift (always when
        ``tol_px <= 0``).
    """
    dev = float(np.linalg.norm(a[:, :2] - np.eye(2), 2)) * window / 2
    if tol_px <= 0 or dev > tol_px:
        return None
    return np.c_[np.eye(2), np.round(a[:, 2])]


def _residuals(m: Matches, a: np.ndarray) -> np.ndarray:
    """Distance (image-0 px) of each match's ``points1`` mapped by ``a`` to its ``points0``."""
    q = m.points1.astype(np.float64) @ a[:, :2].T + a[:, 2]
    return np.hypot(*(q - m.points0).T)


def resample_into(img1: np.ndarray, a: np.ndarray, shape0: tuple[int, int]) -> np.ndarray:
    """``img1`` resampled into image 0's frame by ``a`` (image-1 -> image-0 px), NaN outside.

    Args:
        img1: float32 ``(H1, W1)``, NaN invalid.
        a: ``(2, 3)`` affine from image-1 to image-0 pixels.
        shape0: ``(H0, W0)`` of image 0.

    Returns:
        float32 ``(H0, W0)``.
    """
    h0, w0 = shape0
    valid1 = np.isfinite(img1)
    fill = np.where(valid1, img1, 0.0).astype(np.float32)
    warped = cv2.warpAffine(fill, a, (w0, h0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    vw = cv2.warpAffine(valid1.astype(np.float32), a, (w0, h0), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    warped[vw < 0.999] = np.nan
    return warped


def points_back(r: Matches, a: np.ndarray) -> Matches:
    """Matches against :func:`resample_into`'s image with ``points1`` mapped back to image 1."""
    if not len(r):
        return r
    inv = cv2.invertAffineTransform(a)
    p1 = r.points1.astype(np.float64) @ inv[:, :2].T + inv[:, 2]
    return Matches(r.points0, p1.astype(np.float32), r.confidence, dict(r.info))


def points0_back(r: Matches, a: np.ndarray) -> Matches:
    """Matches of image 0 resampled into image 1's frame (:func:`resample_into` with ``a``'s
    inverse) against image 1, with ``points0`` mapped back to image 0 by ``a`` (image-1 ->
    image-0 px)."""
    if not len(r):
        return r
    p0 = r.points0.astype(np.float64) @ a[:, :2].T + a[:, 2]
    return Matches(p0.astype(np.float32), r.points1, r.confidence, dict(r.info))


def refine_with(fine: Matcher, img0: np.ndarray, img1: np.ndarray, a: np.ndarray) -> Matches:
    """Matches of ``img0`` against ``img1`` resampled by ``a`` (img1 -> img0 px), mapped back.

    Args:
        fine: the matcher run on the resampled pair (e.g. ``classical``).
        img0: float32 ``(H0, W0)``, NaN invalid.
        img1: float32 ``(H1, W1)``, NaN invalid.
        a: ``(2, 3)`` affine from image-1 to image-0 pixels.

    Returns:
        :class:`Matches` with ``points1`` in ``img1`` pixels.
    """
    return points_back(fine.match(img0, resample_into(img1, a, img0.shape)), a)


class RefinedMatcher(Matcher):
    """Learned coarse matches, refined to sub-pixel by the structural matcher.

    Args:
        coarse: matcher giving the coarse geometry (default: shipped ``universal``).
        fine: precise matcher used after resampling (default: ``classical``).
        **options: ``min_inliers``, ``ransac_px``, ``min_refined``, ``fallback_identity``,
            ``min_support_kept``, ``snap_px``, ``prefer_shift`` (see ``_DEFAULTS``;
            ``snap_px=0`` always resamples by the coarse geometry); others go to the default
            coarse matcher (e.g. ``weights``, ``device``, ``threshold``).
    """

    name = "universal+structural"

    def __init__(self, coarse: Matcher | None = None, fine: Matcher | None = None,
                 **options: Any) -> None:
        own = {k: options.pop(k) for k in list(options) if k in _DEFAULTS}
        self.opts = {**_DEFAULTS, **own}
        if coarse is not None and options:
            raise ConfigError(f"RefinedMatcher: options {sorted(options)} apply to the default "
                              "coarse matcher only; configure the given one instead")
        self.coarse = coarse if coarse is not None else load_matcher("universal", **options)
        self.fine = fine if fine is not None else load_matcher("classical")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.opts, "coarse": self.coarse.describe(),
                "fine": self.fine.describe()}

    def refine(self, img0: np.ndarray, img1: np.ndarray, m: Matches) -> Matches:
        """Refine given coarse matches ``m`` of ``(img0, img1)`` (float32 gray, NaN invalid)."""
        t = time.perf_counter()
        a, n_in = coarse_affine(m, self.opts["ransac_px"])
        info: dict[str, Any] = {"matcher": self.name, "coarse_inliers": n_in, "refined": False}
        if a is None or n_in < int(self.opts["min_inliers"]):
            if self.opts["fallback_identity"]:
                r = self.fine.match(img0, img1)
                if len(r) >= int(self.opts["min_refined"]) or len(r) > len(m):
                    info.update(fallback="identity", seconds_refine=time.perf_counter() - t)
                    return Matches(r.points0, r.points1, r.confidence, {**r.info, **info})
            return Matches(m.points0, m.points1, m.confidence, {**m.info, **info})
        info["coarse_model"] = "affine"
        if self.opts["prefer_shift"]:
            shift, simpler = coarse_shift(m, a, float(self.opts["ransac_px"]))
            if simpler:
                a, info["coarse_model"] = shift, "shift"
        window = float(getattr(self.fine, "conf", {}).get("window", 64))
        whole_px = snapped(a, window, float(self.opts["snap_px"]))
        info["snapped"] = whole_px is not None
        r = refine_with(self.fine, img0, img1, a if whole_px is None else whole_px)
        info["seconds_refine"] = time.perf_counter() - t
        if len(r):
            # a refinement moves points by a few px at most: structural matches far from the
            # coarse geometry are its own mistakes (real image-map pairs: SR@10 58 % refined
            # without this and the support check below, 80 % with both; coarse alone 88 %)
            near = _residuals(r, a) <= float(self.opts["ransac_px"])
            info["refined_dropped"] = int((~near).sum())
            r = Matches(r.points0[near], r.points1[near], r.confidence[near], r.info)
        if len(r) < int(self.opts["min_refined"]):
            return Matches(m.points0, m.points1, m.confidence, {**m.info, **info})
        # the refined geometry must still explain the coarse evidence (hundreds of matches):
        # few structural matches on a map can agree locally yet tilt the fit
        a_ref, _ = coarse_affine(r, 3.0)
        if a_ref is not None:
            px = float(self.opts["ransac_px"])
            kept = int((_residuals(m, a_ref) <= px).sum()) / max(1, int((_residuals(m, a) <= px).sum()))
            info["coarse_support_kept"] = kept
            if kept < float(self.opts["min_support_kept"]):
                return Matches(m.points0, m.points1, m.confidence, {**m.info, **info})
        info.update(refined=True, coarse_affine=a.tolist(), n_coarse=len(m))
        return Matches(r.points0, r.points1, r.confidence, {**r.info, **info})

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        return self.refine(img0, img1, self.coarse.match(img0, img1))


@register_matcher("universal+structural")
def _make_refined(**options: Any) -> RefinedMatcher:
    return RefinedMatcher(**options)
