"""Procedural, georeferenced worlds: terrain, land cover, roads, buildings, parcels, water.

Everything is drawn from one seed with numpy / scipy FFT noise and OpenCV rasterisation, so a
4096 x 4096 world takes seconds. Geometry is generated in *pixel* coordinates (``(x, y)`` =
``(col, row)``, integer at pixel centres) and rasterised from those same primitives, so the
vector layers (:attr:`World.vectors`, built lazily in the world's CRS) and every rendered raster
align exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from affine import Affine

from xgeo.errors import ConfigError
from xgeo.synth._noise import chaikin, fractal_noise, gaussian_blur, smooth_noise

if TYPE_CHECKING:  # geopandas is imported lazily (vectors only)
    import geopandas as gpd

__all__ = ["World", "generate_world", "LANDCOVER", "LC_WATER", "LC_FOREST", "LC_CROPLAND",
           "LC_GRASS", "LC_BARE", "LC_URBAN", "LC_BUILDING", "LC_ROAD", "LC_ICE", "N_CROPS"]

LC_NODATA, LC_WATER, LC_FOREST, LC_CROPLAND, LC_GRASS = 0, 1, 2, 3, 4
LC_BARE, LC_URBAN, LC_BUILDING, LC_ROAD, LC_ICE = 5, 6, 7, 8, 9
#: Land-cover class codes of :attr:`World.landcover`.
LANDCOVER: dict[int, str] = {
    LC_NODATA: "nodata",
    LC_WATER: "water",
    LC_FOREST: "forest",
    LC_CROPLAND: "cropland",
    LC_GRASS: "grassland",
    LC_BARE: "bare soil / rock",
    LC_URBAN: "urban ground (sealed, between buildings)",
    LC_BUILDING: "building",
    LC_ROAD: "road",
    LC_ICE: "snow / glacier ice",
}
#: Number of crop types a parcel can carry (``World.parcel_crop`` values ``0..N_CROPS-1``).
N_CROPS = 6

_SHIFT = 4  # OpenCV sub-pixel drawing: coordinates carry 4 fractional bits
_SCALE = float(1 << _SHIFT)


@dataclass(frozen=True, eq=False)
class Road:
    """One road centre line in pixel coordinates.

    Attributes:
        points: float64 ``(K, 2)`` ``(x, y)`` vertices.
        width_px: drawn width in pixels (integer >= 1).
        kind: ``"highway"``, ``"secondary"`` or ``"street"``.
    """

    points: np.ndarray
    width_px: int
    kind: str


@dataclass(frozen=True, eq=False)
class World:
    """A georeferenced synthetic world (treat as immutable; arrays are shared, not copied).

    Attributes:
        seed: the seed it was generated from.
        dem: float32 ``(H, W)`` terrain elevation in metres (bare earth).
        landcover: uint8 ``(H, W)`` class codes, see :data:`LANDCOVER`.
        building_height: float32 ``(H, W)`` metres above ground (0 off buildings).
        tree_height: float32 ``(H, W)`` canopy height in metres (0 off forest).
        road_mask: bool ``(H, W)``.
        water_mask: bool ``(H, W)`` (water under bridges included).
        parcel_id: int32 ``(H, W)`` index into ``parcel_corners`` / ``parcel_crop``; -1 elsewhere.
        building_id: int32 ``(H, W)`` index into ``building_corners``; -1 elsewhere.
        urban_density: float32 ``(H, W)`` in ``[0, 1]`` (drives night lights).
        transform: rasterio ``Affine`` pixel-corner -> CRS.
        crs: CRS string, e.g. ``"EPSG:32633"``.
        pixel_size: metres per pixel.
        roads: road centre lines (pixel coordinates).
        building_corners: float64 ``(B, 4, 2)`` footprint corners in pixels.
        building_heights: float32 ``(B,)`` metres.
        parcel_corners: float64 ``(P, 4, 2)`` parcel corners in pixels.
        parcel_crop: int16 ``(P,)`` crop type ``0..N_CROPS-1``.
    """

    seed: int
    dem: np.ndarray
    landcover: np.ndarray
    building_height: np.ndarray
    tree_height: np.ndarray
    road_mask: np.ndarray
    water_mask: np.ndarray
    parcel_id: np.ndarray
    building_id: np.ndarray
    urban_density: np.ndarray
    transform: Affine
    crs: str
    pixel_size: float
    roads: tuple[Road, ...] = field(repr=False)
    building_corners: np.ndarray = field(repr=False)
    building_heights: np.ndarray = field(repr=False)
    parcel_corners: np.ndarray = field(repr=False)
    parcel_crop: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.dem.shape[0]), int(self.dem.shape[1]))

    @property
    def dsm(self) -> np.ndarray:
        """float32 ``(H, W)`` surface elevation: terrain + buildings + trees (metres)."""
        return self.dem + self.building_height + self.tree_height

    def pixel_to_crs(self, xy: np.ndarray) -> np.ndarray:
        """Pixel ``(x, y)`` (centre convention) -> CRS coordinates, ``(N, 2)`` -> ``(N, 2)``."""
        p = np.asarray(xy, np.float64).reshape(-1, 2) + 0.5
        t = self.transform
        return np.stack([t.a * p[:, 0] + t.b * p[:, 1] + t.c, t.d * p[:, 0] + t.e * p[:, 1] + t.f],
                        axis=1)

    def crop(self, x0: int, y0: int, width: int, height: int) -> World:
        """A window of this world as a world of its own (arrays are views, ids stay valid).

        Args:
            x0, y0: upper-left pixel of the window.
            width, height: window size in pixels (must lie inside the world).
        """
        h, w = self.shape
        if x0 < 0 or y0 < 0 or x0 + width > w or y0 + height > h or width < 1 or height < 1:
            raise ConfigError(f"World.crop: window ({x0}, {y0}, {width}, {height}) outside "
                              f"the world of shape {self.shape}")
        sl = (slice(y0, y0 + height), slice(x0, x0 + width))
        off = np.array([x0, y0], np.float64)
        return World(
            seed=self.seed, dem=self.dem[sl], landcover=self.landcover[sl],
            building_height=self.building_height[sl], tree_height=self.tree_height[sl],
            road_mask=self.road_mask[sl], water_mask=self.water_mask[sl],
            parcel_id=self.parcel_id[sl], building_id=self.building_id[sl],
            urban_density=self.urban_density[sl],
            transform=self.transform @ Affine.translation(x0, y0), crs=self.crs,
            pixel_size=self.pixel_size,
            roads=tuple(Road(r.points - off, r.width_px, r.kind) for r in self.roads),
            building_corners=self.building_corners - off, building_heights=self.building_heights,
            parcel_corners=self.parcel_corners - off, parcel_crop=self.parcel_crop,
        )

    @cached_property
    def vectors(self) -> dict[str, gpd.GeoDataFrame]:
        """Vector layers in the world's CRS: ``roads``, ``water``, ``buildings``, ``parcels``.

        Built on first access (roads as centre lines with ``width_m``; water polygons traced from
        :attr:`water_mask`; buildings and parcels from the same corners that were rasterised).
        """
        return _build_vectors(self)


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------

def generate_world(seed: int, shape: tuple[int, int], pixel_size: float = 10.0,
                   crs: str = "EPSG:32633",
                   origin: tuple[float, float] = (500000.0, 5300000.0),
                   cities: bool = True) -> World:
    """Generate a seeded world.

    Args:
        seed: any non-negative integer; the same seed (and arguments) gives identical arrays.
        shape: ``(H, W)`` in pixels (>= 16 each).
        pixel_size: metres per pixel; feature sizes (streets, parcels, cities) are in metres.
        crs: projected CRS of the georeferencing.
        origin: ``(x, y)`` CRS coordinates of the upper-left corner.
        cities: False gives a wilderness: no cities, streets or buildings (roads may still
            cross it). Mountain worlds may carry snow fields and glaciers either way.

    Returns:
        A :class:`World`.

    Raises:
        ConfigError: shape too small or pixel size not positive.
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 16 or w < 16:
        raise ConfigError(f"generate_world: shape {shape} too small. Hint: use at least (16, 16)")
    if not pixel_size > 0:
        raise ConfigError(f"generate_world: pixel_size must be > 0, got {pixel_size}")
    ps = float(pixel_size)
    ss = np.random.SeedSequence([int(seed), 0x5E0])
    r_dem, r_water, r_city, r_road, r_field, r_forest, r_bld, r_ice = (
        np.random.default_rng(s) for s in ss.spawn(8))
    extent_m = max(h, w) * ps

    # ---- terrain --------------------------------------------------------------------------
    # smooth fields are synthesised at half resolution and upsampled (4x cheaper FFT)
    f = 2 if min(h, w) >= 64 else 1
    hl, wl = -(-h // f), -(-w // f)

    def up(a: np.ndarray, interp: int = cv2.INTER_LINEAR) -> np.ndarray:
        if f == 1:
            return a
        return np.ascontiguousarray(cv2.resize(a, (wl * f, hl * f), interpolation=interp)[:h, :w])

    n = fractal_noise(r_dem, (hl, wl), beta=float(r_dem.uniform(3.9, 4.6)))
    if r_dem.random() < 0.3:  # ridged terrain
        n = -np.abs(n) + 0.8
    n = (n - n.min()) / max(float(np.ptp(n)), 1e-6)
    n = n ** np.float32(r_dem.uniform(1.0, 1.8))
    # relief from a target median slope (scale-aware: flat plains to steep mountains)
    gy, gx = np.gradient(n)
    g_med = max(float(np.median(np.hypot(gx, gy))) / f, 1e-6)  # per full-resolution pixel
    target = np.tan(np.radians(r_dem.uniform(0.0, 1.0) ** 2 * 16.0 + 0.7))
    relief = float(min(3000.0, target * ps / g_med))
    base = float(r_dem.uniform(0.0, 900.0))
    dem_low = (base + np.float32(relief) * n).astype(np.float32)
    dem = up(dem_low, cv2.INTER_CUBIC)
    # fine roughness (metres, scale-aware)
    dem += smooth_noise(r_dem, (h, w), max(2.0, 60.0 / ps)) * np.float32(min(2.0, 0.01 * relief))

    # ---- water: lakes in the lowest basins, meandering rivers ------------------------------
    sm_low = gaussian_blur(dem_low, max(1.0, min(hl, wl) / 64))
    q_lake = r_water.uniform(0.0, 0.10)
    lake_level = float(np.quantile(sm_low[::2, ::2], q_lake)) if q_lake > 0.01 else -np.inf
    water = up(sm_low) < lake_level
    dem = np.where(water, np.minimum(dem, np.float32(lake_level)), dem).astype(np.float32)
    river = np.zeros((h, w), np.uint8)
    for _ in range(r_water.poisson(0.8 + extent_m / 20000.0)):
        pts = _random_curve(r_water, h, w, wiggle=0.12, n_ctrl=int(r_water.integers(6, 14)))
        wpx = int(max(1, round(r_water.uniform(10.0, 90.0) / ps)))
        _draw_polyline(river, pts, wpx, 1)
    river_b = river.astype(bool)
    if river_b.any():
        carve = gaussian_blur(river.astype(np.float32), max(1.0, 40.0 / ps))
        dem -= np.float32(min(25.0, 0.05 * relief + 3.0)) * np.minimum(carve * 2.0, 1.0)
        water |= river_b
    dem = dem.astype(np.float32, copy=False)

    # slope for land-cover rules (half resolution is plenty)
    d_low = cv2.resize(dem, (wl, hl), interpolation=cv2.INTER_AREA) if f > 1 else dem
    gy, gx = np.gradient(d_low, np.float32(ps * f))
    grad = up(np.hypot(gx, gy).astype(np.float32))
    del gx, gy, d_low
    lo_e, hi_e = float(dem_low.min()), float(dem_low.max())
    elev01 = (dem - np.float32(lo_e)) * np.float32(1.0 / max(hi_e - lo_e, 1e-6))
    flat = (grad < np.float32(np.tan(np.radians(12.0)))) & ~water
    ice = _glaciers(r_ice, dem, elev01, grad, relief, ps) & ~water
    flat &= ~ice

    # ---- cities: density field, street grids, building lots --------------------------------
    area_km2 = h * w * ps * ps / 1e6
    n_cities = int(r_city.poisson(0.7 + area_km2 / 120.0)) if cities else 0
    density = np.zeros((h, w), np.float32)
    roads: list[Road] = []
    street = np.zeros((h, w), np.uint8)
    b_corners: list[np.ndarray] = []
    b_heights: list[np.ndarray] = []
    centres: list[tuple[float, float]] = []
    dens_noise = smooth_noise(r_city, (h, w), max(2.0, 300.0 / ps)) if n_cities else None
    for _ in range(n_cities):
        # centre on flat dry land when possible
        cx, cy = float(r_city.uniform(0.1, 0.9) * w), float(r_city.uniform(0.1, 0.9) * h)
        for _try in range(10):
            if flat[int(cy), int(cx)]:
                break
            cx, cy = float(r_city.uniform(0.1, 0.9) * w), float(r_city.uniform(0.1, 0.9) * h)
        centres.append((cx, cy))
        radius = float(r_city.uniform(300.0, 2500.0) / ps)
        x0, x1 = max(0, int(cx - 2 * radius)), min(w, int(cx + 2 * radius) + 1)
        y0, y1 = max(0, int(cy - 2 * radius)), min(h, int(cy + 2 * radius) + 1)
        if x1 > x0 and y1 > y0:
            yy, xx = np.ogrid[y0:y1, x0:x1]
            d2 = ((xx - cx) ** 2 + (yy - cy) ** 2).astype(np.float32) / np.float32(radius ** 2)
            sub = np.exp(-d2 * 1.5) * (1.0 + 0.25 * dens_noise[y0:y1, x0:x1])
            np.maximum(density[y0:y1, x0:x1], sub, out=density[y0:y1, x0:x1])
        ang = float(r_city.uniform(0, np.pi / 2))
        spacing = float(r_city.uniform(60.0, 160.0) / ps)
        st_w = int(max(1, round(r_city.uniform(7.0, 16.0) / ps)))
        _street_grid(r_city, street, b_corners, b_heights, roads, (cx, cy), radius, ang, spacing,
                     st_w, ps)
    density = np.clip(density, 0.0, 1.0).astype(np.float32)
    urban = (density > 0.25) & ~water & ~ice & (grad < np.float32(np.tan(np.radians(20.0))))

    # ---- inter-city roads ---------------------------------------------------------------
    road = street.copy()
    order = list(range(len(centres)))
    for i in range(1, len(order)):
        a, b = centres[order[i - 1]], centres[order[i]]
        pts = _curve_between(r_road, np.array(a), np.array(b), wiggle=0.08)
        wpx = int(max(1, round(r_road.uniform(12.0, 25.0) / ps)))
        _draw_polyline(road, pts, wpx, 1)
        roads.append(Road(pts, wpx, "highway"))
    for _ in range(int(r_road.poisson(1.5 + extent_m / 3000.0))):
        pts = _random_curve(r_road, h, w, wiggle=0.06, n_ctrl=int(r_road.integers(4, 9)))
        if centres and r_road.random() < 0.5:  # pass through a city
            c = np.array(centres[int(r_road.integers(len(centres)))])
            pts = np.vstack([pts[: len(pts) // 2], c[None], pts[len(pts) // 2:]])
            pts = chaikin(pts, 2)
        kind = "highway" if r_road.random() < 0.4 else "secondary"
        width_m = r_road.uniform(12.0, 25.0) if kind == "highway" else r_road.uniform(5.0, 10.0)
        wpx = int(max(1, round(width_m / ps)))
        _draw_polyline(road, pts, wpx, 1)
        roads.append(Road(pts, wpx, kind))
    road_mask = road.astype(bool)

    # ---- fields as parcels ---------------------------------------------------------------
    agri_noise = smooth_noise(r_field, (h, w), max(2.0, 1500.0 / ps))
    agri = (agri_noise > r_field.uniform(-1.0, 0.6)) & flat & ~urban & (elev01 < 0.8)
    parcel_id, p_corners, p_crop = _parcels(r_field, agri, ps)

    # ---- forest, bare rock ----------------------------------------------------------------
    fn = smooth_noise(r_forest, (h, w), max(2.0, 800.0 / ps)) + 0.5 * np.minimum(grad, 2.0)
    forest = (fn > r_forest.uniform(-0.6, 1.0)) & ~water & ~urban & (parcel_id < 0)
    treeline = float(r_forest.uniform(0.8, 1.1)) if relief > 500.0 else 2.0
    bare = ((elev01 > treeline) | (grad > np.float32(np.tan(np.radians(38.0))))) & ~water
    forest &= ~bare
    forest &= ~ice
    canopy = np.where(forest, np.float32(r_forest.uniform(12.0, 30.0))
                      * (0.75 + 0.25 * smooth_noise(r_forest, (h, w), max(1.5, 30.0 / ps))), 0.0)
    canopy = np.clip(canopy, 0.0, None).astype(np.float32)

    # ---- buildings -------------------------------------------------------------------------
    if b_corners:
        bc = np.concatenate(b_corners)
        bh = np.concatenate(b_heights).astype(np.float32)
        cen = bc.mean(axis=1)
        ci = np.clip(np.round(cen).astype(np.int64), 0, [w - 1, h - 1])
        keep = urban[ci[:, 1], ci[:, 0]] & ~road_mask[ci[:, 1], ci[:, 0]]
        keep &= r_bld.random(len(bc)) < np.clip(density[ci[:, 1], ci[:, 0]] * 1.6, 0.0, 1.0)
        bc, bh = bc[keep], bh[keep]
        bh *= (0.5 + density[ci[keep, 1], ci[keep, 0]]).astype(np.float32)
    else:
        bc, bh = np.zeros((0, 4, 2)), np.zeros((0,), np.float32)
    building_id = np.full((h, w), -1, np.int32)
    if len(bc):
        _fill_ids(building_id, bc)
    bmask = building_id >= 0
    building_height = np.zeros((h, w), np.float32)
    building_height[bmask] = bh[building_id[bmask]]

    # ---- land cover (later rules win) ------------------------------------------------------
    lc = np.full((h, w), LC_GRASS, np.uint8)
    lc[forest] = LC_FOREST
    lc[bare] = LC_BARE
    lc[ice] = LC_ICE
    lc[parcel_id >= 0] = LC_CROPLAND
    lc[urban] = LC_URBAN
    lc[water] = LC_WATER
    lc[road_mask] = LC_ROAD
    lc[bmask] = LC_BUILDING
    canopy[lc != LC_FOREST] = 0.0
    parcel_id = np.where(lc == LC_CROPLAND, parcel_id, -1).astype(np.int32)
    if ice.any():  # ice surfaces are smooth: the fine roughness of rock goes under the ice
        sm = gaussian_blur(dem, max(1.0, 60.0 / ps))
        wt = gaussian_blur((lc == LC_ICE).astype(np.float32), max(1.0, 20.0 / ps))
        dem = (dem + wt * (sm - dem)).astype(np.float32)

    transform = Affine(ps, 0.0, float(origin[0]), 0.0, -ps, float(origin[1]))
    return World(
        seed=int(seed), dem=dem, landcover=lc, building_height=building_height,
        tree_height=canopy, road_mask=road_mask, water_mask=water, parcel_id=parcel_id,
        building_id=building_id, urban_density=np.where(water, 0.0, density).astype(np.float32),
        transform=transform, crs=str(crs), pixel_size=ps, roads=tuple(roads),
        building_corners=bc.astype(np.float64), building_heights=bh.astype(np.float32),
        parcel_corners=p_corners, parcel_crop=p_crop,
    )


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _glaciers(rng: np.random.Generator, dem: np.ndarray, elev01: np.ndarray, grad: np.ndarray,
              relief: float, ps: float) -> np.ndarray:
    """bool ``(H, W)``: snow fields and glaciers of a mountain world (empty elsewhere).

    Ice lies above a random snow line (ragged by noise) and flows down the smoother valleys
    below it as tongues; cliffs steeper than ~40 deg stay bare rock. Small patches are dropped.
    """
    h, w = dem.shape
    if relief < 150.0 or rng.random() > 0.35:
        return np.zeros((h, w), bool)
    snow = float(rng.uniform(0.5, 0.9))
    rag = smooth_noise(rng, (h, w), max(2.0, 400.0 / ps)) * np.float32(rng.uniform(0.03, 0.12))
    # valleys: below the local mean elevation -> tongues reach further down
    sm = gaussian_blur(dem, float(np.clip(1200.0 / ps, 2.0, max(h, w) / 4)))
    valley = np.clip((sm - dem) / np.float32(max(relief, 1.0) * 0.1), 0.0, 1.0)
    reach = np.float32(rng.uniform(0.0, 0.35)) * valley
    ice = (elev01 + rag + reach > snow) & (grad < np.float32(np.tan(np.radians(40.0))))
    k = int(max(1, round(60.0 / ps)))
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    ice = cv2.morphologyEx(ice.astype(np.uint8), cv2.MORPH_OPEN, kern)
    ice = cv2.morphologyEx(ice, cv2.MORPH_CLOSE, kern)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(ice, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(20, int((300.0 / ps) ** 2))
    return keep[lab]


def _densify(pts: np.ndarray, step: float = 0.25) -> np.ndarray:
    """Points every ``step`` pixels along a polyline ``(K, 2)``."""
    p = np.asarray(pts, np.float64)
    seg = np.diff(p, axis=0)
    n = np.maximum(np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step).astype(int), 1)
    t = np.concatenate([np.arange(k) / k for k in n])
    idx = np.repeat(np.arange(len(seg)), n)
    return np.vstack([p[idx] + t[:, None] * seg[idx], p[-1:]])


def _draw_polyline(img: np.ndarray, pts: np.ndarray, width: int, value: int) -> None:
    """Rasterise a polyline of ``width`` pixels; every pixel the centre line crosses is set
    (so thin lines are 4-connected and never miss their centre line)."""
    if width > 1:
        p = np.round(np.asarray(pts) * _SCALE).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [p], False, value, int(width), cv2.LINE_8, _SHIFT)
    h, w = img.shape[:2]
    c = np.floor(_densify(pts) + 0.5).astype(np.int64)
    ok = (c[:, 0] >= 0) & (c[:, 0] < w) & (c[:, 1] >= 0) & (c[:, 1] < h)
    img[c[ok, 1], c[ok, 0]] = value


def _fill_ids(img: np.ndarray, corners: np.ndarray) -> None:
    """Rasterise polygons ``(N, 4, 2)`` into an int32 id image (later polygons win)."""
    p = np.round(corners * _SCALE).astype(np.int32)
    # OpenCV draws int32 images fine with fillPoly one id at a time; group to limit calls
    for i in range(len(p)):
        cv2.fillPoly(img, [p[i]], int(i), cv2.LINE_8, _SHIFT)


def _random_curve(rng: np.random.Generator, h: int, w: int, wiggle: float,
                  n_ctrl: int) -> np.ndarray:
    """Smooth curve from one border of the world to another, ``(K, 2)`` pixels."""
    def border_point() -> np.ndarray:
        side = int(rng.integers(4))
        t = rng.uniform(0.05, 0.95)
        return np.array([[t * w, 0.0], [w - 1.0, t * h], [t * w, h - 1.0], [0.0, t * h]][side])

    a = border_point()
    b = border_point()
    for _ in range(10):
        if np.hypot(*(a - b)) > 0.5 * min(h, w):
            break
        b = border_point()
    return _curve_between(rng, a, b, wiggle, n_ctrl)


def _curve_between(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, wiggle: float,
                   n_ctrl: int = 6) -> np.ndarray:
    d = b - a
    length = float(np.hypot(*d)) + 1e-9
    nrm = np.array([-d[1], d[0]]) / length
    t = np.linspace(0.0, 1.0, n_ctrl)
    off = rng.normal(0.0, wiggle * length, n_ctrl) * np.sin(np.pi * t)
    ctrl = a[None] + t[:, None] * d[None] + off[:, None] * nrm[None]
    return chaikin(ctrl, 4)


def _street_grid(rng: np.random.Generator, street: np.ndarray, b_corners: list[np.ndarray],
                 b_heights: list[np.ndarray], roads: list[Road], centre: tuple[float, float],
                 radius: float, ang: float, spacing: float, st_w: int, ps: float) -> None:
    """Draw a rotated street grid inside a disc and propose building footprints in its blocks."""
    h, w = street.shape
    u = np.array([np.cos(ang), np.sin(ang)])
    v = np.array([-np.sin(ang), np.cos(ang)])
    c = np.array(centre)
    k = int(radius // spacing)
    if k < 1:
        return
    for axis_dir, nrm in ((u, v), (v, u)):
        for i in range(-k, k + 1):
            d = i * spacing
            half = np.sqrt(max(radius * radius - d * d, 0.0))
            if half < spacing:
                continue
            p0 = c + d * nrm - half * axis_dir
            p1 = c + d * nrm + half * axis_dir
            pts = np.stack([p0, p1])
            _draw_polyline(street, pts, st_w, 1)
            roads.append(Road(pts, st_w, "street"))
    # blocks -> lots -> buildings (vectorised)
    ii, jj = np.meshgrid(np.arange(-k, k), np.arange(-k, k), indexing="ij")
    bcen = c[None] + ((ii.ravel() + 0.5) * spacing)[:, None] * u[None] \
        + ((jj.ravel() + 0.5) * spacing)[:, None] * v[None]
    inside = np.hypot(*(bcen - c).T) < radius - 0.5 * spacing
    bcen = bcen[inside]
    if not len(bcen):
        return
    inner = spacing - st_w - 2.0 * max(0.5, 4.0 / ps)
    if inner < 0.8:
        return
    na, nb = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    la, lb = inner / na, inner / nb
    oa = (np.arange(na) + 0.5) * la - inner / 2
    ob = (np.arange(nb) + 0.5) * lb - inner / 2
    ga, gb = np.meshgrid(oa, ob, indexing="ij")
    lot = ga.ravel()[None, :, None] * u[None, None] + gb.ravel()[None, :, None] * v[None, None]
    cen = (bcen[:, None, :] + lot).reshape(-1, 2)
    nbld = len(cen)
    fa = la * rng.uniform(0.5, 0.9, nbld) / 2
    fb = lb * rng.uniform(0.5, 0.9, nbld) / 2
    sx = np.array([-1, 1, 1, -1])[None, :, None]
    sy = np.array([-1, -1, 1, 1])[None, :, None]
    corners = cen[:, None, :] + sx * fa[:, None, None] * u[None, None] \
        + sy * fb[:, None, None] * v[None, None]
    ok = (cen[:, 0] >= 0) & (cen[:, 0] < w) & (cen[:, 1] >= 0) & (cen[:, 1] < h)
    b_corners.append(corners[ok])
    b_heights.append(rng.gamma(2.0, 6.0, nbld)[ok] + 3.0)


def _parcels(rng: np.random.Generator, agri: np.ndarray,
             ps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parcel ids from a rotated strip layout; parcels whose centre is agricultural are kept."""
    h, w = agri.shape
    ang = rng.uniform(0, np.pi)
    ca, sa = np.cos(ang), np.sin(ang)
    strip_w = rng.uniform(120.0, 400.0) / ps
    diag = float(np.hypot(h, w))
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    uu = xx * np.float32(ca) + yy * np.float32(sa)
    vv = yy * np.float32(ca) - xx * np.float32(sa)
    smin = int(np.floor(min(0.0, -diag) / strip_w)) - 1
    smax = int(np.ceil(diag / strip_w)) + 1
    ns = smax - smin + 1
    lengths = rng.uniform(100.0, 600.0, ns) / ps
    offsets = rng.uniform(0.0, 1.0, ns) * lengths
    strip = np.floor(uu / np.float32(strip_w)).astype(np.int32) - smin
    np.clip(strip, 0, ns - 1, out=strip)
    kk = np.floor((vv - offsets[strip].astype(np.float32)) / lengths[strip].astype(np.float32))
    kk = kk.astype(np.int32)
    kmin = int(np.floor(-diag / lengths.min())) - 2
    nk = int(np.ceil(2 * diag / lengths.min())) + 4
    flat_id = strip * np.int32(nk) + (kk - np.int32(kmin)) if ns * nk < 2**31 - 1 else \
        strip.astype(np.int64) * nk + (kk - kmin)
    del uu, vv, kk
    # a parcel is kept when its centre pixel (and 4 probes around it) are agricultural
    used = np.unique(flat_id[::4, ::4])
    s_u, k_u = used // nk, used % nk + kmin
    uc = (s_u + smin + 0.5) * strip_w
    vc = offsets[s_u] + (k_u + 0.5) * lengths[s_u]
    votes = np.zeros(len(used))
    for du, dv in ((0.0, 0.0), (0.3, 0.3), (-0.3, 0.3), (0.3, -0.3), (-0.3, -0.3)):
        uu_ = uc + du * strip_w
        vv_ = vc + dv * lengths[s_u]
        px = np.round(uu_ * ca - vv_ * sa).astype(np.int64)
        py = np.round(uu_ * sa + vv_ * ca).astype(np.int64)
        ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        votes[ok] += agri[py[ok], px[ok]]
    keep = used[votes >= 4]
    keep = keep[rng.random(len(keep)) < 0.92]  # a few fallow / other parcels
    lut = np.full(ns * nk, -1, np.int32)
    lut[keep] = np.arange(len(keep), dtype=np.int32)
    parcel_id = lut[flat_id]
    s_idx = keep // nk
    k_idx = keep % nk + kmin
    u0 = (s_idx + smin) * strip_w
    u1 = u0 + strip_w
    v0 = offsets[s_idx] + k_idx * lengths[s_idx]
    v1 = v0 + lengths[s_idx]
    # pixel-centre membership is [u0, u1) x [v0, v1): corners in pixel coordinates
    uv = np.stack([np.stack([u0, v0], 1), np.stack([u1, v0], 1), np.stack([u1, v1], 1),
                   np.stack([u0, v1], 1)], 1)
    corners = np.empty_like(uv)
    corners[..., 0] = uv[..., 0] * ca - uv[..., 1] * sa
    corners[..., 1] = uv[..., 0] * sa + uv[..., 1] * ca
    crop = rng.integers(0, N_CROPS, len(keep)).astype(np.int16)
    return parcel_id, corners.astype(np.float64), crop


def _build_vectors(world: World) -> dict[str, Any]:
    import geopandas as gpd
    import shapely
    from rasterio import features

    t = world.transform
    ps = world.pixel_size

    def to_crs(p: np.ndarray) -> np.ndarray:
        q = np.asarray(p, np.float64) + 0.5
        return np.stack([t.a * q[..., 0] + t.b * q[..., 1] + t.c,
                         t.d * q[..., 0] + t.e * q[..., 1] + t.f], axis=-1)

    roads = gpd.GeoDataFrame(
        {"kind": [r.kind for r in world.roads],
         "width_m": [float(r.width_px * ps) for r in world.roads]},
        geometry=[shapely.LineString(to_crs(r.points)) for r in world.roads], crs=world.crs)

    def polys(corners: np.ndarray) -> np.ndarray:
        if not len(corners):
            return np.empty((0,), object)
        c = to_crs(corners)
        c = np.concatenate([c, c[:, :1]], axis=1)
        return shapely.polygons(c)

    buildings = gpd.GeoDataFrame({"height_m": world.building_heights.astype(np.float64)},
                                 geometry=polys(world.building_corners), crs=world.crs)
    parcels = gpd.GeoDataFrame({"crop": world.parcel_crop.astype(np.int64)},
                               geometry=polys(world.parcel_corners), crs=world.crs)
    wm = world.water_mask.astype(np.uint8)
    geoms = [shapely.geometry.shape(g) for g, v in
             features.shapes(wm, mask=wm.astype(bool), transform=t) if v == 1]
    water = gpd.GeoDataFrame({"kind": ["water"] * len(geoms)}, geometry=geoms, crs=world.crs)
    return {"roads": roads, "water": water, "buildings": buildings, "parcels": parcels}
