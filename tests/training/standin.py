"""A tiny seeded stand-in for :func:`xgeo.synth.make_pair` (tests only: fast, no world model).

Smooth multi-scale noise with a few edges, a random similarity + perspective warp with exact flow,
and a cheap "modality" change of image 1 (inversion / gamma / speckle).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class StandinPair:
    img0: np.ndarray
    img1: np.ndarray
    flow_0to1: np.ndarray
    valid0: np.ndarray
    H_0to1: np.ndarray
    mod0: str = "optical"
    mod1: str = "optical"


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    for s in (4, 8, 16, 32, 64):
        n = max(2, size // s)
        small = rng.random((n, n)).astype(np.float32)
        img += cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC) * (s / 64)
    for _ in range(12):
        p = rng.integers(0, size, 4)
        cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), float(rng.random() * 2), 2)
    img -= img.min()
    return img / max(img.max(), 1e-6)


def make_standin_pair(seed: int, size: int = 256, max_rotation_deg: float = 30.0,
                      scale_range: tuple[float, float] = (0.8, 1.25), **_: object) -> StandinPair:
    rng = np.random.default_rng(seed)
    big = _texture(rng, size)
    ang = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
    sc = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    c = (size - 1) / 2
    t = rng.uniform(-size * 0.08, size * 0.08, 2)
    a = np.array([[sc * np.cos(ang), -sc * np.sin(ang), 0], [sc * np.sin(ang), sc * np.cos(ang), 0], [0, 0, 1]])
    h = np.array([[1, 0, c + t[0]], [0, 1, c + t[1]], [0, 0, 1]]) @ a @ np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]])
    h[2, :2] = rng.uniform(-1e-4, 1e-4, 2)
    img1 = cv2.warpPerspective(big, h, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    mode = rng.integers(0, 3)
    if mode == 0:
        img1 = 1 - img1
    elif mode == 1:
        img1 = img1**2.2
    else:
        img1 = np.clip(img1 * rng.gamma(4, 0.25, img1.shape), 0, 1)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ h.T
    flow = (pts[..., :2] / pts[..., 2:]).astype(np.float32)
    valid = (flow[..., 0] >= 0) & (flow[..., 0] <= size - 1) & (flow[..., 1] >= 0) & (flow[..., 1] <= size - 1)
    return StandinPair(big.astype(np.float32), img1.astype(np.float32), flow, valid, h)
