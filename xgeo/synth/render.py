"""Physically motivated renderers: one function per modality, all from the same :class:`World`.

``render(world, modality, seed, **style)`` returns float32 arrays on the world's pixel grid:

============  ===========  =====================================================================
modality      shape        values
============  ===========  =====================================================================
optical       (4, H, W)    top-of-canopy reflectance R, G, B, NIR in [0, 1] (illumination from
                           the DEM, season/phenology, building and tree shadows, haze, clouds
                           with their shadows)
thermal       (H, W)       brightness temperature in kelvin (land-cover temperature, lapse rate,
                           slope heating, day/night contrast inversion, coarser native resolution)
sar           (H, W)       sigma0 in dB (land-cover backscatter, local incidence angle, urban
                           double bounce, dark water, radar shadow, optional layover/foreshortening,
                           multiplicative gamma speckle with the requested ENL)
night         (H, W)       night-light radiance (nW cm-2 sr-1), coarse point spread, saturation
dem           (H, W)       elevation in metres (``display="hillshade"`` gives a shaded relief)
hillshade     (H, W)       shaded relief in [0, 1]
map           (3, H, W)    cartographic RGB in [0, 1] drawn from the vector primitives
depth         (H, W)       metres: ``kind="ndsm"`` height above ground, ``"dsm"`` surface
                           elevation, ``"depth"`` distance below a nadir camera
============  ===========  =====================================================================

:func:`render_with_mask` also returns where the content is valid ground (e.g. not under an
opaque cloud). Every random choice comes from ``seed``; unknown style keys raise ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from xgeo.errors import ConfigError
from xgeo.synth._noise import fractal_noise, gaussian_blur, shift_image, smooth_noise
from xgeo.synth.world import (
    LC_BARE,
    LC_BUILDING,
    LC_CROPLAND,
    LC_FOREST,
    LC_GRASS,
    LC_ICE,
    LC_ROAD,
    LC_URBAN,
    LC_WATER,
    World,
)

__all__ = ["render", "render_with_mask", "RENDERERS", "MODALITIES", "hillshade", "SEASONS"]

#: Modalities a pair can be drawn from (``render`` also accepts ``"hillshade"``).
MODALITIES: tuple[str, ...] = ("optical", "thermal", "sar", "night", "dem", "map", "depth")
SEASONS: tuple[str, ...] = ("spring", "summer", "autumn", "winter")

_Renderer = Callable[..., tuple[np.ndarray, np.ndarray | None]]
RENDERERS: dict[str, _Renderer] = {}


def _renderer(name: str) -> Callable[[_Renderer], _Renderer]:
    def deco(fn: _Renderer) -> _Renderer:
        RENDERERS[name] = fn
        return fn
    return deco


def render_with_mask(world: World, modality: str, seed: int = 0,
                     **style: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Render a modality and its content-validity mask.

    Args:
        world: the world.
        modality: one of ``RENDERERS``.
        seed: seeds every random choice of the renderer (style, speckle, clouds, ...).
        **style: modality-specific options (see each renderer); unknown keys raise.

    Returns:
        ``(image, valid)``: float32 image (see module table) and bool ``(H, W)`` or ``None``
        when every pixel is valid.
    """
    if modality not in RENDERERS:
        raise ConfigError(f"Unknown modality {modality!r}: not in {sorted(RENDERERS)}")
    rng = np.random.default_rng([int(seed), 0xAE0, sorted(RENDERERS).index(modality)])
    try:
        return RENDERERS[modality](world, rng, **style)
    except TypeError as e:  # unknown style keyword
        if "unexpected keyword" in str(e):
            raise ConfigError(f"render({modality!r}): {e}. Hint: see xgeo.synth.render "
                              "docstrings for the style keys") from e
        raise


def render(world: World, modality: str, seed: int = 0, **style: Any) -> np.ndarray:
    """Render one modality of ``world``; see the module docstring for shapes and units."""
    return render_with_mask(world, modality, seed, **style)[0]


# --------------------------------------------------------------------------------------------
# shared physics helpers
# --------------------------------------------------------------------------------------------

def _normals(z: np.ndarray, ps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit surface normal components ``(nx, ny, nz)`` in image axes (x right, y down, z up)."""
    gy, gx = np.gradient(z.astype(np.float32), np.float32(ps))
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    return -gx * inv, -gy * inv, inv


def _cos_incidence(z: np.ndarray, ps: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Cosine between the surface normal and the direction to a source at the given azimuth
    (clockwise from north = up) and elevation."""
    nx, ny, nz = _normals(z, ps)
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    sx, sy, sz = np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)
    return (nx * np.float32(sx) + ny * np.float32(sy) + nz * np.float32(sz)).astype(np.float32)


def hillshade(dem: np.ndarray, pixel_size: float, azimuth_deg: float = 315.0,
              elevation_deg: float = 45.0) -> np.ndarray:
    """Shaded relief in ``[0, 1]`` of a DEM ``(H, W)`` in metres."""
    return np.clip(_cos_incidence(dem, pixel_size, azimuth_deg, elevation_deg), 0.0, 1.0)


def _cast_shadow(height: np.ndarray, ps: float, azimuth_deg: float, elevation_deg: float,
                 max_steps: int = 16) -> np.ndarray:
    """Bool ``(H, W)``: ground in the shadow of objects of ``height`` metres above ground."""
    hmax = float(height.max()) if height.size else 0.0
    if hmax <= 0.5:
        return np.zeros(height.shape, bool)
    drop = ps * np.tan(np.radians(elevation_deg))  # metres of shadow ray drop per pixel
    n = int(min(max_steps, np.ceil(hmax / drop)))
    az = np.radians(azimuth_deg)
    ux, uy = -np.sin(az), np.cos(az)  # shadows fall away from the sun
    ray = np.zeros_like(height)
    h, w = height.shape
    for k in range(1, n + 1):
        dx, dy = int(round(k * ux)), int(round(k * uy))
        if abs(dx) >= w or abs(dy) >= h:
            break
        src = height[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        dst = ray[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
        np.maximum(dst, src - np.float32(k * drop), out=dst)
    return ray > height + 0.5


def _class_lut(values: dict[int, Any], fill: Any = 0.0, width: int | None = None) -> np.ndarray:
    shape = (256,) if width is None else (256, width)
    lut = np.full(shape, fill, np.float32)
    for k, v in values.items():
        lut[k] = v
    return lut


def _check(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} not in {allowed}")


# --------------------------------------------------------------------------------------------
# optical
# --------------------------------------------------------------------------------------------

# R, G, B, NIR reflectance per land cover (summer)
_OPTICAL = {
    LC_WATER: (0.03, 0.05, 0.06, 0.02),
    LC_FOREST: (0.03, 0.06, 0.03, 0.32),
    LC_GRASS: (0.06, 0.10, 0.05, 0.36),
    LC_BARE: (0.24, 0.22, 0.19, 0.30),
    LC_URBAN: (0.16, 0.16, 0.16, 0.20),
    LC_ROAD: (0.09, 0.09, 0.10, 0.11),
    LC_BUILDING: (0.20, 0.19, 0.18, 0.24),
    LC_CROPLAND: (0.08, 0.11, 0.06, 0.35),
    LC_ICE: (0.80, 0.82, 0.86, 0.66),  # fresh snow; dirty glacier ice is mixed in per render
}
# crop spectra by phenological stage: bare soil, emerging, green, senescent/ripe, stubble, dark soil
_STAGES = np.array([
    (0.20, 0.16, 0.12, 0.26), (0.10, 0.12, 0.08, 0.28), (0.04, 0.09, 0.04, 0.46),
    (0.24, 0.21, 0.12, 0.33), (0.28, 0.25, 0.18, 0.32), (0.12, 0.10, 0.08, 0.18)], np.float32)
# stage index of each crop type per season
_CROP_STAGE = {
    "spring": (0, 1, 2, 1, 5, 0), "summer": (2, 3, 2, 2, 4, 3),
    "autumn": (4, 0, 3, 5, 4, 2), "winter": (5, 1, 0, 5, 4, 1),
}
_ROOFS = np.array([(0.42, 0.22, 0.16, 0.35), (0.25, 0.25, 0.26, 0.27), (0.55, 0.55, 0.55, 0.55),
                   (0.16, 0.16, 0.18, 0.18), (0.35, 0.30, 0.25, 0.33)], np.float32)


@_renderer("optical")
def _optical(world: World, rng: np.random.Generator, season: str | None = None,
             sun_elevation: float | None = None, sun_azimuth: float | None = None,
             haze: float | None = None, cloud_cover: float | None = None,
             shadows: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Optical R, G, B, NIR reflectance ``(4, H, W)``.

    Style: ``season`` (spring|summer|autumn|winter), ``sun_elevation``/``sun_azimuth`` (deg),
    ``haze`` (0-1), ``cloud_cover`` (0-1; default: 20 % chance of clouds), ``shadows``.
    """
    season = SEASONS[int(rng.integers(4))] if season is None else season
    _check("season", season, SEASONS)
    el = float(rng.uniform(20.0, 65.0) if sun_elevation is None else sun_elevation)
    az = float(rng.uniform(90.0, 270.0) if sun_azimuth is None else sun_azimuth)
    haze = float(rng.uniform(0.0, 0.25) if haze is None else haze)
    if cloud_cover is None:
        cloud_cover = float(rng.uniform(0.05, 0.5)) if rng.random() < 0.2 else 0.0
    h, w = world.shape
    lc = world.landcover
    green = {"spring": 0.85, "summer": 1.0, "autumn": 0.6, "winter": 0.35}[season]
    table = {k: np.array(v, np.float32) for k, v in _OPTICAL.items()}
    for k in (LC_FOREST, LC_GRASS):  # phenology: less NIR, browner in winter/autumn
        v = table[k]
        brown = np.array([0.12, 0.10, 0.07, 0.22], np.float32)
        table[k] = green * v + (1 - green) * brown
    if (world.landcover == LC_ICE).any():  # bare, debris-covered glacier ice vs fresh snow
        dirt = np.float32(rng.uniform(0.0, 0.7))
        table[LC_ICE] = (1 - dirt) * table[LC_ICE] + dirt * np.array([0.30, 0.33, 0.36, 0.24],
                                                                     np.float32)
    lut = _class_lut({k: tuple(v) for k, v in table.items()}, 0.0, 4)
    lut *= rng.uniform(0.85, 1.15, (1, 4)).astype(np.float32)
    pid, bid = world.parcel_id, world.building_id
    crop_vals = roof_vals = None
    if len(world.parcel_crop):
        stage = np.array(_CROP_STAGE[season], np.int64)[world.parcel_crop.astype(np.int64)]
        prefl = _STAGES[stage] * rng.uniform(0.8, 1.2, (len(stage), 1)).astype(np.float32)
        p_idx = np.flatnonzero(pid >= 0)
        crop_vals = prefl[pid.ravel()[p_idx]]  # (Np, 4)
    if len(world.building_heights):
        roof = _ROOFS[rng.integers(0, len(_ROOFS), len(world.building_heights))]
        roof = roof * rng.uniform(0.85, 1.15, (len(roof), 1)).astype(np.float32)
        b_idx = np.flatnonzero(bid >= 0)
        roof_vals = roof[bid.ravel()[b_idx]]
    # texture: forest crowns, field rows, generic grain. It is a property of the ground, not of
    # the acquisition, so it is seeded by the world: two optical renders of one world share it
    # (per-render grain made same-modality pairs decorrelate to r~0.1 and starved training).
    grain = smooth_noise(np.random.default_rng([int(world.seed), 0x6A1, h, w]), (h, w),
                         max(1.0, 3.0 / world.pixel_size))
    tex_amp = _class_lut({LC_FOREST: 0.28, LC_GRASS: 0.08, LC_CROPLAND: 0.06, LC_BARE: 0.12,
                          LC_URBAN: 0.10, LC_WATER: 0.03, LC_ICE: 0.05}, 0.04)[lc]
    # illumination from terrain, shadows from buildings and trees
    cos_i = _cos_incidence(world.dem, world.pixel_size, az, el)
    amb = np.float32(0.25)
    illum = amb + (1 - amb) * np.clip(cos_i / np.float32(np.sin(np.radians(el))), 0.0, 1.6)
    if shadows:
        sh = _cast_shadow(world.building_height + world.tree_height, world.pixel_size, az, el)
        illum[sh] = amb * 1.2
    gain = (1.0 + tex_amp * grain) * illum
    img = np.empty((4, h, w), np.float32)
    for b in range(4):
        band = lut[:, b][lc]
        flat = band.reshape(-1)
        if crop_vals is not None:
            flat[p_idx] = crop_vals[:, b]
        if roof_vals is not None:
            flat[b_idx] = roof_vals[:, b]
        np.multiply(band, gain, out=img[b])
    del gain, grain, tex_amp, cos_i, illum
    # haze: additive path radiance, strongest in blue, smoothly varying (in place, per band)
    if haze > 0:
        hz = haze * (0.6 + 0.4 * np.clip(0.5 + 0.3 * smooth_noise(rng, (h, w), max(h, w) / 3), 0, 1))
        keep = 1 - 0.5 * hz
        for b, path in enumerate((0.10, 0.12, 0.16, 0.05)):
            img[b] *= keep
            img[b] += np.float32(path) * hz
        del hz, keep
    valid = None
    if cloud_cover > 0:
        c = fractal_noise(rng, (h, w), beta=2.6)
        thr = float(np.quantile(c[::4, ::4], 1.0 - cloud_cover))
        cloud = np.clip((c - thr) * 2.0, 0.0, 1.0).astype(np.float32)
        del c
        cloud_h = rng.uniform(800.0, 3000.0)
        d = cloud_h / np.tan(np.radians(el)) / world.pixel_size
        azr = np.radians(az)
        shade = 1 - 0.65 * shift_image(cloud, -np.sin(azr) * d, np.cos(azr) * d)
        clear = 1 - cloud
        for b, cv in enumerate((0.75, 0.76, 0.78, 0.72)):
            img[b] *= shade
            img[b] *= clear
            img[b] += np.float32(cv) * cloud
        valid = cloud < 0.5
    np.clip(img, 0.0, 1.0, out=img)
    return img.astype(np.float32, copy=False), valid


# --------------------------------------------------------------------------------------------
# thermal
# --------------------------------------------------------------------------------------------

# (day, night) temperature offsets in kelvin from the air temperature
_THERMAL = {
    LC_WATER: (-6.0, 4.0), LC_FOREST: (-3.0, 1.5), LC_GRASS: (1.0, -2.0), LC_CROPLAND: (0.0, -2.0),
    LC_BARE: (8.0, -4.0), LC_URBAN: (7.0, 3.0), LC_ROAD: (11.0, 2.5), LC_BUILDING: (9.0, 3.5),
    LC_ICE: (-14.0, -7.0),
}


@_renderer("thermal")
def _thermal(world: World, rng: np.random.Generator, time: str | None = None,
             native_res_m: float | None = None, air_temp_k: float | None = None,
             nedt_k: float = 0.1) -> tuple[np.ndarray, None]:
    """Thermal LWIR brightness temperature (K), ``(H, W)``.

    Style: ``time`` (day|night), ``native_res_m`` (sensor resolution, default 2-6 pixels, the
    image is rendered at it then resampled to the world grid), ``air_temp_k``, ``nedt_k``.
    """
    time = ("day" if rng.random() < 0.65 else "night") if time is None else time
    _check("time", time, ("day", "night"))
    day = time == "day"
    h, w = world.shape
    ps = world.pixel_size
    t_air = float(rng.uniform(268.0, 305.0) if air_temp_k is None else air_temp_k)
    lut = _class_lut({k: v[0 if day else 1] for k, v in _THERMAL.items()})
    t = lut[world.landcover] * np.float32(rng.uniform(0.7, 1.3)) + np.float32(t_air)
    if len(world.parcel_crop):  # moist/dry parcels
        pt = rng.normal(0.0, 2.0 if day else 1.0, len(world.parcel_crop)).astype(np.float32)
        m = world.parcel_id >= 0
        t[m] += pt[world.parcel_id[m]]
    if len(world.building_heights):
        bt = rng.normal(0.0, 3.0, len(world.building_heights)).astype(np.float32)
        m = world.building_id >= 0
        t[m] += bt[world.building_id[m]]
    dem = world.dem
    t += np.float32(-0.0065) * (dem - np.float32(dem.mean()))  # lapse rate
    if day:  # slopes facing the sun heat up
        cos_i = _cos_incidence(dem, ps, float(rng.uniform(120, 240)), float(rng.uniform(25, 60)))
        t += np.float32(rng.uniform(4.0, 10.0)) * (cos_i - np.float32(cos_i.mean()))
    else:  # cold air pools in valleys
        rel = dem - gaussian_blur(dem, max(2.0, 1500.0 / ps))
        t += np.float32(rng.uniform(0.005, 0.02)) * np.clip(rel, -300, 300)
    t += np.float32(0.6) * smooth_noise(rng, (h, w), max(2.0, 200.0 / ps))
    # coarser native resolution: area-average down, smooth back up
    native = float(native_res_m) if native_res_m is not None else ps * rng.uniform(2.0, 6.0)
    f = max(1.0, native / ps)
    if f > 1.2:
        sh, sw = max(2, int(round(h / f))), max(2, int(round(w / f)))
        small = cv2.resize(t, (sw, sh), interpolation=cv2.INTER_AREA)
        t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    t += np.float32(nedt_k) * rng.standard_normal((h, w), dtype=np.float32)
    return t.astype(np.float32, copy=False), None


# --------------------------------------------------------------------------------------------
# SAR
# --------------------------------------------------------------------------------------------

# sigma0 (dB) at the reference incidence angle, and angular exponent (surface ~2, volume ~1)
_SAR = {
    LC_WATER: (-22.0, 3.0), LC_FOREST: (-7.5, 1.0), LC_GRASS: (-12.0, 2.0),
    LC_CROPLAND: (-11.0, 1.5), LC_BARE: (-15.0, 2.0), LC_URBAN: (-8.0, 1.5),
    LC_ROAD: (-19.0, 3.0), LC_BUILDING: (-5.0, 1.0), LC_ICE: (-13.0, 1.5),
}


@_renderer("sar")
def _sar(world: World, rng: np.random.Generator, enl: float | None = None,
         incidence_deg: float | None = None, look: str | None = None, speckle: bool = True,
         terrain_geometry: bool = False, nesz_db: float = -25.0,
         linear: bool = False) -> tuple[np.ndarray, None]:
    """SAR backscatter sigma0 in dB (``linear=True``: linear power), ``(H, W)``.

    Style: ``enl`` (equivalent number of looks of the gamma speckle, default 1-8),
    ``incidence_deg`` (mid-swath, default 25-45), ``look`` (east|west: direction the antenna
    looks, i.e. range direction), ``speckle``, ``terrain_geometry`` (foreshortening/layover:
    shifts terrain toward the sensor; breaks the pixel-exact geometry shared with the other
    modalities, hence off by default), ``nesz_db`` noise floor.
    """
    enl = float(rng.choice([1.0, 2.0, 3.0, 4.4, 6.0, 8.0]) if enl is None else enl)
    if enl <= 0:
        raise ConfigError(f"enl must be > 0, got {enl}")
    theta0 = float(rng.uniform(25.0, 45.0) if incidence_deg is None else incidence_deg)
    look = ("east" if rng.random() < 0.5 else "west") if look is None else look
    _check("look", look, ("east", "west"))
    ps = world.pixel_size
    h, w = world.shape
    lx = 1.0 if look == "east" else -1.0  # range direction in image x
    lc = world.landcover
    s_db = _class_lut({k: v[0] for k, v in _SAR.items()}, -15.0)[lc]
    expo = _class_lut({k: v[1] for k, v in _SAR.items()}, 2.0)[lc]
    if len(world.parcel_crop):
        pdb = rng.normal(0.0, 2.5, len(world.parcel_crop)).astype(np.float32)
        m = world.parcel_id >= 0
        s_db[m] += pdb[world.parcel_id[m]]
    if (lc == LC_ICE).any():  # wet snow absorbs (dark), dry firn scatters (bright)
        s_db[lc == LC_ICE] += np.float32(rng.uniform(-8.0, 5.0))
    if rng.random() < 0.25:  # wind-roughened water
        m = lc == LC_WATER
        s_db[m] += np.float32(rng.uniform(3.0, 9.0)) * (
            0.5 + 0.5 * smooth_noise(rng, (h, w), max(4.0, 800.0 / ps))[m])
    s_db += np.float32(1.0) * smooth_noise(rng, (h, w), max(1.5, 40.0 / ps))
    # local incidence angle on the terrain (unit vector to the sensor)
    th = np.radians(theta0)
    nx, ny, nz = _normals(world.dem, ps)
    cos_loc = nx * np.float32(-lx * np.sin(th)) + nz * np.float32(np.cos(th))
    shadow = cos_loc <= 0.05
    cos_loc = np.clip(cos_loc, 0.05, 1.0)
    sin_loc = np.sqrt(1.0 - cos_loc * cos_loc)
    # angular law and ground-range area normalisation (fore-slopes bright, back-slopes dark)
    ln10 = np.float32(np.log(10.0) / 10.0)
    # 10 ** (dB / 10) * (cos_loc / cos th) ** expo, as one exp (much cheaper than pow)
    sig = np.exp(s_db * ln10 + expo * np.log(cos_loc * np.float32(1.0 / np.cos(th))))
    sig *= np.float32(np.sin(th)) / np.maximum(sin_loc, np.float32(0.17))
    sig[shadow] = 0.0
    # buildings: double bounce at walls facing the sensor, radar shadow behind
    bh = world.building_height
    if bh.max() > 0:
        bm = (bh > 0).astype(np.float32)
        facing = np.clip(shift_image(bm, lx, 0.0) - bm, 0.0, 1.0)  # ground just before the wall
        facing = np.maximum(facing, np.clip(bm - shift_image(bm, -lx, 0.0), 0.0, 1.0))
        db_gain = np.float32(10.0 ** (rng.uniform(0.8, 1.6)))
        sig = sig * (1.0 + db_gain * facing)
        lshadow = _cast_shadow(bh, ps, 90.0 if lx > 0 else 270.0, 90.0 - theta0, max_steps=12)
        sig[lshadow & (bh == 0)] *= np.float32(0.05)
    if terrain_geometry:
        # slant-range displacement toward the sensor: x_img = x_ground - lx * z / tan(theta)
        z = world.dsm
        d = (z - np.float32(z.mean())) / np.float32(np.tan(th) * ps)
        xs = np.arange(w, dtype=np.float32)[None, :] + np.float32(lx) * d
        ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
        fold = np.diff(xs * lx, axis=1, prepend=xs[:, :1] * lx - 1) <= 0  # layover
        sig = cv2.remap(sig.astype(np.float32), xs.astype(np.float32),
                        np.ascontiguousarray(ys), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        sig[fold] *= 3.0
    sig = sig.astype(np.float32) + np.float32(10.0 ** (nesz_db / 10.0))
    if speckle:
        sig *= rng.standard_gamma(enl, (h, w), dtype=np.float32) * np.float32(1.0 / enl)
    if linear:
        return sig, None
    return (np.float32(10.0) * np.log10(np.maximum(sig, np.float32(1e-6)))).astype(np.float32), None


# --------------------------------------------------------------------------------------------
# night lights
# --------------------------------------------------------------------------------------------

@_renderer("night")
def _night(world: World, rng: np.random.Generator, native_res_m: float | None = None,
           saturation: float | None = None) -> tuple[np.ndarray, None]:
    """Night-time lights radiance ``(H, W)`` (nW cm-2 sr-1).

    Style: ``native_res_m`` (point-spread / sensor footprint; default 2-8 pixels),
    ``saturation`` (radiance at which the sensor saturates; default none or 60-250).
    """
    h, w = world.shape
    ps = world.pixel_size
    lc = world.landcover
    rad = np.float32(rng.uniform(30.0, 120.0)) * world.urban_density ** np.float32(1.5)
    rad *= np.clip(1.0 + 0.5 * smooth_noise(rng, (h, w), max(2.0, 150.0 / ps)), 0.2, None)
    lit_road = world.road_mask & (rng.random() < 0.8)
    rad = rad + lit_road * np.float32(rng.uniform(5.0, 25.0)) * (0.3 + world.urban_density)
    if len(world.building_heights):
        bl = rng.gamma(1.0, 8.0, len(world.building_heights)).astype(np.float32)
        m = world.building_id >= 0
        rad[m] += bl[world.building_id[m]]
    # sparse point sources (farms, villages)
    pts = rng.random((h, w), dtype=np.float32) < np.float32(2e-4 * (ps / 10.0) ** 2)
    rad = rad + pts * np.float32(rng.uniform(20, 80))
    rad[lc == LC_WATER] *= np.float32(0.1)
    native = float(native_res_m) if native_res_m is not None else ps * rng.uniform(2.0, 8.0)
    rad = gaussian_blur(rad, max(0.0, 0.5 * native / ps))
    rad += np.float32(0.3) + np.float32(0.05) * rng.standard_normal((h, w), dtype=np.float32)
    sat = (float(rng.uniform(60, 250)) if rng.random() < 0.5 else None) if saturation is None \
        else float(saturation)
    if sat is not None:
        np.minimum(rad, np.float32(sat), out=rad)
    return np.maximum(rad, 0.0).astype(np.float32), None


# --------------------------------------------------------------------------------------------
# DEM, hillshade, depth
# --------------------------------------------------------------------------------------------

def _measured_dem(world: World, rng: np.random.Generator, noise_m: float) -> np.ndarray:
    """The world's terrain as a measured DEM: ``noise_m`` (m, std) of rough, spatially
    correlated error, as photogrammetric (stereo) DEMs have; their hillshade is grainy."""
    if noise_m < 0:
        raise ConfigError(f"noise_m must be >= 0, got {noise_m}")
    dem = world.dem.astype(np.float32, copy=True)
    if noise_m > 0:
        dem += np.float32(noise_m) * fractal_noise(rng, dem.shape, beta=2.0, min_wavelength_px=2.0)
    return dem


@_renderer("dem")
def _dem(world: World, rng: np.random.Generator, display: str = "raw",
         azimuth: float | None = None, elevation: float | None = None,
         noise_m: float = 0.0) -> tuple[np.ndarray, None]:
    """Terrain elevation (m), or ``display="hillshade"`` shaded relief in [0, 1];
    ``noise_m``: stereo-DEM error (std, m; default none)."""
    _check("display", display, ("raw", "hillshade"))
    if display == "hillshade":
        return _hillshade(world, rng, azimuth=azimuth, elevation=elevation, noise_m=noise_m)
    return _measured_dem(world, rng, noise_m), None


@_renderer("hillshade")
def _hillshade(world: World, rng: np.random.Generator, azimuth: float | None = None,
               elevation: float | None = None, noise_m: float = 0.0) -> tuple[np.ndarray, None]:
    """Shaded relief of the terrain in [0, 1] (``azimuth``/``elevation`` of the light, deg;
    ``noise_m`` as for ``dem``)."""
    az = float(rng.uniform(0, 360) if azimuth is None else azimuth)
    el = float(rng.uniform(25, 60) if elevation is None else elevation)
    return hillshade(_measured_dem(world, rng, noise_m), world.pixel_size, az, el), None


@_renderer("depth")
def _depth(world: World, rng: np.random.Generator, kind: str = "ndsm",
           altitude_m: float | None = None) -> tuple[np.ndarray, None]:
    """Height products in metres: ``kind`` = ndsm (above ground) | dsm | depth (nadir camera at
    ``altitude_m`` above the highest point, default 100-2000 m above it)."""
    _check("kind", kind, ("ndsm", "dsm", "depth"))
    if kind == "ndsm":
        return (world.building_height + world.tree_height).astype(np.float32), None
    dsm = world.dsm.astype(np.float32)
    if kind == "dsm":
        return dsm, None
    alt = float(dsm.max() + (rng.uniform(100, 2000) if altitude_m is None else altitude_m))
    return (np.float32(alt) - dsm).astype(np.float32), None


# --------------------------------------------------------------------------------------------
# map
# --------------------------------------------------------------------------------------------

_SHIFT = 4
_SCALE = float(1 << _SHIFT)


def _rgb(rng: np.random.Generator, base: tuple[float, float, float], jitter: float = 0.06
         ) -> tuple[float, float, float]:
    c = np.clip(np.array(base) + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)
    return (float(c[0]), float(c[1]), float(c[2]))


@_renderer("map")
def _map(world: World, rng: np.random.Generator, contours: bool | None = None,
         parcels: bool | None = None, road_scale: float | None = None,
         antialias: bool = True, roads: bool = True,
         thematic: bool | None = None) -> tuple[np.ndarray, None]:
    """Cartographic map RGB ``(3, H, W)`` in [0, 1] drawn from the world's vector primitives,
    with a random style (palette, road widths and casings, optional parcel outlines and
    contour lines; no labels), or a thematic layer map (see :func:`_thematic_map`).

    Style: ``contours``, ``parcels`` (draw parcel outlines), ``road_scale`` (symbol width
    multiplier), ``antialias``, ``roads`` (False: leave the road layer out, same style),
    ``thematic`` (default: 25 % of maps).
    """
    thematic = bool(rng.random() < 0.25) if thematic is None else thematic
    if thematic:
        th = _thematic_map(world, rng, antialias)
        if th is not None:
            return th, None
    h, w = world.shape
    contours = bool(rng.random() < 0.35) if contours is None else contours
    parcels = bool(rng.random() < 0.5) if parcels is None else parcels
    road_scale = float(rng.uniform(0.7, 2.0)) if road_scale is None else float(road_scale)
    dark = rng.random() < 0.15  # dark-themed map
    bg = _rgb(rng, (0.2, 0.2, 0.22) if dark else (0.95, 0.94, 0.90))
    fills = {
        LC_WATER: _rgb(rng, (0.1, 0.2, 0.35) if dark else (0.67, 0.80, 0.95)),
        LC_FOREST: _rgb(rng, (0.15, 0.25, 0.15) if dark else (0.76, 0.88, 0.72)),
        LC_CROPLAND: _rgb(rng, (0.25, 0.25, 0.2) if dark else (0.95, 0.93, 0.80)),
        LC_GRASS: bg if rng.random() < 0.5 else _rgb(rng, (0.85, 0.92, 0.78)),
        LC_BARE: _rgb(rng, (0.3, 0.3, 0.3) if dark else (0.90, 0.88, 0.85)),
        LC_URBAN: _rgb(rng, (0.3, 0.3, 0.32) if dark else (0.88, 0.86, 0.86)),
        LC_ROAD: _rgb(rng, (0.3, 0.3, 0.32) if dark else (0.88, 0.86, 0.86)),
        LC_BUILDING: _rgb(rng, (0.3, 0.3, 0.32) if dark else (0.88, 0.86, 0.86)),
        LC_ICE: _rgb(rng, (0.75, 0.8, 0.85) if dark else (0.92, 0.96, 1.0), 0.03),
    }
    if rng.random() < 0.3:  # minimalist style: no land-cover fills except water
        fills = {k: (v if k == LC_WATER else bg) for k, v in fills.items()}
    lut = _class_lut({k: v for k, v in fills.items()}, 0.0, 3)
    lut[0] = bg
    lc = world.landcover.copy()
    # roads and buildings are drawn as symbols: fill their ground by what lies around
    lc[(lc == LC_ROAD) & world.water_mask] = LC_WATER
    lc[(lc == LC_ROAD) | (lc == LC_BUILDING)] = LC_URBAN
    img = np.ascontiguousarray(lut[lc])  # (H, W, 3)
    lt = cv2.LINE_AA if antialias else cv2.LINE_8
    if contours:
        interval = float(rng.choice([10.0, 20.0, 50.0, 100.0]))
        lev = np.floor(world.dem / np.float32(interval))
        edge = (np.diff(lev, axis=0, append=lev[-1:]) != 0) | (np.diff(lev, axis=1,
                                                                       append=lev[:, -1:]) != 0)
        img[edge] = img[edge] * 0.8 + np.array(_rgb(rng, (0.6, 0.45, 0.3)), np.float32) * 0.2
    if parcels and len(world.parcel_corners):
        p = np.round(world.parcel_corners * _SCALE).astype(np.int32)
        cv2.polylines(img, list(p), True, _rgb(rng, (0.7, 0.68, 0.6)), 1, lt, _SHIFT)
    if len(world.building_corners):
        p = np.round(world.building_corners * _SCALE).astype(np.int32)
        cv2.fillPoly(img, list(p), _rgb(rng, (0.45, 0.45, 0.5) if dark else (0.80, 0.72, 0.68)),
                     lt, _SHIFT)
        if rng.random() < 0.5:
            cv2.polylines(img, list(p), True, _rgb(rng, (0.55, 0.5, 0.48)), 1, lt, _SHIFT)
    if (world.landcover == LC_ICE).any() and rng.random() < 0.7:  # glacier outlines
        _outline(img, world.landcover == LC_ICE, _rgb(rng, (0.2, 0.45, 0.85)),
                 int(rng.integers(1, 3)), lt)
    styles = {
        "highway": (_rgb(rng, (0.95, 0.6, 0.3)), 4.0),
        "secondary": (_rgb(rng, (0.98, 0.9, 0.55)), 3.0),
        "street": (_rgb(rng, (1.0, 1.0, 1.0) if not dark else (0.6, 0.6, 0.6)), 2.0),
    }
    casing = rng.random() < 0.6
    case_col = _rgb(rng, (0.55, 0.5, 0.5))
    for layer in ("street", "secondary", "highway"):
        col, base_w = styles[layer]
        sel = [r for r in world.roads if r.kind == layer]
        if not sel or not roads:
            continue
        width = max(1, int(round(base_w * road_scale)))
        pts = [np.round(r.points * _SCALE).astype(np.int32).reshape(-1, 1, 2) for r in sel]
        if casing:
            cv2.polylines(img, pts, False, case_col, width + 2, lt, _SHIFT)
        cv2.polylines(img, pts, False, col, width, lt, _SHIFT)
    return np.ascontiguousarray(np.moveaxis(np.clip(img, 0.0, 1.0), -1, 0)), None


def _outline(img: np.ndarray, mask: np.ndarray, colour: Any, width: int, line_type: int) -> None:
    """Draw the boundaries of ``mask``'s regions onto ``img`` ``(H, W, 3)`` in place."""
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    if cs:
        cv2.polylines(img, list(cs), True, colour, int(width), line_type)


_LUMA = np.array([0.299, 0.587, 0.114])
#: classes a thematic map may show, most often glaciers and water (inventories, hydrography)
_THEMES = ((LC_ICE,), (LC_WATER,), (LC_FOREST,), (LC_BARE,), (LC_ICE, LC_WATER),
           (LC_CROPLAND,))


def _thematic_map(world: World, rng: np.random.Generator,
                  antialias: bool = True) -> np.ndarray | None:
    """A thematic vector layer drawn as GIS software shows it: the polygons of one or two
    land-cover classes (glacier inventory, lakes and rivers, forest stands, parcels) as flat
    fills and/or outlines on a plain background, nothing else. RGB ``(3, H, W)`` in [0, 1];
    None when no theme covers 3-97 % of the world (the map would be blank or all fill)."""
    lc = world.landcover
    share = {t: float(np.isin(lc, t).mean()) for t in _THEMES}
    present = [t for t in _THEMES if 0.03 <= share[t] <= 0.97]
    if not present:
        return None
    theme = present[int(rng.integers(len(present)))]
    grey = rng.random() < 0.5

    def colour(away_from: float | None = None) -> tuple[float, float, float]:
        """A random (grey or coloured) symbol colour; luminance >= 0.15 from ``away_from``
        (isoluminant fills vanish in the single band the matcher sees)."""
        for _ in range(20):
            c = (float(rng.uniform(0.0, 1.0)),) * 3 if grey else _rgb(rng, (0.5, 0.5, 0.5), 0.45)
            if away_from is None or abs(float(np.dot(c, _LUMA)) - away_from) >= 0.15:
                break
        return c

    bg = colour()
    bg_l = float(np.dot(bg, _LUMA))
    img = np.empty((*lc.shape, 3), np.float32)
    img[:] = bg
    lt = cv2.LINE_AA if antialias else cv2.LINE_8
    for c in theme:
        m = lc == c
        if c == LC_CROPLAND:
            m &= world.parcel_id >= 0
        style = rng.random()
        if style < 0.75:  # filled (with or without outline)
            img[m] = colour(bg_l)
        if style > 0.25:  # outlined (outline only when not filled)
            _outline(img, m, colour(bg_l), int(rng.integers(1, 4)), lt)
    return np.ascontiguousarray(np.moveaxis(np.clip(img, 0.0, 1.0), -1, 0))
