from __future__ import annotations

import numpy as np
import pytest

from xgeo.errors import ConfigError, ShapeError
from xgeo.synth import random_warp, similarity_warp, warp_image


def _grid(h: int, w: int) -> np.ndarray:
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.stack([gx, gy], -1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_forward_inverse_exact(seed: int) -> None:
    w = random_warp(seed, (200, 240), max_rotation_deg=180, scale_range=(0.5, 2.0))
    p = _grid(200, 240).reshape(-1, 2)
    np.testing.assert_allclose(w.inverse(w.forward(p)), p, atol=1e-8)
    # the dense float32 flow agrees with the float64 point mapping
    np.testing.assert_allclose(w.flow.reshape(-1, 2), w.forward(p), atol=2e-3)
    assert w.H_0to1.shape == (3, 3) and w.flow.shape == (200, 240, 2)


def test_local_distortion_is_smooth_and_bounded() -> None:
    w = random_warp(5, (320, 320), local_distortion=True, local_px=4.0)
    p = _grid(320, 320)
    d = w.local_forward(p) - p
    assert 0.5 < np.abs(d).max() < 12.0
    # smooth: neighbouring displacements differ little
    assert np.abs(np.diff(d, axis=0)).max() < 0.2
    w0 = random_warp(5, (320, 320), local_distortion=False)
    np.testing.assert_array_equal(w0.local_forward(p), p)


def test_rotation_and_scale_ranges() -> None:
    for seed in range(20):
        w = random_warp(seed, (100, 100), max_rotation_deg=30.0, scale_range=(0.8, 1.25),
                        local_distortion=False, perspective=0.0)
        a = w.H_0to1[:2, :2]
        s = np.sqrt(abs(np.linalg.det(a)))
        rot = np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
        assert 0.75 < s < 1.35 and abs(rot) < 33.0
    with pytest.raises(ConfigError):
        random_warp(0, (10, 10), scale_range=(2.0, 1.0))


def test_gt_is_exact_on_a_coordinate_encoding_image() -> None:
    """Pixel values encode their own coordinates: warping image 1 back by the GT flow must
    return, at every pixel of image 0, that pixel's own coordinates."""
    h = w = 160
    warp = random_warp(11, (h, w), max_rotation_deg=180, scale_range=(0.7, 1.4))
    margin = 200
    canvas = np.moveaxis(_grid(h + 2 * margin, w + 2 * margin) - margin, -1, 0)  # (2, H, W)
    img1 = warp.apply(canvas.astype(np.float32), offset=(margin, margin), fill=np.nan)
    back = warp_image(img1, warp.flow, fill=np.nan, precise=True)  # (2, h, w)
    p = np.moveaxis(_grid(h, w), -1, 0)
    f = warp.flow
    inside = (f[..., 0] >= 1) & (f[..., 0] <= w - 2) & (f[..., 1] >= 1) & (f[..., 1] <= h - 2)
    assert inside.mean() > 0.3
    err = np.abs(back - p)[:, inside]
    assert np.nanmax(err) < 0.05  # OpenCV remap positions are quantised to 1/32 px
    assert np.nanmean(err) < 0.01


def test_similarity_warp_known_values() -> None:
    w = similarity_warp((101, 101), shift_px=(3.0, -2.0), rotation_deg=0.0, scale=1.0)
    np.testing.assert_allclose(w.forward(np.array([[10.0, 20.0]])), [[13.0, 18.0]])
    w = similarity_warp((101, 101), shift_px=(0.0, 0.0), rotation_deg=90.0, scale=2.0)
    # about the centre (50, 50): (60, 50) -> (50, 70)
    np.testing.assert_allclose(w.forward(np.array([[60.0, 50.0]])), [[50.0, 70.0]], atol=1e-9)


def test_warp_image_shape_check() -> None:
    with pytest.raises(ShapeError):
        warp_image(np.zeros((4, 4)), np.zeros((4, 4)))
