"""The shipped universal-matcher weights: they load offline and match a known synthetic pair."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import xgeo
from xgeo.errors import WeightsError
from xgeo.matcher.weights import shipped_weights_path

SHIPPED = shipped_weights_path("tiny")
needs_weights = pytest.mark.skipif(not SHIPPED.is_file(), reason=f"{SHIPPED} not trained/exported yet")


def _corner_error(h_est: np.ndarray, h_true: np.ndarray, shape: tuple[int, int]) -> float:
    hh, ww = shape
    c = np.array([[0, 0, 1], [ww - 1, 0, 1], [ww - 1, hh - 1, 1], [0, hh - 1, 1]], float)
    a, b = c @ h_est.T, c @ h_true.T
    return float(np.linalg.norm(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:], axis=1).mean())


def test_missing_weights_raise_with_hint(tmp_path) -> None:
    with pytest.raises(WeightsError, match="training.train"):
        xgeo.load_matcher(str(tmp_path / "nothing.safetensors"))


@needs_weights
def test_shipped_card_is_complete() -> None:
    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    for key in ("preset", "n_parameters", "data_engine_version", "train_config_sha256", "steps",
                "hardware", "metrics", "config"):
        assert key in card, key
    assert card["preset"] == "tiny" and card["steps"] > 0


def _known_pair_error(**opts: object) -> float:
    from xgeo.synth import make_pair

    m = xgeo.load_matcher(orientation_search=False, device="cpu", **opts)
    assert m.describe()["name"] == "universal"
    p = make_pair(31337, size=320, mod0="optical", mod1="optical", max_rotation_deg=15.0,
                  scale_range=(0.9, 1.1), local_distortion=False)
    r = m.match(p.img0, p.img1)
    assert len(r) >= 30, len(r)
    h, _ = cv2.findHomography(r.points0.astype(np.float64), r.points1.astype(np.float64), cv2.RANSAC, 3.0,
                              maxIters=5000, confidence=0.9999)
    assert h is not None
    return _corner_error(h, np.asarray(p.H_0to1, float), p.img0.shape)


@needs_weights
def test_shipped_weights_match_known_transform__synthetic() -> None:
    # issue 4 acceptance: within 1 px (the shipped tiny weights measured 0.77 px at export)
    err = _known_pair_error()
    assert err < 1.0, err


@needs_weights
def test_float32_matches_as_well_as_the_default_precision() -> None:
    # the default runs the encoder in bf16 where the CPU has native bf16 (AMX / AVX512-BF16);
    # float32 (autocast=False) must meet the same bar, and name its precision
    import torch

    err = _known_pair_error(autocast=False)
    assert err < 1.0, err
    m = xgeo.load_matcher(orientation_search=False, device="cpu", autocast=False)
    assert m.describe()["precision"] == "float32"
    native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    auto = xgeo.load_matcher(orientation_search=False, device="cpu").describe()["precision"]
    assert auto == ("bfloat16" if native else "float32")


@needs_weights
def test_refined_matcher_on_the_known_pair_is_subpixel() -> None:
    from xgeo.synth import make_pair

    m = xgeo.load_matcher("universal+structural", orientation_search=False, device="cpu")
    p = make_pair(31337, size=320, mod0="optical", mod1="optical", max_rotation_deg=15.0,
                  scale_range=(0.9, 1.1), local_distortion=False)
    r = m.match(p.img0, p.img1)
    assert r.info["refined"] and len(r) >= 12
    h, _ = cv2.findHomography(r.points0.astype(np.float64), r.points1.astype(np.float64),
                              cv2.RANSAC, 3.0, maxIters=5000, confidence=0.9999)
    assert _corner_error(h, np.asarray(p.H_0to1, float), p.img0.shape) < 0.5  # measured 0.12


@needs_weights
def test_eight_orientations_recover_a_rotation_between_quarter_turns() -> None:
    # a rotation of ~40 deg is left over by every quarter turn; the 45-degree hypotheses take
    # it to ~5 deg, where the network is at home
    from xgeo.matcher.inference import _rotate45
    from xgeo.synth import make_pair

    p = make_pair(31337, size=320, mod0="optical", mod1="sar", max_rotation_deg=5.0,
                  scale_range=(0.95, 1.05), local_distortion=False)
    img1 = np.asarray(p.img1, np.float32)
    rot, back = _rotate45(img1)
    # ``rot`` is img1 turned by 45 deg; rotating it back by 5 deg leaves 40 deg to find
    h, w = img1.shape
    fwd5 = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -5.0, 1.0)
    img = cv2.warpAffine(rot, fwd5, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    h_rot = np.eye(3)
    h_rot[:2] = cv2.invertAffineTransform(back)  # img1 -> rot
    h5 = np.eye(3)
    h5[:2] = fwd5
    truth = h5 @ h_rot @ np.asarray(p.H_0to1, float)
    for early_exit in (False, True):  # no quarter turn stands out: the 45-degree views run
        m = xgeo.load_matcher(device="cpu", early_exit=early_exit)
        assert m.describe()["orientations"] == 8
        r = m.match(p.img0, img)
        assert r.info["rotation_deg"] % 90 == 45, r.info["orientation_scores"]
        hh, _ = cv2.findHomography(r.points0.astype(np.float64), r.points1.astype(np.float64),
                                   cv2.RANSAC, 3.0, maxIters=5000, confidence=0.9999)
        assert _corner_error(hh, truth, p.img0.shape) < 3.0


@needs_weights
def test_early_exit_skips_the_45_degree_views_when_a_quarter_turn_stands_out() -> None:
    from xgeo.synth import make_pair

    p = make_pair(31337, size=320, mod0="optical", mod1="optical", max_rotation_deg=15.0,
                  scale_range=(0.9, 1.1), local_distortion=False)
    full = xgeo.load_matcher(device="cpu", two_pass=False).match(p.img0, p.img1)
    fast = xgeo.load_matcher(device="cpu", two_pass=False, early_exit=True).match(p.img0, p.img1)
    assert len(full.info["orientation_scores"]) == 8
    assert sorted(fast.info["orientation_scores"]) == [0, 90, 180, 270]
    assert fast.info["rotation_deg"] == full.info["rotation_deg"] == 0
    assert abs(len(fast) - len(full)) <= 0.1 * len(full)  # same hypothesis won (batching aside)


@needs_weights
def test_scale_search_recovers_a_scale_outside_the_trained_range() -> None:
    # scale 1.85 is outside the 0.7-1.4 the network trained on; without a clear first-pass
    # winner, image 1 shrunk by sqrt(2) brings it back to ~1.3
    from xgeo.synth import make_pair

    p = make_pair(11, size=320, mod0="optical", mod1="sar", max_rotation_deg=180.0,
                  scale_range=(1.8, 1.9), local_distortion=False, perspective=0.0)
    # searched at full size (320 px) and at the default search size (224 px, the training crop):
    # the same view wins; after the reduced search this pair ends a little less precise (5.9 px
    # with the default two rematches, 6.9 with one, 3.8 from the full-size search), still a
    # success at the protocol's 10 px
    for search_side, bound in ((832, 5.0), (None, 10.0)):
        # the view that shrinks image 1 (finer_frame off; the default's enlarged image 0 is
        # tested below)
        m = xgeo.load_matcher(device="cpu", search_side=search_side, finer_frame=False)
        assert m.describe()["scale_search"]
        r = m.match(p.img0, p.img1)
        assert r.info["scale_view"] == pytest.approx(2**-0.5)
        aff, _ = cv2.estimateAffine2D(r.points0.astype(np.float64), r.points1.astype(np.float64),
                                      method=cv2.RANSAC, ransacReprojThreshold=3.0, confidence=0.99999)
        err = _corner_error(np.r_[aff, [[0, 0, 1]]], np.asarray(p.H_0to1, float), p.img0.shape)
        assert err < bound, (search_side, err)


@needs_weights
def test_magnified_image1_is_searched_and_rematched_at_its_finer_pixels() -> None:
    # image 1 magnified 1.85x: with finer_frame (default) the search enlarges image 0 instead of
    # shrinking image 1, and the rematches also run in image 1's frame (image 0 resampled into
    # it), where this pair holds together better; points come back in each input's own pixels
    from xgeo.synth import make_pair

    p = make_pair(11, size=320, mod0="optical", mod1="sar", max_rotation_deg=180.0,
                  scale_range=(1.8, 1.9), local_distortion=False, perspective=0.0)
    err, n = {}, {}
    for finer in (True, False):
        m = xgeo.load_matcher(device="cpu", finer_frame=finer)
        assert m.describe()["finer_frame"] is finer
        r = m.match(p.img0, p.img1)
        assert r.info["scale_view"] == pytest.approx(2**-0.5)
        assert r.info["rematch_frame"] == ("image1" if finer else "image0")
        aff, _ = cv2.estimateAffine2D(r.points0.astype(np.float64), r.points1.astype(np.float64),
                                      method=cv2.RANSAC, ransacReprojThreshold=3.0, confidence=0.99999)
        err[finer] = _corner_error(np.r_[aff, [[0, 0, 1]]], np.asarray(p.H_0to1, float), p.img0.shape)
        n[finer] = len(r)
    # both right (the protocol's 10 px): points mapped back to each input's pixels. The corner
    # error of this one pair moves with the CPU's bf16 kernels (with finer_frame 2.2 px on an
    # AMX CPU, 7.9 px bf16 / 3.7 px float32 on an AVX512-BF16 one; without 3.1-7.0 / 4.0 / 3.1),
    # so precision is asserted on the real crops below, over several pairs
    assert err[True] < 10.0 and err[False] < 10.0, err
    assert n[True] > 1.5 * n[False], n  # measured 550-557 / 298-306: the overlap at ~3.4x the pixels


@needs_weights
def test_magnified_real_crops_are_precise_at_image1_pixels(real_data) -> None:
    # the real suite's optical-infrared crops (CFOG) with image 1 magnified 1.6-1.9x: with
    # finer_frame they end within a few px at image 1's pixels (measured 1.1, 1.1, 1.2, 4.5 on
    # an AMX CPU; 2.4, 2.5, 1.7, 3.2 in bf16 and 2.2, 2.1, 1.8, 3.0 in float32 on an AVX512-BF16
    # one); searched on image 1 shrunk and rematched in image 0's frame, one fails (about 690 px)
    # and the rest read 2.7-7.8 px: the median at least halves on every CPU measured
    from training.eval import corner_error, fit_affine, real_suite

    pairs = [p for p in real_suite(real_data, 4, seed=0, scale_range=(1.6, 1.9))
             if "infrared" in p.pair_type]
    err = {}
    for finer in (True, False):
        m = xgeo.load_matcher(device="cpu", finer_frame=finer)
        err[finer] = [corner_error(fit_affine(r.points0.astype(np.float64), r.points1.astype(np.float64)),
                                   p.H_0to1, p.img0.shape)
                      for p in pairs for r in [m.match(p.img0, p.img1)]]
    assert max(err[True]) < 5.0, err
    assert float(np.median(err[True])) < 0.5 * float(np.median(err[False])), err


@needs_weights
def test_search_runs_on_the_token_grid_the_weights_trained_on() -> None:
    from xgeo.synth import make_pair

    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    trained = card["train_config"]["data"]["size"]
    m = xgeo.load_matcher(device="cpu")
    assert m.describe()["search_side"] == trained
    p = make_pair(5, size=320, mod0="optical", mod1="thermal", max_rotation_deg=180.0,
                  scale_range=(0.8, 1.25), local_distortion=False, perspective=0.0)
    r = m.match(p.img0, p.img1)
    assert r.info["search_factor"] == pytest.approx(trained / 320)  # both images shrunk alike
    # ... then rematched at full size twice (points in input px); once when asked
    assert r.info["two_pass"] and r.info["rematches"] == 2
    once = xgeo.load_matcher(device="cpu", rematches=1).match(p.img0, p.img1)
    assert once.info["rematches"] == 1 and once.info["first_pass_matches"] == r.info["first_pass_matches"]
    aff, _ = cv2.estimateAffine2D(r.points0.astype(np.float64), r.points1.astype(np.float64),
                                  method=cv2.RANSAC, ransacReprojThreshold=3.0, confidence=0.99999)
    assert _corner_error(np.r_[aff, [[0, 0, 1]]], np.asarray(p.H_0to1, float), p.img0.shape) < 3.0
    # one pass only: the search's matches are the result, so it runs at full size
    one = xgeo.load_matcher(device="cpu", two_pass=False).match(p.img0, p.img1)
    assert one.info["search_factor"] == 1.0


@needs_weights
def test_second_pass_rematches_on_the_resampled_image() -> None:
    from xgeo.synth import make_pair

    p = make_pair(31337, size=320, mod0="optical", mod1="optical", max_rotation_deg=30.0,
                  scale_range=(0.8, 1.25), local_distortion=False)
    one = xgeo.load_matcher(orientation_search=False, two_pass=False, device="cpu")
    # the search at full size, as the one-pass matcher runs it: the same first pass
    two = xgeo.load_matcher(orientation_search=False, device="cpu", search_side=832)
    assert two.describe()["two_pass"] and not one.describe()["two_pass"]
    r1, r2 = one.match(p.img0, p.img1), two.match(p.img0, p.img1)
    assert "two_pass" not in r1.info
    assert r2.info["two_pass"] and r2.info["first_pass_matches"] == len(r1)
    assert r2.info["rematches"] == 1  # the search ran at full size: one rematch
    assert np.asarray(r2.info["first_pass_affine"]).shape == (2, 3)

    # second-pass points are in image 1's own pixels; near the identity more of them are right
    def good(r: xgeo.Matches) -> int:
        q = np.c_[r.points0, np.ones(len(r))] @ np.asarray(p.H_0to1).T
        return int((np.hypot(*(q[:, :2] / q[:, 2:] - r.points1).T) < 3.0).sum())

    assert good(r2) > good(r1) >= 30, (good(r1), good(r2))
    # the batched path (pipeline tiles) runs both passes the same way
    rb = two.match_batch([(p.img0, p.img1), (p.img0, p.img1)])
    for r in rb:
        np.testing.assert_allclose(r.points1, r2.points1, atol=1e-3)
    blank = np.full((128, 128), 0.4, np.float32)  # featureless: nothing to match, no identity
    assert len(two.match(blank, blank)) == 0
    half = p.img0.copy()
    half[:, :160] = 0.4  # a flat half yields no points of its own
    r = one.match(half, p.img1)
    assert len(r) and (r.points0[:, 0] > 160 - 16).all()


@needs_weights
def test_unclear_search_hypotheses_are_verified_by_their_rematch() -> None:
    """``verify``: each candidate hypothesis gets a full-size rematch; the one whose rematch holds
    together wins even when it is not the first-ranked. Here the first-ranked candidate is a
    wrong geometry (image 1 taken as 90 degrees off), the runner-up the true one."""
    from xgeo.synth import make_pair

    p = make_pair(4242, size=320, mod0="optical", mod1="sar", max_rotation_deg=20.0,
                  scale_range=(0.9, 1.1), local_distortion=False, perspective=0.0)
    m = xgeo.load_matcher(device="cpu", verify=2)
    assert m.describe()["verify"] == 2
    g = np.stack(np.meshgrid(np.arange(24, 300, 16.0), np.arange(24, 300, 16.0)), -1).reshape(-1, 2)
    h = np.asarray(p.H_0to1, float)
    right1 = np.c_[g, np.ones(len(g))] @ h.T
    right1 = right1[:, :2] / right1[:, 2:]
    c, s = (319 / 2.0), np.array([[0.0, -1.0], [1.0, 0.0]])  # a quarter turn about the centre
    wrong1 = (right1 - c) @ s.T + c
    inside = ((right1 >= 0) & (right1 < 320)).all(1) & ((wrong1 >= 0) & (wrong1 < 320)).all(1)
    conf = np.ones(int(inside.sum()), np.float32)

    def cand(p1: np.ndarray, deg: int) -> xgeo.Matches:
        return xgeo.Matches(g[inside].astype(np.float32), p1[inside].astype(np.float32), conf,
                            {"rotation_deg": deg, "scale_view": 1.0, "search_factor": 0.7})

    grays = [(np.asarray(p.img0, np.float32), np.asarray(p.img1, np.float32))]
    out = m._second_passes(grays, [[cand(wrong1, 90), cand(right1, 0)]])[0]
    scores = out.info["verify_scores"]
    assert set(scores) == {"90@1.00", "0@1.00"}
    assert scores["0@1.00"] > 3 * max(scores["90@1.00"], 1.0), scores
    assert out.info["rotation_deg"] == 0 and out.info["rematches"] == 2
    aff, _ = cv2.estimateAffine2D(out.points0.astype(np.float64), out.points1.astype(np.float64),
                                  method=cv2.RANSAC, ransacReprojThreshold=3.0, confidence=0.99999)
    assert _corner_error(np.r_[aff, [[0, 0, 1]]], h, p.img0.shape) < 3.0
    # one candidate (a clear search, or verify=1) is rematched without a verification
    one = xgeo.load_matcher(device="cpu")._second_passes(grays, [[cand(wrong1, 90)]])[0]
    assert "verify_scores" not in one.info


@needs_weights
def test_auto_contrast_reruns_unclear_searches_and_keeps_the_better_holding_result() -> None:
    """``equalize="auto"``: a result whose search was unclear is matched again on CLAHE-equalised
    inputs and replaced only when the rerun's matches hold together better; clear searches and
    the other settings are left alone."""
    from xgeo.synth import make_pair

    p = make_pair(777, size=320, mod0="optical", mod1="thermal", max_rotation_deg=20.0,
                  scale_range=(0.9, 1.1), local_distortion=False, perspective=0.0)
    grays = [(np.asarray(p.img0, np.float32), np.asarray(p.img1, np.float32))]
    h = np.asarray(p.H_0to1, float)
    g = np.stack(np.meshgrid(np.arange(8, 312, 8.0), np.arange(8, 312, 8.0)), -1).reshape(-1, 2)
    right = np.c_[g, np.ones(len(g))] @ h.T
    right = right[:, :2] / right[:, 2:]
    inside = ((right >= 0) & (right < 320)).all(1)
    rng = np.random.default_rng(0)

    def result(p1: np.ndarray, clear: bool) -> xgeo.Matches:
        return xgeo.Matches(g[inside].astype(np.float32), p1[inside].astype(np.float32),
                            np.ones(int(inside.sum()), np.float32),
                            {"search_clear": clear, "seconds": 1.0})

    scattered = rng.uniform(0, 320, right.shape)
    m = xgeo.load_matcher(device="cpu")
    assert m.describe()["equalize"] == "auto"
    # an unclear search whose matches are chance: the CLAHE rerun finds the pair and is kept
    out = m._contrast_variant(grays, [result(scattered, False)])[0]
    assert out.info["equalized"] == "clahe", out.info["equalize_scores"]
    sc = out.info["equalize_scores"]
    assert sc["clahe"] > 3 * max(sc["none"], 1.0) and out.info["seconds"] > 1.0
    aff, _ = cv2.estimateAffine2D(out.points0.astype(np.float64), out.points1.astype(np.float64),
                                  method=cv2.RANSAC, ransacReprojThreshold=3.0, confidence=0.99999)
    assert _corner_error(np.r_[aff, [[0, 0, 1]]], h, p.img0.shape) < 3.0
    # a result that holds together better than any rerun can stays
    exact = m._contrast_variant(grays, [result(right, False)])[0]
    assert exact.info["equalized"] == "none"
    np.testing.assert_array_equal(exact.points1, right[inside].astype(np.float32))
    # clear searches, results without a search and the other settings are not rerun
    for r in (result(scattered, True), xgeo.Matches(g[:3].astype(np.float32),
                                                    g[:3].astype(np.float32), np.ones(3, np.float32), {})):
        assert m._contrast_variant(grays, [r])[0] is r
    plain = xgeo.load_matcher(device="cpu", equalize="none")
    r = result(scattered, False)
    assert plain._contrast_variant(grays, [r])[0] is r
