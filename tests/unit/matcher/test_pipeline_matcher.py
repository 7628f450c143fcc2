"""How the pipeline loads learned matchers for its tiles."""

from __future__ import annotations

import pytest

from xgeo.matcher.weights import shipped_weights_path
from xgeo.pipeline import LEARNED_MAX_SIDE, RegisterConfig, get_matcher


@pytest.mark.skipif(not shipped_weights_path("tiny").is_file(), reason="no shipped weights")
@pytest.mark.parametrize(("tile", "halo", "want"), [(1024, 64, LEARNED_MAX_SIDE), (256, 32, 320)])
def test_learned_tiles_are_capped_and_skip_the_searches(tile: int, halo: int, want: int) -> None:
    # large tiles are downscaled to the size the network handles (demo: 18.9 px RMSE at 1152 px
    # tiles, 1.36 px at 640); small ones keep their own size; tiles share one grid: no searches
    m = get_matcher(RegisterConfig(matcher="universal", tile_size=tile, halo=halo))
    d = m.describe()
    assert d["max_side"] == want
    assert d["orientations"] == 1 and not d["scale_search"]
    # an explicit option wins over the cap
    m2 = get_matcher(RegisterConfig(matcher="universal", tile_size=tile, halo=halo,
                                    matcher_options=(("max_side", 1152),)))
    assert m2.describe()["max_side"] == 1152


def test_low_inlier_share_is_a_report_warning() -> None:
    from xgeo.pipeline import LOW_INLIER_RATIO, inlier_warning

    assert inlier_warning(3770, 401) is not None  # the demo case that fit a spline 18.9 px off
    assert "11 %" in inlier_warning(3770, 401)
    assert inlier_warning(6090, 1230) is None  # 20 %: 1.36 px
    assert inlier_warning(0, 0) is None
    assert inlier_warning(100, int(100 * LOW_INLIER_RATIO)) is None


def test_a_fit_that_predicts_held_out_points_badly_is_a_report_warning() -> None:
    from xgeo.pipeline import heldout_warning

    # classical tiles on OLI/TIRS with 4 deg of error: fit 1.64 px, held-out 4.41, 17.7 px off
    w = heldout_warning(1.64, 4.41)
    assert w is not None and "2.7x" in w
    assert heldout_warning(0.60, 0.77) is None  # the demo's spline, 0.32 px right
    assert heldout_warning(1.13, 1.41) is None  # CFOG optical-SAR, cascade, 0.21 px
    assert heldout_warning(0.30, 0.95) is None  # sub-pixel either way
    assert heldout_warning(None, 2.0) is None and heldout_warning(1.0, None) is None
