"""The cascade: classical first, escalated to the second matcher where its matches do not hold."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

import xgeo
from xgeo.errors import ConfigError
from xgeo.matcher import Matcher, Matches
from xgeo.matcher.cascade import CascadeMatcher
from xgeo.matcher.refined import RefinedMatcher


def _world() -> np.ndarray:
    rng = np.random.default_rng(1)
    return ndimage.gaussian_filter(rng.normal(0, 1, (600, 600)), 3.0).astype(np.float32)


def _aligned() -> tuple[np.ndarray, np.ndarray]:
    """A georeferenced-tile-like pair: image 1 moved by (3, -2) px, contrast inverted."""
    img0 = _world()[100:420, 100:420]
    return img0, -np.roll(img0, (-2, 3), axis=(0, 1))


def _rotated() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image 1 rotated by 35 deg and scaled 1.2 about the centre, contrast inverted."""
    img0 = _world()[100:420, 100:420]
    a_01 = cv2.getRotationMatrix2D((160.0, 160.0), 35.0, 1.2)  # image-0 px -> image-1 px
    img1 = cv2.warpAffine(img0.copy(), a_01, (320, 320), flags=cv2.INTER_CUBIC, borderValue=np.nan)
    return img0, np.where(np.isfinite(img1), -img1, np.nan).astype(np.float32), a_01


class _Truth(Matcher):
    """Stands in for the learned coarse matcher: true correspondences scattered by 3 px."""

    name = "truth"

    def __init__(self, a_01: np.ndarray) -> None:
        self.a, self.calls = a_01, 0

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        self.calls += 1
        rng = np.random.default_rng(0)
        p0 = rng.uniform(40, 280, (80, 2))
        p1 = p0 @ self.a[:, :2].T + self.a[:, 2] + rng.normal(0, 3.0, (80, 2))
        return Matches(p0.astype(np.float32), p1.astype(np.float32), np.ones(80, np.float32))


class _Garbage(Matcher):
    name = "garbage"

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        rng = np.random.default_rng(3)
        return Matches(rng.uniform(0, 300, (50, 2)).astype(np.float32),
                       rng.uniform(0, 300, (50, 2)).astype(np.float32), np.ones(50, np.float32))


def test_aligned_pairs_stay_with_the_classical_matcher_and_load_nothing_else() -> None:
    img0, img1 = _aligned()
    cascade = CascadeMatcher()
    r = cascade.match(img0, img1)
    assert r.info["cascade"] == "first" and cascade._second is None
    plain = xgeo.load_matcher("classical").match(img0, img1)
    assert np.array_equal(r.points1, plain.points1) and np.array_equal(r.points0, plain.points0)
    d = np.median(r.points1 - r.points0, axis=0)
    assert abs(d[0] - 3) < 0.2 and abs(d[1] + 2) < 0.2, d


def test_rotated_pairs_are_escalated_and_the_consistent_result_kept() -> None:
    img0, img1, a_01 = _rotated()
    coarse = _Truth(a_01)
    second = RefinedMatcher(coarse=coarse, fine=xgeo.load_matcher("classical"))
    r = CascadeMatcher(second=second).match(img0, img1)
    assert coarse.calls == 1 and r.info["cascade"] == "escalated-second"
    k_first, k_second = r.info["cascade_consistent"]
    assert k_second > k_first
    want = r.points0.astype(np.float64) @ a_01[:, :2].T + a_01[:, 2]
    assert np.median(np.hypot(*(r.points1 - want).T)) < 0.3  # structural precision


def test_an_escalation_that_holds_less_keeps_the_first_result() -> None:
    img0, img1, _ = _rotated()
    first = xgeo.load_matcher("classical").match(img0, img1)
    r = CascadeMatcher(second=_Garbage()).match(img0, img1)
    assert r.info["cascade"] == "escalated-first"
    assert np.array_equal(r.points1, first.points1)


def test_match_batch_escalates_only_the_weak_pairs() -> None:
    a0, a1 = _aligned()
    r0, r1, a_01 = _rotated()
    coarse = _Truth(a_01)
    second = RefinedMatcher(coarse=coarse, fine=xgeo.load_matcher("classical"))
    out = CascadeMatcher(second=second).match_batch([(a0, a1), (r0, r1), (a0, a1)])
    assert [o.info["cascade"] for o in out] == ["first", "escalated-second", "first"]
    assert coarse.calls == 1


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="min_consistent"):
        CascadeMatcher(min_consistent=1.5)
    with pytest.raises(ConfigError, match="consistency_px"):
        CascadeMatcher(consistency_px=0)
    with pytest.raises(ConfigError, match="second matcher only"):
        CascadeMatcher(second=_Garbage(), orientation_search=False)


def test_registered_and_described_without_loading_the_network() -> None:
    m = xgeo.load_matcher("cascade", orientation_search=False)
    d = m.describe()
    assert d["name"] == "cascade" and d["second"]["orientation_search"] is False
    assert d["first"]["name"] == "classical" and m._second is None
