"""Seeded synthetic tie points with a known ``mov_to_ref`` truth, for geometry tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EXTENT = 4000.0
TILE = 500.0


def truth_shift(xy: np.ndarray) -> np.ndarray:
    return xy + np.array([3.4, -2.7])


def _affine_matrix() -> np.ndarray:
    th = np.deg2rad(0.5)
    a = 1.003 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = np.array([EXTENT / 2, EXTENT / 2])
    t = c - a @ c + np.array([3.4, -2.7])
    return np.hstack([a, t[:, None]])


AFFINE_TRUTH = _affine_matrix()


def truth_affine(xy: np.ndarray) -> np.ndarray:
    return xy @ AFFINE_TRUTH[:, :2].T + AFFINE_TRUTH[:, 2]


def truth_poly2(xy: np.ndarray) -> np.ndarray:
    u = xy / EXTENT - 0.5
    dx = 2.0 + 6.0 * u[:, 0] ** 2 - 4.0 * u[:, 0] * u[:, 1] + 3.0 * u[:, 1]
    dy = -1.5 + 5.0 * u[:, 1] ** 2 + 3.0 * u[:, 0] * u[:, 1] - 2.0 * u[:, 0]
    return xy + np.stack([dx, dy], 1)


_BUMPS = [  # (cx, cy, sigma, ax, ay) px
    (1000.0, 1200.0, 450.0, 4.0, -3.0),
    (2900.0, 1000.0, 500.0, -3.5, 2.5),
    (2000.0, 2900.0, 550.0, 3.0, 4.0),
]


def truth_bumps(xy: np.ndarray) -> np.ndarray:
    out = xy + np.array([1.5, -1.0])
    for cx, cy, sg, ax, ay in _BUMPS:
        g = np.exp(-((xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2) / (2 * sg**2))
        out[:, 0] += ax * g
        out[:, 1] += ay * g
    return out


TRUTHS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "shift": truth_shift, "affine": truth_affine, "poly2": truth_poly2, "bumps": truth_bumps,
}


@dataclass(frozen=True)
class TiePoints:
    src: np.ndarray  # (N, 2)
    dst: np.ndarray  # (N, 2)
    confidence: np.ndarray  # (N,)
    tile_ids: np.ndarray  # (N,) str
    outlier: np.ndarray  # (N,) bool, true gross outliers


def make_tiepoints(
    truth: Callable[[np.ndarray], np.ndarray], n: int = 4000, noise: float = 0.2,
    outlier_frac: float = 0.3, seed: int = 0, extent: float = EXTENT,
) -> TiePoints:
    """Points uniform over the extent, Gaussian noise, and gross outliers (5-60 px off)."""
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, extent, (n, 2))
    dst = truth(src) + rng.normal(0, noise, (n, 2))
    out = rng.random(n) < outlier_frac
    k = int(out.sum())
    ang = rng.uniform(0, 2 * np.pi, k)
    rad = rng.uniform(5.0, 60.0, k)
    dst[out] += np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    conf = np.where(out, rng.uniform(0.2, 0.9, n), rng.uniform(0.4, 1.0, n))
    ij = np.floor(src / TILE).astype(int)
    tiles = np.array([f"r{j}c{i}" for i, j in ij])
    return TiePoints(src, dst, conf, tiles, out)


def check_grid(extent: float = EXTENT, margin: float = 200.0, n: int = 25) -> np.ndarray:
    g = np.linspace(margin, extent - margin, n)
    xx, yy = np.meshgrid(g, g)
    return np.stack([xx.ravel(), yy.ravel()], 1)
