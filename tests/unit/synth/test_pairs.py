from __future__ import annotations

import numpy as np
import pytest

from xgeo.errors import ConfigError
from xgeo.synth import PAIR_MODALITIES, make_pair, warp_image

FIELDS = ("img0", "img1", "flow_0to1", "valid0", "valid1", "H_0to1")


def test_api_shapes_dtypes_ranges() -> None:
    p = make_pair(3, size=96)
    assert p.img0.shape == p.img1.shape == (96, 96)
    assert p.img0.dtype == p.img1.dtype == np.float32
    assert p.flow_0to1.shape == (96, 96, 2) and p.flow_0to1.dtype == np.float32
    assert p.valid0.dtype == bool and p.valid0.shape == (96, 96)
    assert p.H_0to1.shape == (3, 3) and p.H_0to1.dtype == np.float64
    assert p.mod0 in PAIR_MODALITIES and p.mod1 in PAIR_MODALITIES
    for a in (p.img0, p.img1):
        assert 0.0 <= a.min() and a.max() <= 1.0


def test_same_seed_byte_identical_different_seeds_differ() -> None:
    a, b, c = make_pair(21, size=64), make_pair(21, size=64), make_pair(22, size=64)
    for f in FIELDS:
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f
    assert (a.mod0, a.mod1) == (b.mod0, b.mod1)
    assert not np.array_equal(a.img0, c.img0) or not np.array_equal(a.flow_0to1, c.flow_0to1)


def test_every_modality_on_both_sides() -> None:
    for i, m in enumerate(PAIR_MODALITIES):
        p = make_pair(100 + i, size=64, mod0=m, mod1=PAIR_MODALITIES[-1 - i])
        assert (p.mod0, p.mod1) == (m, PAIR_MODALITIES[-1 - i])
        assert p.img0.std() > 0.01, m


def test_valid0_means_landing_inside_img1() -> None:
    p = make_pair(7, size=128, max_rotation_deg=180)
    f = p.flow_0to1
    inside = (f[..., 0] >= 0) & (f[..., 0] <= 127) & (f[..., 1] >= 0) & (f[..., 1] <= 127)
    assert not (p.valid0 & ~inside).any()
    assert p.valid0.mean() > 0.1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_modality_pair_reproduces_geometry(seed: int) -> None:
    """DEM on both sides, same display: warping img1 back by the GT flow gives img0."""
    st = {"display": "raw"}
    p = make_pair(seed, size=128, mod0="dem", mod1="dem", style0=st, style1=st,
                  scale_range=(0.8, 1.25))
    back = warp_image(p.img1, p.flow_0to1, precise=True)
    m = p.valid0 & p.valid1[np.clip(np.round(p.flow_0to1[..., 1]).astype(int), 0, 127),
                            np.clip(np.round(p.flow_0to1[..., 0]).astype(int), 0, 127)]
    assert m.mean() > 0.2
    err = np.abs(back - p.img0)[m]
    assert np.median(err) < 0.01 and err.mean() < 0.02


def test_bad_modality_raises() -> None:
    with pytest.raises(ConfigError):
        make_pair(0, size=64, mod0="lidar")
    with pytest.raises(ConfigError):
        make_pair(0, size=8)


def test_dem_noise_share() -> None:
    """0 (default) draws nothing extra, so pairs stay engine 1.1's; 1 makes every DEM grainy."""
    a = make_pair(11, size=96, mod0="dem", mod1="optical", style0={"display": "raw"})
    b = make_pair(11, size=96, mod0="dem", mod1="optical", style0={"display": "raw"},
                  dem_noise_share=0.0)
    np.testing.assert_array_equal(a.img0, b.img0)
    np.testing.assert_array_equal(a.img1, b.img1)
    rough = [np.abs(np.diff(make_pair(s, size=96, mod0="dem", mod1="dem",
                                      dem_noise_share=share).img0, axis=1)).mean()
             for share in (0.0, 1.0) for s in range(8, 12)]
    assert np.mean(rough[4:]) > 1.5 * np.mean(rough[:4])
