"""Weight-free translators: turn a real RGB or single-band image into other modalities.

They let training see real image structure under cross-modal appearance changes (the pixel
geometry is unchanged, so any ground truth of the input still holds). Each translator maps
float32 ``(H, W)`` in [0, 1] (colour input is reduced or used per channel) to float32
``(H, W)`` in [0, 1]; all randomness comes from ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from xgeo.errors import ConfigError, ShapeError
from xgeo.synth._noise import gaussian_blur, normalise01, shift_image, smooth_noise

__all__ = ["translate", "TRANSLATORS", "as_float_image"]

_Fn = Callable[[np.ndarray, np.ndarray | None, np.random.Generator], np.ndarray]
_REG: dict[str, _Fn] = {}


def _translator(name: str) -> Callable[[_Fn], _Fn]:
    def deco(fn: _Fn) -> _Fn:
        _REG[name] = fn
        return fn
    return deco


def as_float_image(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Any-dtype ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` image -> ``(gray, rgb)``.

    Returns:
        gray float32 ``(H, W)`` in [0, 1] (robust stretch) and rgb float32 ``(H, W, 3)`` in
        [0, 1] or ``None`` for single-band input.
    """
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] <= 4 and a.shape[2] > 4:
        a = np.moveaxis(a, 0, -1)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        return normalise01(a, 0.5, 99.5), None
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ShapeError("image", "(H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4}", a.shape)
    if a.shape[2] == 1:
        return normalise01(a[..., 0], 0.5, 99.5), None
    rgb = a[..., :3]
    lo, hi = np.nanpercentile(rgb[::4, ::4], [0.5, 99.5])
    rgb = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return gray.astype(np.float32), rgb


def translate(img: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """Translate an image into another modality's appearance.

    Args:
        img: ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``, any dtype.
        kind: one of :data:`TRANSLATORS`.
        seed: seeds every random choice.

    Returns:
        float32 ``(H, W)`` in [0, 1], same geometry as ``img``.
    """
    if kind not in _REG:
        raise ConfigError(f"Unknown translator {kind!r}: not in {TRANSLATORS}")
    gray, rgb = as_float_image(img)
    rng = np.random.default_rng([int(seed), 0x7A5, TRANSLATORS.index(kind)])
    out = _REG[kind](gray, rgb, rng)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)


@_translator("pseudo_thermal")
def _pseudo_thermal(gray: np.ndarray, rgb: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """XoFTR-style: a random cosine intensity transform (non-monotone, so bright and dark
    materials swap unpredictably), a coarser resolution, then sensor noise."""
    if rgb is not None and rng.random() < 0.5:  # vegetation (green) cooler than dark surfaces
        x = np.clip(0.5 * gray + 0.5 * (1.0 - rgb[..., 1]), 0, 1)
    else:
        x = gray
    w = np.float32(rng.uniform(0.5, 1.5) * np.pi)
    ph = np.float32(rng.uniform(0, 2 * np.pi))
    t = 0.5 + 0.5 * np.cos(w * x + ph)
    t = gaussian_blur(t, rng.uniform(0.5, 2.0))
    t += np.float32(0.02) * rng.standard_normal(t.shape, dtype=np.float32)
    return normalise01(t, 0.5, 99.5)


@_translator("sar_like")
def _sar_like(gray: np.ndarray, rgb: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Edge/roughness response (bright structure edges, dark smooth areas) with multiplicative
    gamma speckle, shown in dB."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    edge = np.sqrt(gx * gx + gy * gy)
    rough = gaussian_blur(np.abs(gray - gaussian_blur(gray, 2.0)), 1.0)
    a = np.float32(rng.uniform(0.2, 0.8))
    sig = 0.02 + a * gray + np.float32(rng.uniform(1.0, 4.0)) * edge + 3.0 * rough
    if rng.random() < 0.3:  # dark = smooth = water-like low backscatter
        sig *= np.where(gray < np.quantile(gray[::4, ::4], 0.1), 0.1, 1.0).astype(np.float32)
    enl = float(rng.choice([1.0, 2.0, 4.0, 8.0]))
    sig = sig * rng.gamma(enl, 1.0 / enl, sig.shape).astype(np.float32)
    return normalise01(10 * np.log10(np.maximum(sig, 1e-4)), 2.0, 98.0)


@_translator("event_like")
def _event_like(gray: np.ndarray, rgb: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Event-camera-like frame: signed log-intensity change under a small motion, thresholded
    into polarity events (0 = off, 0.5 = none, 1 = on), lightly accumulated."""
    lg = np.log(gray + 0.05)
    ang = rng.uniform(0, 2 * np.pi)
    d = rng.uniform(0.7, 2.5)
    moved = shift_image(lg, d * np.cos(ang), d * np.sin(ang), border=float(lg.mean()))
    diff = lg - moved
    thr = np.float32(rng.uniform(0.05, 0.25))
    ev = np.where(diff > thr, 1.0, np.where(diff < -thr, 0.0, 0.5)).astype(np.float32)
    noise = rng.random(ev.shape) < rng.uniform(0.0, 0.01)
    ev[noise] = rng.choice([0.0, 1.0], int(noise.sum())).astype(np.float32)
    return gaussian_blur(ev, rng.uniform(0.0, 0.8)) if rng.random() < 0.5 else ev


@_translator("invert")
def _invert(gray: np.ndarray, rgb: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Contrast inversion with a random gamma (e.g. day/night thermal inversion)."""
    return (1.0 - gray) ** np.float32(np.exp(rng.uniform(-0.7, 0.7)))


@_translator("posterize")
def _posterize(gray: np.ndarray, rgb: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Segment-like: smooth, quantise to a few levels, give each level a random grey value
    (map-like flat regions with shuffled brightness)."""
    src = (rgb * 255).astype(np.uint8) if rgb is not None else \
        cv2.cvtColor((gray * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    sm = cv2.bilateralFilter(src, 7, 40, 5).astype(np.float32) / 255.0
    g = sm @ np.array([0.299, 0.587, 0.114], np.float32)
    k = int(rng.integers(3, 9))
    edges = np.quantile(g[::4, ::4], np.linspace(0, 1, k + 1)[1:-1])
    lab = np.digitize(g, edges)
    vals = rng.permutation(np.linspace(0.05, 0.95, k)).astype(np.float32)
    out = vals[lab]
    if rng.random() < 0.5:  # outline the segments like a map
        b = (np.diff(lab, axis=0, append=lab[-1:]) != 0) | (np.diff(lab, axis=1,
                                                                    append=lab[:, -1:]) != 0)
        out[b] = np.float32(rng.uniform(0, 1))
    return out


@_translator("style")
def _style(gray: np.ndarray, rgb: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Random style/colour transfer: random channel mix, a random smooth (possibly
    non-monotone) tone curve, local contrast (CLAHE) and low-frequency shading."""
    if rgb is not None:
        wts = rng.normal(0.0, 1.0, 3).astype(np.float32)
        x = normalise01(rgb @ wts, 0.5, 99.5)
    else:
        x = gray
    knots = np.sort(rng.uniform(0, 1, int(rng.integers(3, 7))))
    xs = np.concatenate([[0.0], knots, [1.0]])
    ys = rng.uniform(0, 1, len(xs))
    if rng.random() < 0.5:
        ys = np.sort(ys)  # monotone curve half of the time
    lut = np.interp(np.linspace(0, 1, 256), xs, ys).astype(np.float32)
    lut = gaussian_blur(lut[None], 4.0)[0] if len(lut) else lut
    y = lut[np.clip((x * 255).astype(np.int32), 0, 255)]
    if rng.random() < 0.5:
        cl = cv2.createCLAHE(clipLimit=float(rng.uniform(1.5, 4.0)), tileGridSize=(8, 8))
        y = cl.apply((normalise01(y, 0, 100) * 255).astype(np.uint8)).astype(np.float32) / 255
    shade = 1.0 + 0.2 * smooth_noise(rng, y.shape, max(y.shape) / 3)
    return normalise01(y * shade, 0.5, 99.5)


@_translator("edges")
def _edges(gray: np.ndarray, rgb: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Gradient magnitude at a random scale (line-drawing / depth-edge-like)."""
    g = gaussian_blur(gray, rng.uniform(0.5, 2.0))
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return normalise01(np.sqrt(gx * gx + gy * gy), 1.0, 99.0)


#: Translator names accepted by :func:`translate`.
TRANSLATORS: tuple[str, ...] = ("pseudo_thermal", "sar_like", "event_like", "invert",
                                "posterize", "style", "edges")
