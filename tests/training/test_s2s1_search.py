"""The exhaustive-search yardstick of the S2/S1 pairs (tests/bench/s2s1_search.py) finds what is there."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from s2s1_search import UP, MaskedNCC, search  # noqa: E402

from training.eval import corner_error  # noqa: E402


def test_masked_ncc_finds_the_shift_and_ignores_masked_pixels() -> None:
    rng = np.random.default_rng(0)
    g = rng.random((60, 70))
    f = g[10:40, 5:35].copy()
    mf = np.ones_like(f, bool)
    mf[:, :8] = False
    f[~mf] = 50.0  # masked: its values must not count
    ncc, n = MaskedNCC(g, np.ones_like(g, bool), f.shape)(f, mf)
    ncc[n < 400] = -1.0
    i, j = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    assert (i - (f.shape[0] - 1), j - (f.shape[1] - 1)) == (10, 5)
    assert ncc[i, j] > 0.999


def test_search_recovers_a_rotated_self_pair() -> None:
    # a textured 360 px image against itself turned 60 deg: the search (30 deg grid + fine
    # grid) must land within a few upsampled pixels at every corner
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.random((120, 120)).astype(np.float32), (0, 0), 2.0)
    img0 = cv2.resize(base, (int(120 * UP), int(120 * UP)), interpolation=cv2.INTER_CUBIC)
    h = np.eye(3)
    h[:2] = cv2.getRotationMatrix2D((179.5, 179.5), 60.0, 1.0)
    img1 = cv2.warpAffine(img0, h[:2], (360, 360), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    est = search(img0, img1, sigma=1.0, rot_step=30.0)
    assert corner_error(est[:2], h, img0.shape) < 4.0
