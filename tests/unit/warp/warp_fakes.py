"""Small fakes of TilePlan / Scene / GeoModel and synthetic GeoTIFF writers for warp tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

CRS_WKT = CRS.from_epsg(32633).to_wkt()
REF_TRANSFORM = (10.0, 0.0, 500000.0, 0.0, -10.0, 5400000.0)


@dataclass(frozen=True)
class FakeScene:
    path: Path
    crs: str
    transform: tuple[float, ...]
    width: int
    height: int
    count: int = 1
    dtype: str = "float32"
    nodata: float | None = None
    band_names: tuple[str, ...] = ()

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform[:6])


@dataclass(frozen=True)
class FakePlan:
    """Plan with an affine ``A`` (mov-file px -> grid px), same CRS for both scenes."""

    ref: FakeScene
    mov: FakeScene
    a: np.ndarray = field(default_factory=lambda: np.eye(3))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ref.height, self.ref.width)

    @property
    def pixel_size(self) -> float:
        return abs(self.ref.transform[0])

    def mov_file_to_grid_matrix(self) -> np.ndarray:
        return self.a.copy()

    def grid_to_mov_file(self, xy: np.ndarray) -> np.ndarray:
        return apply_h(np.linalg.inv(self.a), xy)

    def mov_file_to_grid(self, xy: np.ndarray) -> np.ndarray:
        return apply_h(self.a, xy)


def apply_h(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    out = xy @ m[:2, :2].T + m[:2, 2]
    return out


@dataclass(frozen=True)
class FakeLinearModel:
    m: np.ndarray
    kind: str = "affine"

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return apply_h(self.m, xy)

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        return apply_h(np.linalg.inv(self.m), xy)

    def to_matrix(self) -> np.ndarray:
        return self.m.copy()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "matrix": self.m.tolist()}


def shift_model(dx: float, dy: float) -> FakeLinearModel:
    return FakeLinearModel(np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1]]), kind="shift")


def affine_model(angle_deg: float, scale: float, dx: float, dy: float,
                 cx: float = 0.0, cy: float = 0.0) -> FakeLinearModel:
    t = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = np.array([cx, cy]) - r @ np.array([cx, cy]) + np.array([dx, dy])
    return FakeLinearModel(m, kind="affine")


@dataclass(frozen=True)
class FakeWavyModel:
    """Non-linear mov->ref model: a shift plus a smooth sinusoidal wobble (no matrix)."""

    dx: float = 2.0
    dy: float = -1.5
    amp: float = 1.2
    period: float = 90.0
    kind: str = "poly2"

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        w = self.amp * np.sin(2 * np.pi * xy[:, 1:2] / self.period)
        return xy + np.array([self.dx, self.dy]) + np.concatenate([w, 0.5 * w], axis=1)

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        p = xy - np.array([self.dx, self.dy])
        for _ in range(30):  # fixed point: p = q - d - wobble(p)
            p = p + (xy - self(p))
        return p

    def to_matrix(self) -> None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


def smooth_at(xx: np.ndarray, yy: np.ndarray, seed: int = 0) -> np.ndarray:
    """Smooth analytic content in about [0, 1] (wavelengths >= 25 px) at pixel positions."""
    rng = np.random.default_rng(seed)
    f = np.zeros(np.broadcast(xx, yy).shape)
    for _ in range(6):
        kx, ky = rng.uniform(-1, 1, 2) * 2 * np.pi / 25.0
        f += np.cos(kx * xx + ky * yy + rng.uniform(0, 2 * np.pi))
    return 0.5 + f / 12.0


def smooth_field(h: int, w: int, seed: int = 0) -> np.ndarray:
    """:func:`smooth_at` sampled at every pixel centre of an ``(h, w)`` grid."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return smooth_at(xx, yy, seed)


def write_tif(path: Path, data: np.ndarray, transform: tuple[float, ...] = REF_TRANSFORM,
              nodata: float | None = None, descriptions: tuple[str, ...] = (),
              crs: str = CRS_WKT) -> FakeScene:
    """Write ``(C, H, W)`` or ``(H, W)`` data as a GeoTIFF; return a FakeScene for it."""
    arr = data if data.ndim == 3 else data[None]
    c, h, w = arr.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c,
                       dtype=arr.dtype.name, crs=crs, transform=Affine(*transform[:6]),
                       nodata=nodata) as ds:
        ds.write(arr)
        for i, d in enumerate(descriptions):
            ds.set_band_description(i + 1, d)
    return FakeScene(path=path, crs=crs, transform=tuple(transform), width=w, height=h,
                     count=c, dtype=arr.dtype.name, nodata=nodata,
                     band_names=tuple(descriptions))


