"""Seeded noise fields and small raster helpers shared by the world generator and renderers."""

from __future__ import annotations

import cv2
import numpy as np
import scipy.fft

__all__ = ["fractal_noise", "smooth_noise", "normalise01", "gaussian_blur", "shift_image", "chaikin"]


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float = 3.0,
                  min_wavelength_px: float = 2.0) -> np.ndarray:
    """Gaussian random field with power spectrum ``~ f**-beta`` (FFT synthesis).

    Args:
        rng: random generator (consumed).
        shape: ``(H, W)``.
        beta: spectral slope; 2 = rough, 3-4 = terrain-like, larger = smoother.
        min_wavelength_px: frequencies above ``1 / min_wavelength_px`` are cut.

    Returns:
        float32 ``(H, W)`` with zero mean and unit standard deviation.
    """
    h, w = int(shape[0]), int(shape[1])
    fy = scipy.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = scipy.fft.rfftfreq(w).astype(np.float32)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** np.float32(-beta / 2.0)
    amp[0, 0] = 0.0
    amp[f > 1.0 / min_wavelength_px] = 0.0
    re = rng.standard_normal(amp.shape, dtype=np.float32)
    im = rng.standard_normal(amp.shape, dtype=np.float32)
    spec = (re + 1j * im).astype(np.complex64)
    spec *= amp
    out = scipy.fft.irfft2(spec, s=(h, w), workers=1).astype(np.float32, copy=False)
    out -= out.mean()
    sd = float(out.std())
    out /= sd if sd > 0 else 1.0
    return out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Cheap band-limited noise with correlation length ``scale_px`` (coarse grid, cubic upsample).

    Returns:
        float32 ``(H, W)``, roughly zero mean, unit standard deviation.
    """
    h, w = int(shape[0]), int(shape[1])
    step = max(float(scale_px), 1.0)
    # long correlation lengths: synthesise at a reduced resolution, then upsample (smooth anyway)
    red = max(1, int(step // 3))
    hs, ws = -(-h // red), -(-w // red)
    st = step / red
    gh, gw = int(np.ceil(hs / st)) + 4, int(np.ceil(ws / st)) + 4
    g = rng.standard_normal((gh, gw), dtype=np.float32)
    # output pixel (x, y) samples grid point (x / st + 1.5, y / st + 1.5): only the needed
    # pixels are interpolated, whatever the correlation length
    m = np.array([[1.0 / st, 0.0, 1.5], [0.0, 1.0 / st, 1.5]], np.float64)
    out = cv2.warpAffine(g, m, (ws, hs), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT)
    if red > 1:
        out = cv2.resize(out, (ws * red, hs * red), interpolation=cv2.INTER_LINEAR)[:h, :w]
        out = np.ascontiguousarray(out)
    out -= out.mean()
    sd = float(out.std())
    out /= sd if sd > 0 else 1.0
    return out


def normalise01(a: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0,
                valid: np.ndarray | None = None) -> np.ndarray:
    """Robust percentile stretch of ``a`` to float32 ``[0, 1]`` (decimated percentiles)."""
    v = a[valid] if valid is not None else a.reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.zeros(a.shape, np.float32)
    if v.size > 40_000:
        v = v[:: v.size // 40_000 + 1]
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    if hi <= lo:
        hi = lo + 1e-6
    out = (a.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    return np.nan_to_num(out, nan=0.0)


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflected borders (float32 in, float32 out); ``sigma <= 0`` is a copy."""
    if sigma <= 0:
        return a.astype(np.float32, copy=True)
    a = a.astype(np.float32, copy=False)
    if sigma > 6.0:  # wide kernels: blur a decimated copy and upsample (smooth result anyway)
        f = int(sigma // 3)
        h, w = a.shape
        small = cv2.resize(a, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / f, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(a, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)


def shift_image(a: np.ndarray, dx: float, dy: float, border: float = 0.0) -> np.ndarray:
    """Translate an image: ``out(x, y) = a(x - dx, y - dy)`` (bilinear, constant border)."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float64)
    return cv2.warpAffine(a, m, (a.shape[1], a.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def chaikin(pts: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting of an open polyline ``(K, 2)``; the end points are kept."""
    p = np.asarray(pts, np.float64)
    for _ in range(iterations):
        if len(p) < 3:
            break
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2] = q
        mid[1::2] = r
        p = np.vstack([p[:1], mid, p[-1:]])
    return p
