"""Training pairs: two modalities of one world, one of them warped, with exact dense truth."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from xgeo.errors import ConfigError
from xgeo.synth._noise import normalise01
from xgeo.synth.render import MODALITIES, render_with_mask
from xgeo.synth.warp import Warp, _remap, random_warp
from xgeo.synth.world import World, generate_world

__all__ = ["Pair", "make_pair", "to_display", "PAIR_MODALITIES"]

#: Modalities :func:`make_pair` draws from.
PAIR_MODALITIES: tuple[str, ...] = MODALITIES
#: Consecutive seeds ``k * PAIRS_PER_WORLD ... (k + 1) * PAIRS_PER_WORLD - 1`` share a world.
PAIRS_PER_WORLD = 8


@lru_cache(maxsize=2)
def _cached_world(seed: int, side: int, pixel_size: float, cities: bool = True) -> World:
    return generate_world(seed, (side, side), pixel_size=pixel_size, cities=cities)


@dataclass(frozen=True, eq=False)
class Pair:
    """One training pair with exact ground truth.

    Attributes:
        img0: float32 ``(H, W)`` in [0, 1], modality ``mod0`` (reference side).
        img1: float32 ``(H, W)`` in [0, 1], modality ``mod1``, warped.
        flow_0to1: float32 ``(H, W, 2)``: position ``(x, y)`` in ``img1`` of every ``img0``
            pixel centre (exact).
        valid0: bool ``(H, W)``: the ``img0`` pixel is seen in ``img1`` (inside it, on valid
            content on both sides, e.g. not under an opaque cloud).
        valid1: bool ``(H, W)``: the ``img1`` pixel shows rendered world content.
        H_0to1: float64 ``(3, 3)`` global homography (image 0 -> image 1) before local distortion.
        mod0: modality of ``img0``.
        mod1: modality of ``img1``.
        seed: the seed the pair was made from.
        warp: the full :class:`~xgeo.synth.warp.Warp` (``warp.inverse`` maps img1 -> img0).
    """

    img0: np.ndarray
    img1: np.ndarray
    flow_0to1: np.ndarray
    valid0: np.ndarray
    valid1: np.ndarray
    H_0to1: np.ndarray
    mod0: str
    mod1: str
    seed: int
    warp: Warp


def to_display(img: np.ndarray, modality: str, rng: np.random.Generator,
               valid: np.ndarray | None = None) -> np.ndarray:
    """Reduce a rendered modality to one float32 band in [0, 1] (robust stretch).

    Optical becomes luminance (sometimes a single band incl. NIR), map RGB becomes luminance,
    SAR dB and the physical units of the other modalities are percentile-stretched.
    """
    if modality == "optical":
        r = rng.random()
        if r < 0.75:
            band = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
        else:
            band = img[int(rng.choice([0, 1, 3]))]
        return normalise01(band, 0.5, 99.5, valid)
    if modality == "map":
        return normalise01(0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2], 0.0, 100.0)
    lo, hi = (2.0, 98.0) if modality == "sar" else (0.5, 99.5)
    if modality == "night":
        img = np.log1p(img)
    return normalise01(img, lo, hi, valid)


def _style(modality: str, rng: np.random.Generator, pixel_size: float,
           dem_noise_share: float = 0.0) -> dict[str, object]:
    if modality == "dem":
        st: dict[str, object] = {"display": "hillshade" if rng.random() < 0.6 else "raw"}
        # a stereo DEM: error ~3-30 % of a pixel (ASTER at 30 m: ~5-10 m); no draw at share 0,
        # so pairs stay those of engine 1.1
        if dem_noise_share > 0 and rng.random() < dem_noise_share:
            st["noise_m"] = float(pixel_size * rng.uniform(0.03, 0.3))
        return st
    if modality == "depth":
        return {"kind": str(rng.choice(["ndsm", "dsm", "depth"], p=[0.3, 0.4, 0.3]))}
    if modality == "optical":
        return {"cloud_cover": float(rng.uniform(0.05, 0.3)) if rng.random() < 0.1 else 0.0}
    return {}


def make_pair(seed: int, size: int = 320, mod0: str | None = None, mod1: str | None = None,
              max_rotation_deg: float = 180.0, scale_range: tuple[float, float] = (0.5, 2.0),
              local_distortion: bool = True, world_factor: float = 1.5,
              pixel_size: float | None = None, world: World | None = None,
              style0: dict[str, Any] | None = None, style1: dict[str, Any] | None = None,
              wilderness_share: float = 0.0, perspective: float = 0.1,
              dem_noise_share: float = 0.0) -> Pair:
    """Render a cross-modal pair of one procedural world with exact ground truth.

    ``img0`` is the centre crop of the world rendered in ``mod0``; ``img1`` is ``mod1`` resampled
    through a random warp (rotation up to ``max_rotation_deg``, scale in ``scale_range``,
    perspective, smooth local distortion). The world is ``world_factor`` times larger than the
    crop so that ``img1`` stays mostly covered; pixels of ``img1`` outside it are 0 and
    ``valid1`` False.

    Args:
        seed: same seed -> byte-identical pair.
        size: output side ``H = W``.
        mod0, mod1: modalities (``PAIR_MODALITIES``), drawn at random when ``None``.
        max_rotation_deg, scale_range, local_distortion: warp distribution.
        world_factor: world side / ``size``.
        pixel_size: world metres per pixel (default log-uniform 2-30 m).
        style0, style1: fixed render style keys for each side (default: drawn at random).
        wilderness_share: probability that a generated world has no towns (natural landscapes;
            training recipes since engine 1.1 use 0.35: 45 % of crops were > 20 % urban at 0).
        dem_noise_share: probability that a DEM side is a stereo DEM with rough error
            (render style ``noise_m``; engine 1.2; 0 keeps engine 1.1's pairs).
        perspective: perspective strength of the warp (:func:`~xgeo.synth.warp.random_warp`);
            0 gives an affine truth (evaluation by an affine fit); the other draws are the same.
        world: use this world instead of generating one. By default consecutive seeds share
            a cached world of side ``size * (world_factor + 0.5)`` (see ``PAIRS_PER_WORLD``) and
            each pair sees a random ``size * world_factor`` window of it.

    Returns:
        A :class:`Pair`.
    """
    if size < 16:
        raise ConfigError(f"make_pair: size {size} too small. Hint: use >= 16")
    for m in (mod0, mod1):
        if m is not None and m not in PAIR_MODALITIES:
            raise ConfigError(f"make_pair: unknown modality {m!r}: not in {PAIR_MODALITIES}")
    if world_factor < 1.0:
        raise ConfigError(f"make_pair: world_factor must be >= 1, got {world_factor}")
    rng = np.random.default_rng([int(seed), 0xA1B])
    seeds = rng.integers(0, 2**31 - 1, 6)
    m0 = mod0 if mod0 is not None else str(rng.choice(PAIR_MODALITIES))
    m1 = mod1 if mod1 is not None else str(rng.choice(PAIR_MODALITIES))
    side = int(np.ceil(size * world_factor))
    if world is None:
        # PAIRS_PER_WORLD consecutive seeds share one (cached) world, seen through different
        # windows: the world is generated once per group, the pair stays a function of its seed
        group = int(seed) // PAIRS_PER_WORLD
        grng = np.random.default_rng([group, 0xA1C])
        ps = float(np.exp(grng.uniform(np.log(2.0), np.log(30.0)))) if pixel_size is None \
            else float(pixel_size)
        wseed = int(grng.integers(0, 2**31 - 1))
        wild = bool(grng.random() < float(wilderness_share))  # natural landscapes, no towns
        world = _cached_world(wseed, side + size // 2, ps, not wild)
    wh, ww = world.shape
    if wh < size or ww < size:
        raise ConfigError(f"make_pair: world {world.shape} smaller than size {size}")
    vh, vw = min(side, wh), min(side, ww)
    wx = int(rng.integers(0, ww - vw + 1))
    wy = int(rng.integers(0, wh - vh + 1))
    world = world.crop(wx, wy, vw, vh)
    wh, ww = world.shape
    ox, oy = (ww - size) // 2, (wh - size) // 2

    st0 = _style(m0, rng, world.pixel_size, dem_noise_share)
    st1 = _style(m1, rng, world.pixel_size, dem_noise_share)
    a0, v0 = render_with_mask(world, m0, int(seeds[1]), **(st0 if style0 is None else style0))
    a1, v1 = render_with_mask(world, m1, int(seeds[2]), **(st1 if style1 is None else style1))
    d0 = to_display(a0, m0, np.random.default_rng(int(seeds[3])), v0)
    d1 = to_display(a1, m1, np.random.default_rng(int(seeds[4])), v1)

    warp = random_warp(int(seeds[5]), (size, size), max_rotation_deg, scale_range,
                       local_distortion, perspective=perspective)
    img0 = np.ascontiguousarray(d0[oy:oy + size, ox:ox + size])
    inv = warp.inverse_map()  # (H, W, 2) img1 -> img0 frame
    inv[..., 0] += np.float32(ox)
    inv[..., 1] += np.float32(oy)
    img1 = np.clip(_remap(d1, inv, 0.0, 1), 0.0, 1.0)  # 1 = cv2.INTER_LINEAR
    inside1 = (inv[..., 0] >= 0) & (inv[..., 0] <= ww - 1) & (inv[..., 1] >= 0) \
        & (inv[..., 1] <= wh - 1)
    valid1 = inside1.copy()
    flow = warp.flow
    valid0 = (flow[..., 0] >= 0) & (flow[..., 0] <= size - 1) & (flow[..., 1] >= 0) \
        & (flow[..., 1] <= size - 1)
    # img0 pixels land in img1 at positions whose world source is the img0 pixel itself
    if v0 is not None:
        valid0 &= v0[oy:oy + size, ox:ox + size]
    if v1 is not None:
        valid0 &= v1[oy:oy + size, ox:ox + size]
        ok1 = _remap(v1.astype(np.float32), inv, 0.0, 1) > 0.5
        valid1 &= ok1
    img1[~inside1] = 0.0
    return Pair(img0=img0, img1=img1.astype(np.float32), flow_0to1=flow, valid0=valid0,
                valid1=valid1, H_0to1=warp.H_0to1.copy(), mod0=m0, mod1=m1, seed=int(seed),
                warp=warp)
