"""Tile selectors and the :class:`TilePlan`: the common grid, the tiles and the frame mappings.

Frames (see ARCHITECTURE.md "Coordinate frames"): the *common grid* is the reference file's grid.
A *grid pixel* ``(x, y)`` has its centre at ``ref.affine * (x + 0.5, y + 0.5)``; a *moving-file
pixel* likewise through ``mov.affine``. When the CRSs differ the map coordinates go through pyproj.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer

from xgeo.errors import ShapeError
from xgeo.modalities import NormStats
from xgeo.scenes import Scene

__all__ = ["Tile", "TilePlan", "TileData", "grid_to_mov_file", "mov_file_to_grid",
           "mov_file_to_grid_matrix", "PLAN_VERSION"]

PLAN_VERSION = 1
_HALF = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
_HALF_INV = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Tile:
    """A tile selector: the core window ``[y0, y1) x [x0, x1)`` on the common grid.

    Attributes:
        row, col: tile indices in the plan's tile grid.
        y0, y1, x0, x1: core window (half-open) in grid pixels; aligned with the Zarr chunks.
        halo: extra pixels read on every side by :func:`xgeo.tiling.read_tile`.
    """

    row: int
    col: int
    y0: int
    y1: int
    x0: int
    x1: int
    halo: int

    @property
    def key(self) -> str:
        """Stable name ``"r{row}_c{col}"``."""
        return f"r{self.row}_c{self.col}"

    @property
    def shape(self) -> tuple[int, int]:
        """Core ``(height, width)``."""
        return (self.y1 - self.y0, self.x1 - self.x0)

    def halo_window(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Core window grown by ``halo`` and clipped to a grid of ``shape = (H, W)``.

        Returns:
            ``(y0h, y1h, x0h, x1h)`` half-open.
        """
        h, w = shape
        return (max(0, self.y0 - self.halo), min(h, self.y1 + self.halo),
                max(0, self.x0 - self.halo), min(w, self.x1 + self.halo))

    def to_dict(self) -> dict[str, int]:
        """JSON-able dict."""
        return {"row": self.row, "col": self.col, "y0": self.y0, "y1": self.y1,
                "x0": self.x0, "x1": self.x1, "halo": self.halo}

    def to_json(self) -> str:
        """Compact JSON string (round-trips through :meth:`from_json`)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str | dict[str, Any]) -> Tile:
        """Build from :meth:`to_json` output (a string or the decoded dict)."""
        d = json.loads(s) if isinstance(s, str) else s
        return cls(**{k: int(d[k]) for k in ("row", "col", "y0", "y1", "x0", "x1", "halo")})


@dataclass(frozen=True, eq=False)
class TileData:
    """Pixels of one tile with its halo, read back from the Zarr store.

    Attributes:
        ref: float32 ``(h, w)`` normalised reference, NaN invalid.
        mov: float32 ``(h, w)`` normalised moving scene on the common grid, NaN invalid.
        x0, y0: origin of the halo window on the common grid (add to tile pixel coordinates).
    """

    ref: np.ndarray
    mov: np.ndarray
    x0: int
    y0: int


@lru_cache(maxsize=64)
def _same_crs(a: str, b: str) -> bool:
    return a == b or CRS.from_wkt(a) == CRS.from_wkt(b)


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src), CRS.from_wkt(dst), always_xy=True)


def _as_points(xy: Any) -> np.ndarray:
    pts = np.asarray(xy, dtype=np.float64)
    if pts.ndim == 1 and pts.shape[0] == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ShapeError("xy", "(N, 2)", pts.shape)
    return pts


def _apply(aff: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return aff.a * x + aff.b * y + aff.c, aff.d * x + aff.e * y + aff.f


def _map_pixels(src: Scene, dst: Scene, xy: Any) -> np.ndarray:
    pts = _as_points(xy)
    mx, my = _apply(src.affine, pts[:, 0] + 0.5, pts[:, 1] + 0.5)
    if not _same_crs(src.crs, dst.crs):
        mx, my = _transformer(src.crs, dst.crs).transform(mx, my)
        mx, my = np.asarray(mx, np.float64), np.asarray(my, np.float64)
    px, py = _apply(~dst.affine, mx, my)
    return np.stack([px - 0.5, py - 0.5], axis=1)


def grid_to_mov_file(ref: Scene, mov: Scene, xy: Any) -> np.ndarray:
    """Common-grid pixels ``(N, 2)`` -> moving-file pixels ``(N, 2)`` (float64, exact)."""
    return _map_pixels(ref, mov, xy)


def mov_file_to_grid(ref: Scene, mov: Scene, xy: Any) -> np.ndarray:
    """Moving-file pixels ``(N, 2)`` -> common-grid pixels ``(N, 2)`` (float64, exact)."""
    return _map_pixels(mov, ref, xy)


def _matrix(aff: Affine) -> np.ndarray:
    return np.array([[aff.a, aff.b, aff.c], [aff.d, aff.e, aff.f], [0.0, 0.0, 1.0]])


def mov_file_to_grid_matrix(ref: Scene, mov: Scene, n: int = 21) -> np.ndarray:
    """3x3 affine: moving-file pixel -> common-grid pixel.

    Exact when the CRSs agree; otherwise a least-squares affine of the exact mapping over an
    ``n x n`` grid of points spanning the moving file.
    """
    if _same_crs(ref.crs, mov.crs):
        return _HALF_INV @ np.linalg.inv(_matrix(ref.affine)) @ _matrix(mov.affine) @ _HALF
    xs = np.linspace(0, mov.width - 1, n)
    ys = np.linspace(0, mov.height - 1, n)
    gx, gy = np.meshgrid(xs, ys)
    src = np.stack([gx.ravel(), gy.ravel()], axis=1)
    dst = mov_file_to_grid(ref, mov, src)
    ok = np.all(np.isfinite(dst), axis=1)
    design = np.concatenate([src[ok], np.ones((int(ok.sum()), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(design, dst[ok], rcond=None)
    m = np.eye(3)
    m[:2, :] = sol.T
    return m


@dataclass(frozen=True)
class TilePlan:
    """Everything needed to process a prepared pair tile by tile (hashable, JSON-able).

    Attributes:
        ref, mov: the two scenes (the common grid is ``ref``'s).
        shape: common grid ``(H, W)``.
        tile_size: core tile side (= Zarr chunk side).
        halo: halo width in pixels.
        tiles: tiles with enough valid pixels, row-major.
        skipped: ``(tile, reason)`` for the others.
        store: path of the Zarr v3 store holding ``ref`` and ``mov``.
        ref_stats, mov_stats: normalisation of each side.
        coarse: JSON of the coarse correction folded into ``mov``'s geotransform
            (:func:`xgeo.tiling.coarse_georef`), or ``""`` without one.
    """

    ref: Scene
    mov: Scene
    shape: tuple[int, int]
    tile_size: int
    halo: int
    tiles: tuple[Tile, ...]
    skipped: tuple[tuple[Tile, str], ...]
    store: str
    ref_stats: NormStats
    mov_stats: NormStats
    coarse: str = ""

    @property
    def crs(self) -> str:
        """WKT of the common grid (the reference's)."""
        return self.ref.crs

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Geotransform of the common grid (the reference's)."""
        return self.ref.transform

    @property
    def pixel_size(self) -> float:
        """Common-grid pixel size in CRS units."""
        return self.ref.res

    def tile(self, key: str) -> Tile:
        """The tile (kept or skipped) named ``key``."""
        for t in (*self.tiles, *(t for t, _ in self.skipped)):
            if t.key == key:
                return t
        raise KeyError(key)

    def grid_to_mov_file(self, xy: Any) -> np.ndarray:
        """Common-grid pixels ``(N, 2)`` -> moving-file pixels ``(N, 2)`` (exact)."""
        return grid_to_mov_file(self.ref, self.mov, xy)

    def mov_file_to_grid(self, xy: Any) -> np.ndarray:
        """Moving-file pixels ``(N, 2)`` -> common-grid pixels ``(N, 2)`` (exact)."""
        return mov_file_to_grid(self.ref, self.mov, xy)

    def mov_file_to_grid_matrix(self) -> np.ndarray:
        """3x3 moving-file pixel -> grid pixel (exact if same CRS, else LSQ affine)."""
        return mov_file_to_grid_matrix(self.ref, self.mov)

    def to_dict(self, *, with_store: bool = True) -> dict[str, Any]:
        """JSON-able dict."""
        d: dict[str, Any] = {
            "version": PLAN_VERSION,
            "ref": self.ref.to_dict(), "mov": self.mov.to_dict(),
            "shape": list(self.shape), "tile_size": self.tile_size, "halo": self.halo,
            "tiles": [t.to_dict() for t in self.tiles],
            "skipped": [[t.to_dict(), reason] for t, reason in self.skipped],
            "ref_stats": self.ref_stats.to_dict(), "mov_stats": self.mov_stats.to_dict(),
        }
        if self.coarse:  # absent without one: earlier plans keep their hashes
            d["coarse"] = json.loads(self.coarse)
        if with_store:
            d["store"] = self.store
        return d

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str | dict[str, Any]) -> TilePlan:
        """Inverse of :meth:`to_json` (accepts the string or the decoded dict)."""
        d = json.loads(s) if isinstance(s, str) else s
        return cls(
            ref=Scene.from_dict(d["ref"]), mov=Scene.from_dict(d["mov"]),
            shape=(int(d["shape"][0]), int(d["shape"][1])), tile_size=int(d["tile_size"]),
            halo=int(d["halo"]), tiles=tuple(Tile.from_json(t) for t in d["tiles"]),
            skipped=tuple((Tile.from_json(t), str(r)) for t, r in d["skipped"]),
            store=str(d.get("store", "")), ref_stats=NormStats.from_dict(d["ref_stats"]),
            mov_stats=NormStats.from_dict(d["mov_stats"]),
            coarse=json.dumps(d["coarse"], sort_keys=True) if d.get("coarse") else "",
        )

    @property
    def sha256(self) -> str:
        """Deterministic hash of the plan without its store path (same inputs -> same hash)."""
        text = json.dumps(self.to_dict(with_store=False), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
