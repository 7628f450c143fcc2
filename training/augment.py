"""Appearance augmentation of training pairs: what real products do to an image that the
synthetic renderers do not (geometry, and so the ground-truth flow, is never changed).

Real cross-sensor pairs arrive resampled from a coarser native grid (Sentinel-1 and -2 patches
at 10 m, Landsat TIRS delivered at 30 m from 100 m), with sensor-specific tone curves and noise,
and with holes: masked clouds, DEM voids, nodata. The renderers model native resolution per
modality only, and training used to see every invalid pixel as 0 while inference fills invalid
pixels with the mean of the valid ones (:class:`xgeo.matcher.inference._Prepared`). This module
closes those gaps, per side and independently:

- ``resample``: area-average down by a factor in ``resample_factor`` (the sensor footprint),
  optionally noise on that coarse grid (``native_noise``: speckle and NEdT live at the native
  resolution, so they come out as blobs), cubic back up;
- ``photometric``: gamma, contrast, offset, blur, noise (:func:`training.data.photometric`);
- ``translate``: one side through a weight-free translator (:mod:`xgeo.synth.translate`:
  pseudo-thermal cosine tone map, SAR-like edges + speckle, inversion, random style, edges);
- ``holes``: one side loses blob-shaped regions (``hole_share`` of its pixels) to invalid;
  image-0 pixels that fall in a hole of either side leave the supervision;
- ``fill="mean"``: invalid pixels take the mean of the valid ones, as at inference
  (``"zero"`` is the convention the earlier stages were trained with); ``fill_outside``: also
  image 1's area outside the warped content (which the data engine leaves at 0).

Config (YAML ``data.augment``), every probability per pair and side unless noted::

    augment: {fill: mean, resample: 0.25, photometric: 0.5, translate: 0.15, holes: 0.25}

Not part of the shipped recipe: as a 35-minute second stage on one CPU thread it did not beat
the shipped weights (README, "Tried and not shipped"; configs ``tiny_aug*.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from training.data.synthetic import photometric
from xgeo.errors import ConfigError
from xgeo.synth import translate
from xgeo.synth._noise import smooth_noise

__all__ = ["AugmentConfig", "augment_pair", "fill_invalid"]

#: translators a ``translate`` augmentation draws from (event_like and posterize are left out:
#: no Earth-observation product looks like them)
_TRANSLATORS = ("pseudo_thermal", "sar_like", "invert", "style", "edges")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of :func:`augment_pair` (all off by default).

    Attributes:
        fill: ``"mean"`` (as inference) or ``"zero"`` for invalid pixels.
        fill_outside: image 1 outside the warped content counts as invalid (filled) too.
        resample: probability per side of a down/up resampling.
        resample_factor: ``(lo, hi)`` down-sampling factor, drawn log-uniformly.
        native_noise: std of the noise on the coarse grid is drawn in ``[0, native_noise]``.
        photometric: probability per side of :func:`training.data.photometric`.
        strength: its strength.
        translate: probability that one side (chosen at random) goes through a translator.
        holes: probability that one side (chosen at random) gets holes.
        hole_share: ``(lo, hi)`` share of that side's pixels lost.
    """

    fill: str = "zero"
    fill_outside: bool = False
    resample: float = 0.0
    resample_factor: tuple[float, float] = (1.5, 3.5)
    native_noise: float = 0.0
    photometric: float = 0.0
    strength: float = 1.0
    translate: float = 0.0
    holes: float = 0.0
    hole_share: tuple[float, float] = (0.1, 0.5)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AugmentConfig:
        """From the YAML mapping; unknown keys and bad values are :class:`ConfigError`."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ConfigError(f"data.augment: unknown keys {bad}; known: {sorted(known)}")
        for k in ("resample_factor", "hole_share"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        cfg = cls(**d)
        if cfg.fill not in ("mean", "zero"):
            raise ConfigError(f"data.augment.fill must be 'mean' or 'zero', got {cfg.fill!r}")
        for k in ("resample", "photometric", "translate", "holes"):
            if not 0.0 <= float(getattr(cfg, k)) <= 1.0:
                raise ConfigError(f"data.augment.{k} is a probability, got {getattr(cfg, k)}")
        if not 0.0 <= cfg.native_noise <= 0.5:
            raise ConfigError(f"data.augment.native_noise must be in [0, 0.5], got {cfg.native_noise}")
        lo, hi = cfg.resample_factor
        if not 1.0 <= lo <= hi:
            raise ConfigError(f"data.augment.resample_factor needs 1 <= lo <= hi, got {(lo, hi)}")
        lo, hi = cfg.hole_share
        if not 0.0 <= lo <= hi < 0.9:
            raise ConfigError(f"data.augment.hole_share needs 0 <= lo <= hi < 0.9, got {(lo, hi)}")
        return cfg


def fill_invalid(img: np.ndarray, valid: np.ndarray, mode: str = "mean") -> np.ndarray:
    """float32 copy of ``img`` with ``~valid`` pixels set to the valid mean (or 0)."""
    a = np.array(img, np.float32)
    value = float(a[valid].mean()) if mode == "mean" and valid.any() else 0.0
    a[~valid] = value
    return a


def _resample(a: np.ndarray, f: float, noise: float = 0.0,
              rng: np.random.Generator | None = None) -> np.ndarray:
    h, w = a.shape
    small = cv2.resize(a, (max(2, round(w / f)), max(2, round(h / f))), interpolation=cv2.INTER_AREA)
    if noise > 0 and rng is not None:
        small = small + np.float32(noise) * rng.standard_normal(small.shape, dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _holes(rng: np.random.Generator, shape: tuple[int, int], share: float) -> np.ndarray:
    """bool blobs covering about ``share`` of the image (thresholded smooth noise)."""
    field = smooth_noise(rng, shape, max(shape) / rng.uniform(3.0, 8.0))
    return field > np.quantile(field, 1.0 - share)


def augment_pair(img0: np.ndarray, img1: np.ndarray, flow: np.ndarray, valid0: np.ndarray,
                 rng: np.random.Generator, cfg: AugmentConfig, valid1: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment one pair's appearance; geometry and flow stay exact.

    Args:
        img0: float32 ``(H, W)`` in [0, 1], NaN invalid.
        img1: float32 ``(H1, W1)``, NaN invalid.
        flow: float32 ``(H, W, 2)``: img1 position of every img0 pixel centre.
        valid0: bool ``(H, W)``: supervised img0 pixels.
        rng: consumed.
        cfg: what to do.
        valid1: bool ``(H1, W1)``: image 1 shows content (used with ``cfg.fill_outside``).

    Returns:
        ``(img0, img1, valid0)``: float32 images in [0, 1] without NaN (invalid = fill value)
        and the supervision mask without pixels that fell into holes.
    """
    imgs = [np.asarray(img0, np.float32), np.asarray(img1, np.float32)]
    valids = [np.isfinite(imgs[0]), np.isfinite(imgs[1])]
    if cfg.fill_outside and valid1 is not None:
        valids[1] &= np.asarray(valid1, bool)
    valid0 = np.asarray(valid0, bool) & valids[0]
    out = [fill_invalid(a, v, "mean") for a, v in zip(imgs, valids, strict=True)]
    if cfg.translate > 0 and rng.random() < cfg.translate:
        side = int(rng.integers(2))
        kind = str(rng.choice(_TRANSLATORS))
        out[side] = translate(out[side], kind, int(rng.integers(2**31)))
    for side in (0, 1):
        if cfg.resample > 0 and rng.random() < cfg.resample:
            lo, hi = cfg.resample_factor
            f = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            noise = float(rng.uniform(0.0, cfg.native_noise)) if cfg.native_noise > 0 else 0.0
            out[side] = _resample(out[side], f, noise, rng)
        if cfg.photometric > 0 and rng.random() < cfg.photometric:
            out[side] = photometric(out[side], rng, cfg.strength)
    if cfg.holes > 0 and rng.random() < cfg.holes:
        side = int(rng.integers(2))
        hole = _holes(rng, out[side].shape, float(rng.uniform(*cfg.hole_share)))
        valids[side] = valids[side] & ~hole
        if side == 0:
            valid0 = valid0 & ~hole
        else:  # image-0 pixels whose partner fell into an image-1 hole
            h1, w1 = hole.shape
            xi = np.clip(np.round(flow[..., 0]).astype(np.int64), 0, w1 - 1)
            yi = np.clip(np.round(flow[..., 1]).astype(np.int64), 0, h1 - 1)
            valid0 = valid0 & ~hole[yi, xi]
    res = [fill_invalid(np.clip(a, 0.0, 1.0), v, cfg.fill) for a, v in zip(out, valids, strict=True)]
    return res[0], res[1], valid0
