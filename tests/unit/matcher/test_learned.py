"""Unit tests of the learned universal matcher (stages, weights, inference wrapper)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xgeo.errors import ConfigError, WeightsError
from xgeo.matcher.backbone import RepVGGBackbone
from xgeo.matcher.coarse import coarse_matches, dual_softmax
from xgeo.matcher.config import MatcherConfig, get_config
from xgeo.matcher.fine import cell_centers, refine
from xgeo.matcher.inference import UniversalMatcher, rot90_points_back
from xgeo.matcher.model import UniversalMatcherNet
from xgeo.matcher.transformer import rope_2d
from xgeo.matcher.weights import build_model, load_state, save_weights


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    net = UniversalMatcherNet(get_config("tiny"))
    p = tmp_path_factory.mktemp("w") / "rand.safetensors"
    save_weights(net, p, {"steps": 0})
    return str(p)


def test_config_roundtrip_and_unknown_keys() -> None:
    cfg = get_config("tiny")
    assert MatcherConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.sha256() == MatcherConfig.from_dict(cfg.to_dict()).sha256()
    with pytest.raises(ConfigError):
        get_config("huge")
    with pytest.raises(ConfigError):
        get_config("tiny", d_modell=3)
    with pytest.raises(ConfigError):
        MatcherConfig(d_model=96, backbone_dims=(32, 64, 128))


def test_repvgg_fuse_is_exact() -> None:
    torch.manual_seed(0)
    bb = RepVGGBackbone((8, 16, 32), (1, 2, 2))
    bb.train()
    for _ in range(3):  # non-trivial BN statistics
        bb(torch.randn(2, 1, 64, 64))
    bb.eval()
    x = torch.randn(1, 1, 64, 48)
    ref = bb(x)
    bb.fuse()
    out = bb(x)
    for r, o, c in zip(ref, out, (8, 16, 32), strict=True):
        assert o.shape == (1, c, r.shape[2], r.shape[3])
        torch.testing.assert_close(o, r, atol=1e-4, rtol=1e-4)
    assert out[2].shape[2:] == (8, 6)


def test_rope_is_relative() -> None:
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, 16).expand(1, 1, 12, 16).contiguous()
    k = torch.randn(1, 1, 1, 16).expand(1, 1, 12, 16).contiguous()
    rq, rk = rope_2d(q, 3, 4, 10.0), rope_2d(k, 3, 4, 10.0)
    s = rq[0, 0] @ rk[0, 0].T  # (12, 12): depends only on the offset between tokens
    assert torch.allclose(s[0, 1], s[4, 5], atol=1e-5)  # same (dx, dy) = (1, 0)
    assert torch.allclose(s[1, 6], s[5, 10], atol=1e-5)  # same (1, 1)
    assert not torch.allclose(s[0, 1], s[0, 2], atol=1e-3)


def test_chunked_coarse_matches_equal_dense() -> None:
    torch.manual_seed(0)
    f0, f1 = torch.randn(2, 50, 16), torch.randn(2, 37, 16)
    f1[:, :20] = f0[:, 5:25] + 0.05 * torch.randn(2, 20, 16)  # some true matches
    mask1 = torch.ones(2, 37, dtype=torch.bool)
    mask1[1, 30:] = False
    for m1 in (mask1, None):  # masked and unmasked (the dense path skips the fill then)
        conf = dual_softmax(f0, f1, 0.1, None, m1)
        mnn = (conf == conf.max(2, keepdim=True).values) & (conf == conf.max(1, keepdim=True).values)
        mnn &= conf > 0.2
        want = set(map(tuple, mnn.nonzero().tolist()))
        for dense_max in (0, 10**9):  # chunked and dense paths
            b, i, j, c = coarse_matches(f0, f1, 0.1, 0.2, None, m1, chunk=7, dense_max=dense_max)
            got = set(zip(b.tolist(), i.tolist(), j.tolist(), strict=True))
            assert got == want and len(got) >= 30
            torch.testing.assert_close(c, conf[b, i, j], atol=1e-5, rtol=1e-4)


def test_refine_finds_planted_feature() -> None:
    # fine1 has one distinctive feature at a known fine pixel; refinement must land on it
    cf, hf, wf = 8, 16, 16  # image 32x32 -> coarse 4x4, fine 16x16
    fine0 = torch.zeros(1, cf, hf, wf)
    fine1 = torch.zeros(1, cf, hf, wf)
    v = torch.randn(cf)
    i_id = 5  # coarse (1, 1): fine centre pixels 5, 6
    fine0[0, :, 5:7, 5:7] = v[:, None, None]
    fine1[0, :, 9, 11] = v  # fine (x=11, y=9) -> full res (22.5, 18.5)
    j_id = 2 * 4 + 2  # coarse (2, 2): window fine 6..13
    p0, p1, prob = refine(fine0, fine1, torch.tensor([0]), torch.tensor([i_id]), torch.tensor([j_id]),
                          4, 4, 8, torch.tensor(200.0))
    torch.testing.assert_close(p0, torch.tensor([[11.5, 11.5]]))
    torch.testing.assert_close(p1, torch.tensor([[22.5, 18.5]]), atol=1e-3, rtol=0)
    assert prob.shape == (1, 64)
    torch.testing.assert_close(cell_centers(torch.tensor([0, 5]), 4), torch.tensor([[3.5, 3.5], [11.5, 11.5]]))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rot90_points_back(k: int) -> None:
    rng = np.random.default_rng(k)
    img = rng.random((7, 11))
    rot = np.rot90(img, k)
    ys, xs = np.mgrid[0 : rot.shape[0], 0 : rot.shape[1]]
    pts = np.stack([xs.ravel(), ys.ravel()], -1).astype(float)
    back = rot90_points_back(pts, k, img.shape).astype(int)
    np.testing.assert_array_equal(rot[ys.ravel(), xs.ravel()], img[back[:, 1], back[:, 0]])


def test_weights_roundtrip_and_refusals(tmp_path, random_weights: str) -> None:
    state, cfg = load_state(random_weights)
    assert cfg == get_config("tiny")
    net = build_model(random_weights)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, state[k])
    pt = tmp_path / "w.pt"
    torch.save(state, pt)
    with pytest.raises(WeightsError, match="safetensors"):
        build_model(pt)
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x80\x04pickle-not-safetensors")
    with pytest.raises(WeightsError):
        build_model(fake)
    with pytest.raises(WeightsError, match="not found"):
        build_model(tmp_path / "missing.safetensors")


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path, random_weights: str) -> None:
    import json

    from xgeo.matcher.weights import save_weights

    net = build_model(random_weights)
    full = save_weights(net, tmp_path / "full.safetensors", {})
    half = save_weights(net, tmp_path / "half.safetensors", {}, dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    assert json.loads(half.with_suffix(".json").read_text())["storage_dtype"] == "float16"
    back = build_model(half)
    for k, v in back.state_dict().items():
        ref = net.state_dict()[k]
        assert v.dtype == ref.dtype, k
        if v.is_floating_point():
            torch.testing.assert_close(v, ref, atol=2e-3, rtol=1e-3)


def test_unknown_option_raises(random_weights: str) -> None:
    with pytest.raises(ConfigError, match="Unknown option"):
        UniversalMatcher(weights=random_weights, colour=True)
    with pytest.raises(ConfigError):
        UniversalMatcher(weights=random_weights, max_side=10)
    with pytest.raises(ConfigError, match="search_side"):
        UniversalMatcher(weights=random_weights, search_side=32)
    with pytest.raises(ConfigError, match="rematches"):
        UniversalMatcher(weights=random_weights, rematches=0)
    for bad in (0, 25):
        with pytest.raises(ConfigError, match="verify"):
            UniversalMatcher(weights=random_weights, verify=bad)
    with pytest.raises(ConfigError, match="equalize"):
        UniversalMatcher(weights=random_weights, equalize="gamma")
    for ok in ("none", "hist", "clahe", "auto"):
        assert UniversalMatcher(weights=random_weights, equalize=ok).describe()["equalize"] == ok


def test_equalized_inputs_lift_a_compressed_region_and_keep_nan() -> None:
    """A scene whose histogram is dominated by one part (clouds) squeezes the rest (warm ground)
    into a few grey levels; CLAHE gives that part its contrast back, per 8 x 8 tile."""
    from xgeo.matcher.inference import _equalized, _Prepared

    rng = np.random.default_rng(3)
    img = rng.random((256, 256)).astype(np.float32)  # "clouds": full range
    ground = 0.97 + 0.02 * rng.random((96, 96)).astype(np.float32)  # squeezed near white
    img[160:, 160:] = ground
    img[:20, :20] = np.nan
    valid = np.isfinite(img)
    for how in ("clahe", "hist"):
        eq = _equalized(img, valid, how)
        assert np.isnan(eq[:20, :20]).all() and np.isfinite(eq[valid]).all()
        assert eq[valid].min() >= 0.0 and eq[valid].max() <= 1.0
        # the ground's own detail survives in rank order and gains spread
        assert np.corrcoef(eq[176:240, 176:240].ravel(), img[176:240, 176:240].ravel())[0, 1] > 0.9
    local = _equalized(img, valid, "clahe")[176:240, 176:240].std()
    assert local > 5 * img[176:240, 176:240].std(), local
    # the option reaches the network input; "none" leaves it as it was
    plain, eq = _Prepared(img, 256), _Prepared(img, 256, "clahe")
    assert eq.net_img[176:240, 176:240].std() > 5 * plain.net_img[176:240, 176:240].std()
    assert (plain.cell_valid == eq.cell_valid).all()


def test_match_contract_with_nan_and_odd_sizes(random_weights: str) -> None:
    m = UniversalMatcher(weights=random_weights, threshold=0.0, orientation_search=True, max_side=96)
    rng = np.random.default_rng(0)
    a = rng.random((130, 101)).astype(np.float32)
    b = (rng.random((77, 150, 3)) * 255).astype(np.uint8)
    a[:40, :40] = np.nan
    r = m.match(a, b)
    assert r.points0.dtype == np.float32 and r.points0.shape == r.points1.shape
    assert r.info["rotation_deg"] in range(0, 360, 45)
    # random weights give no clear winner, so the scale search adds two scales of 8 orientations
    assert len(r.info["orientation_scores"]) == 24
    assert r.info["scale_view"] in (1.0, 2**-0.5, 2**0.5)
    r8 = UniversalMatcher(weights=random_weights, threshold=0.0, max_side=96, scale_search=False).match(a, b)
    assert len(r8.info["orientation_scores"]) == 8  # quarter turns and the 45-degree ones
    with pytest.raises(ConfigError, match="orientations"):
        UniversalMatcher(weights=random_weights, orientations=6)
    if len(r):
        assert (r.points0[:, 0] >= -0.5).all() and (r.points0[:, 0] <= 100.5).all()
        assert (r.points0[:, 1] <= 129.5).all() and (r.points1[:, 0] <= 149.5).all()
        assert (r.points1[:, 1] <= 76.5).all()
        xi, yi = np.round(r.points0[:, 0]).astype(int), np.round(r.points0[:, 1]).astype(int)
        assert np.isfinite(a[yi, xi]).all()  # never on invalid pixels


def test_search_shrinks_both_images_alike_but_keeps_short_sides(random_weights: str) -> None:
    rng = np.random.default_rng(2)
    a = rng.random((300, 200)).astype(np.float32)
    b = rng.random((240, 300)).astype(np.float32)
    m = UniversalMatcher(weights=random_weights, threshold=0.0, search_side=150)
    assert m.describe()["search_side"] == 150
    assert m.match(a, b).info["search_factor"] == pytest.approx(0.5)  # 300 px -> 150 px, both
    thin = rng.random((1500, 90)).astype(np.float32)  # a 64 px short side is kept
    assert m.match(thin, thin).info["search_factor"] == pytest.approx(64 / 90)
    one = UniversalMatcher(weights=random_weights, threshold=0.0, search_side=150, two_pass=False)
    assert one.match(a, b).info["search_factor"] == 1.0


def test_match_batch_equals_match(random_weights: str) -> None:
    m = UniversalMatcher(weights=random_weights, threshold=0.0, orientation_search=False)
    rng = np.random.default_rng(1)
    pairs = [(rng.random((64, 64)).astype(np.float32), rng.random((64, 64)).astype(np.float32))
             for _ in range(3)] + [(rng.random((48, 80)), rng.random((64, 64)))]
    batch = m.match_batch(pairs)
    for (a, b), rb in zip(pairs, batch, strict=True):
        r = m.match(a, b)
        np.testing.assert_allclose(rb.points1, r.points1, atol=1e-3)
        np.testing.assert_allclose(rb.confidence, r.confidence, atol=1e-4)
    assert m.describe()["name"] == "universal"


def test_match_batch_host_threads_change_nothing_but_speed(random_weights: str) -> None:
    rng = np.random.default_rng(2)
    pairs = [(rng.random((64, 64)).astype(np.float32), rng.random((64, 64)).astype(np.float32))
             for _ in range(5)]
    one = UniversalMatcher(weights=random_weights, threshold=0.0, orientation_search=False,
                           host_threads=1, batch_size=2)
    four = UniversalMatcher(weights=random_weights, threshold=0.0, orientation_search=False,
                            host_threads=4, batch_size=2)
    assert one._host_threads == 1 and four._host_threads == 4
    assert UniversalMatcher(weights=random_weights, device="cpu")._host_threads == 1  # CPU default
    for r, q in zip(one.match_batch(pairs), four.match_batch(pairs), strict=True):
        np.testing.assert_array_equal(r.points0, q.points0)
        np.testing.assert_array_equal(r.points1, q.points1)
    for bad in (0, 65):
        with pytest.raises(ConfigError, match="host_threads"):
            UniversalMatcher(weights=random_weights, host_threads=bad)


def test_orientation_score_prefers_geometric_consistency() -> None:
    from xgeo.matcher.inference import _orientation_score

    rng = np.random.default_rng(3)
    p0 = rng.random((60, 2)).astype(np.float32) * 200
    c, s = np.cos(0.3), np.sin(0.3)
    consistent = p0 @ np.array([[c, s], [-s, c]], np.float32) + 5.0
    consistent[:20] = rng.random((20, 2)) * 200  # a third outliers
    scattered = rng.random((60, 2)).astype(np.float32) * 200
    low, high = np.full(60, 0.3, np.float32), np.full(60, 0.9, np.float32)
    # More confident but scattered matches must lose against consistent ones.
    assert _orientation_score(p0, consistent, low) > 2 * _orientation_score(p0, scattered, high)
    assert _orientation_score(p0[:2], consistent[:2], low[:2]) < 1.0


def test_fine_local_expectation_follows_the_peak() -> None:
    # one-hot-ish window probability at an off-centre fine pixel: the whole-window expectation is
    # pulled towards the centre by the flat remainder, the local one is not
    cf, hf, wf = 8, 16, 16
    fine0 = torch.zeros(1, cf, hf, wf)
    fine1 = torch.zeros(1, cf, hf, wf)
    v = torch.randn(cf)
    fine0[0, :, 5:7, 5:7] = v[:, None, None]
    fine1[0, :, 9, 11] = v
    args = (fine0, fine1, torch.tensor([0]), torch.tensor([5]), torch.tensor([10]), 4, 4, 8,
            torch.tensor(3.0))
    _, p_all, _ = refine(*args)
    _, p_loc, _ = refine(*args, local_radius=2)
    want = torch.tensor([22.5, 18.5])
    assert (p_loc[0] - want).norm() < 0.5 * (p_all[0] - want).norm()


def test_coarse_matches_large_logits_take_the_log_domain_path() -> None:
    # logits spread far beyond float32's exponent range: the one-exponential form declines and
    # the exact log-domain path must give the same matches as the full dual-softmax
    from xgeo.matcher import coarse

    torch.manual_seed(1)
    f0, f1 = torch.randn(2, 40, 16) * 6.0, torch.randn(2, 33, 16) * 6.0
    f1[:, :15] = f0[:, 10:25]
    m = torch.ones(40, dtype=torch.bool)
    assert coarse._pair_matches(f0[0], f1[0], 0.1, m, m[:33], 40) is None  # declined
    conf = dual_softmax(f0.double(), f1.double(), 0.1).float()
    mnn = (conf == conf.max(2, keepdim=True).values) & (conf == conf.max(1, keepdim=True).values)
    mnn &= conf > 0.2
    want = set(map(tuple, mnn.nonzero().tolist()))
    for dense_max in (0, 10**9):
        b, i, j, _ = coarse_matches(f0, f1, 0.1, 0.2, chunk=9, dense_max=dense_max)
        assert set(zip(b.tolist(), i.tolist(), j.tolist(), strict=True)) == want and len(want) >= 20


def test_coarse_matches_ignore_autocast_and_fully_masked_rows() -> None:
    torch.manual_seed(2)
    f0, f1 = torch.randn(1, 30, 16), torch.randn(1, 30, 16)
    f1[:, :20] = f0[:, :20] + 0.05 * torch.randn(1, 20, 16)
    m0 = torch.ones(1, 30, dtype=torch.bool)
    m0[0, :5] = False  # masked rows never match, the rest as without autocast
    ref = coarse_matches(f0, f1, 0.1, 0.2, m0, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = coarse_matches(f0, f1, 0.1, 0.2, m0, None)
    assert all(torch.equal(x, y) for x, y in zip(ref, got, strict=True))
    assert not (ref[1] < 5).any() and len(ref[1]) >= 12


@pytest.mark.parametrize("verify_scales", [True, False])
def test_unclear_scale_search_verifies_the_best_of_every_scale(
        random_weights: str, monkeypatch: pytest.MonkeyPatch, verify_scales: bool) -> None:
    # search support does not compare across scales: with verify_scales the best hypothesis of
    # each scale tried joins the `verify` best-supported ones (each then gets a full-size rematch)
    from xgeo.matcher import Matches

    m = UniversalMatcher(weights=random_weights, verify=3, verify_scales=verify_scales)
    assert m.describe()["verify_scales"] is verify_scales
    scores = {1.0: [40, 38, 37, 30, 20, 10, 5, 4], 2**-0.5: [25, 9, 8, 7, 6, 5, 4, 3],
              2**0.5: [39, 36, 35, 34, 33, 32, 31, 30]}  # no clear winner anywhere

    def fake_hyps(self, a, views, scale):
        return [{"deg": 45 * i, "scale": scale, "score": float(sc)}
                for i, sc in enumerate(scores[scale])]

    monkeypatch.setattr(UniversalMatcher, "_views", lambda self, img1, scale, *a, **k: [])
    monkeypatch.setattr(UniversalMatcher, "_hypotheses", fake_hyps)
    monkeypatch.setattr(UniversalMatcher, "_hypothesis_matches", lambda self, a, b, h, info: Matches(
        np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.float32),
        {**info, "rotation_deg": h["deg"], "scale_view": h["scale"], "score": h["score"]}))
    img = np.random.default_rng(0).random((96, 96)).astype(np.float32)
    prep = m._prep(img, 832)
    out = m._match_prepared(prep, img, img, prep)
    got = [(c.info["scale_view"], c.info["score"]) for c in out]
    top3 = [(1.0, 40.0), (2**0.5, 39.0), (1.0, 38.0)]
    assert got == (top3 + [(2**-0.5, 25.0)] if verify_scales else top3)
