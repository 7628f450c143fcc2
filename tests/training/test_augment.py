"""Appearance augmentation of training pairs (training/augment.py)."""

from __future__ import annotations

import numpy as np
import pytest

from training.augment import AugmentConfig, augment_pair, fill_invalid
from training.train import SyntheticPairs
from xgeo.errors import ConfigError

ALL = AugmentConfig(fill="mean", resample=1.0, photometric=1.0, translate=1.0, holes=1.0)


def _pair(h: int = 64, shift: float = 5.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    img0 = rng.random((h, h), dtype=np.float32)
    img1 = rng.random((h, h), dtype=np.float32)
    img1[:, :8] = np.nan  # outside image 1's content
    yy, xx = np.mgrid[0:h, 0:h].astype(np.float32)
    flow = np.stack([xx + shift, yy], -1)
    return img0, img1, flow, np.ones((h, h), bool)


def test_config_rejects_unknown_and_out_of_range() -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        AugmentConfig.from_dict({"holez": 0.2})
    with pytest.raises(ConfigError, match="probability"):
        AugmentConfig.from_dict({"holes": 1.5})
    with pytest.raises(ConfigError, match="fill"):
        AugmentConfig.from_dict({"fill": "nan"})
    with pytest.raises(ConfigError, match="resample_factor"):
        AugmentConfig.from_dict({"resample_factor": [0.5, 2.0]})
    assert AugmentConfig.from_dict(None) == AugmentConfig()
    assert AugmentConfig.from_dict({"hole_share": [0.2, 0.3]}).hole_share == (0.2, 0.3)


def test_fill_invalid_mean_and_zero() -> None:
    a = np.array([[0.2, np.nan], [0.4, np.nan]], np.float32)
    v = np.isfinite(a)
    assert np.allclose(fill_invalid(a, v, "mean")[~v], 0.3)
    assert np.all(fill_invalid(a, v, "zero")[~v] == 0.0)


def test_augment_pair_outputs_finite_images_and_drops_only_hole_pixels() -> None:
    img0, img1, flow, valid0 = _pair()
    for seed in range(12):
        a0, a1, v0 = augment_pair(img0, img1, flow, valid0, np.random.default_rng(seed), ALL)
        assert a0.shape == img0.shape and a1.shape == img1.shape
        assert np.isfinite(a0).all() and np.isfinite(a1).all()
        assert a0.min() >= 0.0 and a1.max() <= 1.0
        assert not (v0 & ~valid0).any()  # supervision only ever shrinks
        # holes remove between 10 and 50 % of one side (+ partners), never everything
        assert 0.3 < v0.mean() < 0.95


def test_fill_outside_uses_image1_content_mask() -> None:
    img0, img1, flow, valid0 = _pair()
    img1 = np.nan_to_num(img1, nan=0.0)  # the engine leaves image 1's outside at 0
    content = np.ones(img1.shape, bool)
    content[:, :8] = False
    cfg = AugmentConfig(fill="mean", fill_outside=True)
    _, a1, _ = augment_pair(img0, img1, flow, valid0, np.random.default_rng(0), cfg, content)
    assert np.allclose(a1[:, :8], img1[:, 8:].mean(), atol=1e-6)
    _, a1, _ = augment_pair(img0, img1, flow, valid0, np.random.default_rng(0),
                            AugmentConfig(fill="mean"), content)
    assert (a1[:, :8] == 0).all()  # without fill_outside the engine's 0 stays


def test_holes_in_image1_remove_their_partners_in_image0() -> None:
    img0, img1, flow, valid0 = _pair(shift=0.0)
    img1 = np.nan_to_num(img1, nan=0.5)
    cfg = AugmentConfig(holes=1.0, hole_share=(0.3, 0.3))
    for seed in range(8):
        a0, a1, v0 = augment_pair(img0, img1, flow, valid0, np.random.default_rng(seed), cfg)
        lost = ~v0
        # with the identity flow, lost image-0 pixels are the hole: constant fill on that side
        side = a1 if np.ptp(a1[lost]) == 0 else a0
        assert np.ptp(side[lost]) == 0.0
        assert abs(lost.mean() - 0.3) < 0.05


def test_synthetic_pairs_with_augment_are_deterministic_and_nan_free() -> None:
    data = {"size": 64, "modalities": ["optical", "sar"], "local_distortion": False,
            "augment": {"fill": "mean", "resample": 0.5, "photometric": 0.5, "holes": 0.5}}
    ds = SyntheticPairs(data, seed=3, batch_size=2)
    a, b = ds[5], ds[5]
    for k in ("img0", "img1", "valid0"):
        assert (a[k] == b[k]).all()
    assert np.isfinite(a["img0"].numpy()).all() and np.isfinite(a["img1"].numpy()).all()
    assert SyntheticPairs({"size": 64}, 0, 1).augment is None  # earlier stages unchanged


def test_native_noise_comes_out_as_blobs() -> None:
    flat = np.full((96, 96), 0.5, np.float32)
    flow = np.zeros((96, 96, 2), np.float32)
    cfg = AugmentConfig(resample=1.0, resample_factor=(3.0, 3.0), native_noise=0.2)
    for seed in range(20):  # find a draw with clear noise
        a0, _, _ = augment_pair(flat, flat, flow, np.ones((96, 96), bool),
                                np.random.default_rng(seed), cfg)
        if a0.std() > 0.05:
            break
    assert a0.std() > 0.05
    # correlated over about the resampling factor: neighbours agree far more than white noise
    d = a0 - a0.mean()
    corr = float((d[:, 1:] * d[:, :-1]).mean() / (d * d).mean())
    assert corr > 0.6
    with pytest.raises(ConfigError, match="native_noise"):
        AugmentConfig.from_dict({"native_noise": 2.0})
