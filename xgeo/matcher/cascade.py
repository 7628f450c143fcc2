"""Classical first, learned where the classical matches do not hold together (``"cascade"``).

The structural (classical) matcher is fast and precise to a tenth of a pixel on inputs that its
assumptions fit: roughly aligned (offsets within its global search), rotation under a few
degrees, scale within a few per cent - georeferenced tiles. Outside them it does not fail
loudly: it returns matches, most of them wrong. The learned coarse geometry of
``universal+structural`` (:mod:`xgeo.matcher.refined`) holds far beyond them but costs the
network's forward pass and, on the spine's already aligned tiles, is no more precise.

So this matcher runs the classical matcher on every pair and measures whether its matches hold
together: how many lie within ``consistency_px`` of one RANSAC affine. A pair where fewer than
``min_consistent`` of them do, or fewer than ``min_inliers`` in all, is *escalated*: matched
again by ``universal+structural``, and of the two results the one with more affine-consistent
matches is kept (``info["cascade"]``: ``"first"`` | ``"escalated-first"`` |
``"escalated-second"``). Pairs the classical matcher handles come back exactly as it gave them,
at its cost; the learned matcher is loaded only at the first escalation.

Measured on the spine's real pairs (``tests/bench/register_matchers.py``; README, "The
pipeline's default matcher"): on georeferenced and slightly resampled inputs the classical
matches hold together (79-100 % of the tie points inliers) and nothing is escalated (on the
demo's optical vs speckled SAR tiles 4 of 16 are, 1 keeping the learned result); with 4 deg
of rotation, 3 % of scale and (24, -17) px the classical share falls to 30-39 % on the cross-modal
pairs, where its registration was 17.7 px off (OLI/TIRS) or failed (S2/S1).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from xgeo.errors import ConfigError
from xgeo.matcher.base import Matcher, Matches, as_gray, load_matcher, register_matcher
from xgeo.matcher.refined import coarse_affine

__all__ = ["CascadeMatcher", "consistent_count"]

_DEFAULTS: dict[str, Any] = {
    "min_consistent": 0.5,  # escalate when under this share of first-stage matches fit one affine
    "min_inliers": 8,  # ... or when fewer than this many do
    "consistency_px": 3.0,  # RANSAC threshold of that affine (image-0 px)
}


def consistent_count(m: Matches, px: float) -> int:
    """How many matches lie within ``px`` of one RANSAC affine (image 1 -> image 0)."""
    return coarse_affine(m, px)[1]


class CascadeMatcher(Matcher):
    """The classical matcher, escalating to ``universal+structural`` where it does not hold.

    Args:
        first: the fast matcher tried on every pair (default: ``classical``).
        second: the matcher for escalated pairs (default: ``universal+structural``, loaded at
            the first escalation).
        **options: ``min_consistent``, ``min_inliers``, ``consistency_px`` (see ``_DEFAULTS``);
            the others go to the default second matcher (e.g. ``orientation_search=False``,
            ``max_side``, ``weights``).
    """

    name = "cascade"

    def __init__(self, first: Matcher | None = None, second: Matcher | None = None,
                 **options: Any) -> None:
        own = {k: options.pop(k) for k in list(options) if k in _DEFAULTS}
        self.opts = {**_DEFAULTS, **own}
        if not 0.0 <= float(self.opts["min_consistent"]) <= 1.0:
            raise ConfigError(f"CascadeMatcher: min_consistent must be in [0, 1], got "
                              f"{self.opts['min_consistent']}")
        if float(self.opts["consistency_px"]) <= 0:
            raise ConfigError(f"CascadeMatcher: consistency_px must be > 0, got "
                              f"{self.opts['consistency_px']}")
        if second is not None and options:
            raise ConfigError(f"CascadeMatcher: options {sorted(options)} apply to the default "
                              "second matcher only; configure the given one instead")
        self.first = first if first is not None else load_matcher("classical")
        self._second = second
        self._second_options = options

    @property
    def second(self) -> Matcher:
        """The escalation matcher (loaded on first use)."""
        if self._second is None:
            self._second = load_matcher("universal+structural", **self._second_options)
        return self._second

    def describe(self) -> dict[str, Any]:
        second = (self._second.describe() if self._second is not None
                  else {"name": "universal+structural", **self._second_options})
        return {"name": self.name, **self.opts, "first": self.first.describe(), "second": second}

    def _weak(self, m: Matches) -> tuple[bool, int]:
        k = consistent_count(m, float(self.opts["consistency_px"]))
        weak = k < int(self.opts["min_inliers"]) or k < float(self.opts["min_consistent"]) * len(m)
        return weak, k

    def _choose(self, first: Matches, k_first: int, second: Matches, seconds: float) -> Matches:
        k_second = consistent_count(second, float(self.opts["consistency_px"]))
        info = {"cascade_consistent": [k_first, k_second], "seconds_escalated": seconds}
        if k_second > k_first:
            return Matches(second.points0, second.points1, second.confidence,
                           {**second.info, **info, "cascade": "escalated-second"})
        return Matches(first.points0, first.points1, first.confidence,
                       {**first.info, **info, "cascade": "escalated-first"})

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        return self._run([(img0, img1)])[0]

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Matches]:
        """Classical on every pair; the weak ones again, batched, by the second matcher."""
        return self._run([(as_gray(a), as_gray(b)) for a, b in pairs])

    def _run(self, grays: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Matches]:
        """``grays``: pairs already through :func:`as_gray` (normalised once, as ``match`` does)."""
        out: list[Matches] = []
        weak: list[int] = []
        counts: list[int] = []
        for i, (a, b) in enumerate(grays):
            r = self.first._match_gray(a, b)
            is_weak, k = self._weak(r)
            counts.append(k)
            if is_weak:
                weak.append(i)
            out.append(Matches(r.points0, r.points1, r.confidence,
                               {**r.info, "cascade": "first", "cascade_consistent": [k]}))
        if weak:
            t = time.perf_counter()
            second = self.second.match_batch([grays[i] for i in weak])
            dt = (time.perf_counter() - t) / len(weak)
            for i, s in zip(weak, second, strict=True):
                out[i] = self._choose(out[i], counts[i], s, dt)
        return out


@register_matcher("cascade")
def _make_cascade(**options: Any) -> CascadeMatcher:
    return CascadeMatcher(**options)
