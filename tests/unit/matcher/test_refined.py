"""Learned-coarse + structural refinement: scattered coarse matches become sub-pixel ones."""

from __future__ import annotations

import cv2
import numpy as np

import xgeo
from xgeo.matcher import Matcher, Matches
from xgeo.matcher.refined import RefinedMatcher


class _NoisyTruth(Matcher):
    """Stands in for a learned matcher: true correspondences scattered by ``sigma`` px."""

    name = "noisy-truth"

    def __init__(self, a_01: np.ndarray, sigma: float, n: int = 80, outliers: int = 20) -> None:
        self.a, self.sigma, self.n, self.outliers = a_01, sigma, n, outliers

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        rng = np.random.default_rng(0)
        h, w = img0.shape
        p0 = rng.uniform([20, 20], [w - 20, h - 20], (self.n, 2))
        p1 = p0 @ self.a[:, :2].T + self.a[:, 2] + rng.normal(0, self.sigma, (self.n, 2))
        p1[: self.outliers] = rng.uniform(0, min(h, w), (self.outliers, 2))
        return Matches(p0.astype(np.float32), p1.astype(np.float32),
                       np.ones(self.n, np.float32))


def _pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(1)
    world = ndimage.gaussian_filter(rng.normal(0, 1, (600, 600)), 3.0).astype(np.float32)
    img0 = world[100:420, 100:420]
    # image 1: the world rotated by 35 deg and scaled 1.2 about the crop centre
    a_01 = cv2.getRotationMatrix2D((160.0, 160.0), 35.0, 1.2)  # image-0 px -> image-1 px
    img1 = cv2.warpAffine(world[100:420, 100:420].copy(), a_01, (320, 320),
                          flags=cv2.INTER_CUBIC, borderValue=np.nan)
    img1 = np.where(np.isfinite(img1), -img1, np.nan)  # inverted contrast (cross-modal-like)
    return img0, img1.astype(np.float32), a_01


def test_refinement_turns_scattered_matches_into_subpixel_ones() -> None:
    img0, img1, a_01 = _pair()
    coarse = _NoisyTruth(a_01, sigma=3.0)
    m = RefinedMatcher(coarse=coarse, fine=xgeo.load_matcher("classical")).match(img0, img1)
    assert m.info["refined"] and len(m) >= 10
    want = m.points0.astype(np.float64) @ a_01[:, :2].T + a_01[:, 2]
    err = np.hypot(*(m.points1 - want).T)
    raw = coarse.match(img0, img1)
    raw_err = np.hypot(*(raw.points1[20:] - (raw.points0[20:] @ a_01[:, :2].T + a_01[:, 2])).T)
    assert np.median(err) < 0.3 < 2.0 < np.median(raw_err), (np.median(err), np.median(raw_err))


def test_too_few_coarse_inliers_returns_coarse_matches_unchanged() -> None:
    img0, img1, a_01 = _pair()
    coarse = _NoisyTruth(a_01, sigma=3.0, n=10, outliers=6)  # 4 inliers < min_inliers
    r = RefinedMatcher(coarse=coarse, fallback_identity=False).match(img0, img1)
    assert not r.info["refined"] and len(r) == 10


def test_no_coarse_geometry_falls_back_to_structural_as_the_inputs_lie() -> None:
    img0, _, _ = _pair()
    shifted = np.roll(img0, (3, -2), axis=(0, 1))  # roughly aligned, like georeferenced tiles
    a = cv2.getRotationMatrix2D((0.0, 0.0), 0.0, 1.0)
    coarse = _NoisyTruth(a, sigma=3.0, n=10, outliers=8)
    r = RefinedMatcher(coarse=coarse).match(img0, -shifted)
    assert r.info["fallback"] == "identity" and len(r) >= 10
    d = np.median(r.points1 - r.points0, axis=0)
    assert abs(d[0] + 2) < 0.2 and abs(d[1] - 3) < 0.2, d


def test_registered_name_loads() -> None:
    assert "universal+structural" in xgeo.available_matchers()


class _Tilted(Matcher):
    """A 'structural' matcher whose few matches lie near the coarse geometry but tilt it."""

    name = "tilted"

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        rng = np.random.default_rng(2)
        p0 = rng.uniform(140, 180, (12, 2))  # clustered in the middle
        tilt = cv2.getRotationMatrix2D((160.0, 160.0), 4.0, 1.0)  # 4 deg about the centre
        p1 = p0 @ tilt[:, :2].T + tilt[:, 2]  # within ~3 px here, ~16 px at the corners
        return Matches(p0.astype(np.float32), p1.astype(np.float32), np.ones(12, np.float32))


def test_refinement_that_disagrees_with_the_coarse_geometry_is_not_used() -> None:
    img0, img1, a_01 = _pair()
    coarse = _NoisyTruth(a_01, sigma=1.0)
    r = RefinedMatcher(coarse=coarse, fine=_Tilted()).match(img0, img1)
    assert not r.info["refined"] and r.info["coarse_support_kept"] < 0.8
    assert len(r) == 80  # the coarse matches come back
    ok = RefinedMatcher(coarse=coarse, fine=_Tilted(), min_support_kept=0.0).match(img0, img1)
    assert ok.info["refined"] and len(ok) == 12


def test_points0_back_undoes_resampling_image0_into_image1s_frame() -> None:
    # finer_frame's rematch: image 0 resampled into image 1's frame by the inverse of a
    # (image-1 -> image-0 px); a point found there maps back to image 0 by a
    from xgeo.matcher.refined import points0_back, resample_into

    yy, xx = np.mgrid[0:200, 0:240].astype(np.float32)
    x0, y0 = 131.3, 77.6
    img0 = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 3.0**2)).astype(np.float32)
    a = cv2.getRotationMatrix2D((100.0, 90.0), 30.0, 0.6)  # image 1 magnified 1/0.6 x
    warped = resample_into(img0, cv2.invertAffineTransform(a), (300, 320))
    w = np.nan_to_num(warped)
    w = np.where(w > 0.2 * w.max(), w, 0.0)
    gy, gx = np.mgrid[0:300, 0:320]
    q = np.array([[(gx * w).sum() / w.sum(), (gy * w).sum() / w.sum()]], np.float32)
    r = points0_back(Matches(q, q.copy(), np.ones(1, np.float32)), a)
    assert np.allclose(r.points0[0], [x0, y0], atol=0.15), r.points0
    assert np.array_equal(r.points1, q)  # image 1's points are untouched
