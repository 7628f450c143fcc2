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


def test_snapped_drops_a_near_identity_linear_part_and_rounds_the_shift() -> None:
    from xgeo.matcher.refined import snapped

    near = cv2.getRotationMatrix2D((200.0, 150.0), 0.5, 1.003)  # the spine's resampled case
    near[:, 2] += (3.4, -2.7)
    s = snapped(near, 64, 0.5)
    assert s is not None and np.array_equal(s[:, :2], np.eye(2))
    assert np.array_equal(s[:, 2], np.round(near[:, 2]))
    tilted = cv2.getRotationMatrix2D((200.0, 150.0), 4.0, 1.03)  # a few degrees: resample
    assert snapped(tilted, 64, 0.5) is None
    assert snapped(near, 64, 0.0) is None  # snap_px=0: always resample


def test_near_identity_geometry_refines_on_image1s_own_pixels__synthetic() -> None:
    # a georeferenced tile: image 1 = image 0 moved by a sub-pixel shift (cubic), contrast
    # inverted. Snapped, the structural matcher sees image 1's own pixels moved by whole pixels,
    # so its matches are those of the classical matcher on the pair as it lies; with snap_px=0
    # image 1 is first interpolated by the coarse affine's fractional shift
    from scipy import ndimage

    img0, _, _ = _pair()
    img1 = -ndimage.shift(img0, (-2.7, 3.4), order=3, mode="nearest")  # content moves (3.4, -2.7)
    a = np.array([[1.0, 0.0, -3.4], [0.0, 1.0, 2.7]])  # image 1 -> image 0 px
    coarse = _NoisyTruth(cv2.invertAffineTransform(a), sigma=1.5)
    classical = xgeo.load_matcher("classical")
    r = RefinedMatcher(coarse=coarse, fine=classical).match(img0, img1)
    assert r.info["refined"] and r.info["snapped"] and len(r) >= 10
    plain = classical.match(img0, img1)
    by_p0 = {tuple(np.round(p, 3)): q for p, q in zip(plain.points0, plain.points1, strict=True)}
    same = [np.abs(by_p0[tuple(np.round(p, 3))] - q).max()
            for p, q in zip(r.points0, r.points1, strict=True) if tuple(np.round(p, 3)) in by_p0]
    assert len(same) >= 0.8 * len(r) and max(same) < 1e-3, (len(same), len(r))
    resampled = RefinedMatcher(coarse=coarse, fine=classical, snap_px=0.0).match(img0, img1)
    assert resampled.info["refined"] and not resampled.info["snapped"]


def test_coarse_shift_wins_only_where_the_evidence_does_not_support_a_linear_part() -> None:
    from xgeo.matcher.refined import coarse_affine, coarse_shift

    rng = np.random.default_rng(4)

    def matches(n: int, side: float, a_10: np.ndarray, sigma: float) -> Matches:
        p1 = rng.uniform(0, side, (n, 2))
        p0 = p1 @ a_10[:, :2].T + a_10[:, 2] + rng.normal(0, sigma, (n, 2))
        return Matches(p0.astype(np.float32), p1.astype(np.float32), np.ones(n, np.float32))

    # a 120 px patch, a pure shift, learned points scattered by 3.5 px: the shift is preferred
    shift = np.array([[1.0, 0.0, -4.8], [0.0, 1.0, 2.8]])
    m = matches(60, 120.0, shift, 3.5)
    a, _ = coarse_affine(m, 8.0)
    s, simpler = coarse_shift(m, a, 8.0)
    assert simpler and np.allclose(s[:, 2], [-4.8, 2.8], atol=1.0)
    # a 640 px tile, half a degree and 0.3 % with 1 px scatter: the affine is supported
    tilt = cv2.getRotationMatrix2D((320.0, 320.0), 0.5, 1.003)
    m = matches(400, 640.0, tilt, 1.0)
    a, _ = coarse_affine(m, 8.0)
    assert not coarse_shift(m, a, 8.0)[1]
