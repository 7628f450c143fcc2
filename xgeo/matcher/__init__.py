"""Matchers behind one contract: ``load_matcher(name).match(img0, img1) -> Matches``."""

from xgeo.matcher.base import (
    Matcher,
    Matches,
    as_gray,
    available_matchers,
    load_matcher,
    register_matcher,
)

__all__ = [
    "Matcher",
    "Matches",
    "as_gray",
    "available_matchers",
    "load_matcher",
    "register_matcher",
]
