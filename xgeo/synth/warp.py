"""Random geometric warps with exact ground truth (global homography + smooth local distortion).

A :class:`Warp` maps pixels of image 0 to image 1: ``forward(p) = H(D(p))`` where ``D`` is a
smooth local distortion in the frame of image 0 and ``H`` a homography (``H_0to1``). ``D`` is a
composition of *shear steps* in randomly rotated frames (``a += f(b)`` then ``b += g(a)``, with
``f``, ``g`` short sums of sinusoids). Each step is a bijection with a closed-form inverse, so
both directions are exact to floating point: no iterative inversion, no interpolated flow.

Pixel convention: ``(x, y) = (col, row)``, 0-based, integer at pixel centres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from xgeo.errors import ConfigError, ShapeError

__all__ = ["Warp", "random_warp", "similarity_warp", "warp_image", "apply_homography"]


def apply_homography(hm: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to points ``(..., 2)``; points sent to infinity become NaN."""
    p = np.asarray(xy)
    if p.dtype != np.float32:
        p = p.astype(np.float64)
    dt = p.dtype.type
    m = [[dt(v) for v in row] for row in np.asarray(hm, np.float64)]
    x, y = p[..., 0], p[..., 1]
    w = m[2][0] * x + m[2][1] * y + m[2][2]
    w = np.where(np.abs(w) < 1e-9, dt(np.nan), w)
    return np.stack([(m[0][0] * x + m[0][1] * y + m[0][2]) / w,
                     (m[1][0] * x + m[1][1] * y + m[1][2]) / w], axis=-1)


@dataclass(frozen=True, eq=False)
class _Shear:
    """One exactly invertible step: rotate by ``angle`` about ``centre``, ``a += f(b)``,
    ``b += g(a)``, rotate back. ``f``/``g`` rows are ``(amplitude, omega, phase)``."""

    angle: float
    centre: tuple[float, float]
    f: np.ndarray  # (K, 3)
    g: np.ndarray  # (K, 3)

    @staticmethod
    def _eval(c: np.ndarray, t: np.ndarray) -> np.ndarray:
        out = np.zeros_like(t)
        dt = t.dtype.type
        for amp, om, ph in c:
            out += dt(amp) * np.sin(dt(om) * t + dt(ph))
        return out

    def _to_ab(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dt = xy.dtype.type
        ca, sa = dt(np.cos(self.angle)), dt(np.sin(self.angle))
        dx, dy = xy[..., 0] - dt(self.centre[0]), xy[..., 1] - dt(self.centre[1])
        return ca * dx + sa * dy, -sa * dx + ca * dy

    def _from_ab(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        dt = a.dtype.type
        ca, sa = dt(np.cos(self.angle)), dt(np.sin(self.angle))
        return np.stack([ca * a - sa * b + dt(self.centre[0]), sa * a + ca * b + dt(self.centre[1])],
                        -1)

    def forward(self, xy: np.ndarray) -> np.ndarray:
        a, b = self._to_ab(xy)
        a = a + self._eval(self.f, b)
        b = b + self._eval(self.g, a)
        return self._from_ab(a, b)

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        a, b = self._to_ab(xy)
        b = b - self._eval(self.g, a)
        a = a - self._eval(self.f, b)
        return self._from_ab(a, b)


@dataclass(frozen=True, eq=False)
class Warp:
    """Geometric relation between image 0 and image 1 (exact in both directions).

    Attributes:
        H_0to1: float64 ``(3, 3)`` global homography, points of image 0 -> image 1, applied
            after the local distortion.
        shape0: ``(H, W)`` of image 0.
        shape1: ``(H, W)`` of image 1.
        steps: local distortion steps (empty: no local distortion).
    """

    H_0to1: np.ndarray
    shape0: tuple[int, int]
    shape1: tuple[int, int]
    steps: tuple[_Shear, ...] = field(default=(), repr=False)

    def local_forward(self, xy: np.ndarray) -> np.ndarray:
        """Local distortion ``D`` alone (image-0 frame), ``(..., 2)`` -> ``(..., 2)``.

        float32 input is computed in float32 (dense grids: ~1e-4 px), anything else in float64.
        """
        p = _as_float(xy)
        for s in self.steps:
            p = s.forward(p)
        return p

    def local_inverse(self, xy: np.ndarray) -> np.ndarray:
        """Exact inverse of :meth:`local_forward`."""
        p = _as_float(xy)
        for s in reversed(self.steps):
            p = s.inverse(p)
        return p

    def forward(self, xy: np.ndarray) -> np.ndarray:
        """Image-0 pixel ``(..., 2)`` -> image-1 pixel ``(..., 2)`` (float64; float32 kept)."""
        return apply_homography(self.H_0to1, self.local_forward(xy))

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        """Image-1 pixel ``(..., 2)`` -> image-0 pixel ``(..., 2)`` (float64; float32 kept)."""
        return self.local_inverse(apply_homography(np.linalg.inv(self.H_0to1), xy))

    @property
    def flow(self) -> np.ndarray:
        """float32 ``(H0, W0, 2)``: position in image 1 of every image-0 pixel centre."""
        return self.forward(_grid(self.shape0, np.float32)).astype(np.float32, copy=False)

    def inverse_map(self) -> np.ndarray:
        """float32 ``(H1, W1, 2)``: position in image 0 of every image-1 pixel centre."""
        return self.inverse(_grid(self.shape1, np.float32)).astype(np.float32, copy=False)

    def apply(self, img: np.ndarray, offset: tuple[float, float] = (0.0, 0.0),
              fill: float = 0.0, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Resample an image given in the image-0 frame into image 1.

        Args:
            img: ``(H, W)`` or ``(C, H, W)`` in image-0 frame. It may be a larger canvas whose
                pixel ``offset`` (x, y) is image-0 pixel (0, 0).
            offset: see ``img``.
            fill: value outside ``img``.
            interpolation: OpenCV flag (bilinear default; its positions are quantised to 1/32 px).

        Returns:
            float32 ``(H1, W1)`` or ``(C, H1, W1)``.
        """
        m = self.inverse_map()
        m[..., 0] += np.float32(offset[0])
        m[..., 1] += np.float32(offset[1])
        return _remap(img, m, fill, interpolation)


def _as_float(xy: np.ndarray) -> np.ndarray:
    p = np.asarray(xy)
    return p if p.dtype == np.float32 else p.astype(np.float64)


def _grid(shape: tuple[int, int], dtype: type = np.float64) -> np.ndarray:
    h, w = int(shape[0]), int(shape[1])
    g = np.empty((h, w, 2), dtype)
    g[..., 0] = np.arange(w, dtype=dtype)[None, :]
    g[..., 1] = np.arange(h, dtype=dtype)[:, None]
    return g


def _remap(img: np.ndarray, m: np.ndarray, fill: float, interpolation: int) -> np.ndarray:
    mx = np.ascontiguousarray(np.nan_to_num(m[..., 0], nan=-1e6), dtype=np.float32)
    my = np.ascontiguousarray(np.nan_to_num(m[..., 1], nan=-1e6), dtype=np.float32)
    a = np.asarray(img, np.float32)

    def one(band: np.ndarray) -> np.ndarray:
        return cv2.remap(band, mx, my, interpolation, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=float(fill))

    if a.ndim == 2:
        return one(a)
    if a.ndim == 3:
        return np.stack([one(b) for b in a])
    raise ShapeError("image", "(H, W) or (C, H, W)", a.shape)


def warp_image(img: np.ndarray, flow: np.ndarray, fill: float = 0.0,
               precise: bool = False) -> np.ndarray:
    """Backward warp: ``out[y, x] = img(flow[y, x])`` (bilinear).

    With ``flow = pair.flow_0to1`` and ``img = pair.img1`` this reproduces ``img0``'s geometry.

    Args:
        img: ``(H, W)`` or ``(C, H, W)`` source image.
        flow: ``(Ho, Wo, 2)`` source position ``(x, y)`` of every output pixel.
        fill: value where the flow leaves the source.
        precise: exact bilinear weights (scipy) instead of OpenCV's 1/32-pixel positions.

    Returns:
        float32 ``(Ho, Wo)`` or ``(C, Ho, Wo)``.
    """
    f = np.asarray(flow)
    if f.ndim != 3 or f.shape[-1] != 2:
        raise ShapeError("flow", "(H, W, 2)", f.shape)
    if not precise:
        return _remap(img, f, fill, cv2.INTER_LINEAR)
    a = np.asarray(img, np.float64)
    coords = np.stack([f[..., 1], f[..., 0]]).astype(np.float64)
    bad = ~np.isfinite(coords).all(axis=0)
    coords[:, bad] = -10.0

    def one(band: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(band, coords, order=1, mode="constant",
                                       cval=fill).astype(np.float32)

    if a.ndim == 2:
        return one(a)
    return np.stack([one(b) for b in a])


def _local_steps(rng: np.random.Generator, shape: tuple[int, int], amplitude_px: float,
                 n_steps: int = 2, n_terms: int = 1) -> tuple[_Shear, ...]:
    h, w = shape
    size = float(max(h, w))
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    steps = []
    for _ in range(n_steps):
        coefs = []
        for _fg in range(2):
            amp = rng.uniform(0.3, 1.0, n_terms) * amplitude_px / np.sqrt(2 * n_steps * n_terms)
            amp *= rng.choice([-1.0, 1.0], n_terms)
            om = 2 * np.pi / (rng.uniform(0.35, 1.2, n_terms) * size)
            ph = rng.uniform(0, 2 * np.pi, n_terms)
            coefs.append(np.stack([amp, om, ph], 1))
        steps.append(_Shear(float(rng.uniform(0, np.pi)), centre, coefs[0], coefs[1]))
    return tuple(steps)


def random_warp(seed: int | np.random.Generator, shape: tuple[int, int],
                max_rotation_deg: float = 180.0, scale_range: tuple[float, float] = (0.5, 2.0),
                local_distortion: bool = True, shape1: tuple[int, int] | None = None,
                max_shift_frac: float = 0.1, perspective: float = 0.1,
                local_px: float | None = None) -> Warp:
    """Draw a random warp from image 0 (``shape``) to image 1 (``shape1``, default same).

    Args:
        seed: int seed or a generator.
        shape: ``(H, W)`` of image 0.
        max_rotation_deg: rotation uniform in ``[-max, max]``.
        scale_range: scale (image-1 length / image-0 length) log-uniform in this range.
        local_distortion: add the smooth local distortion.
        shape1: ``(H, W)`` of image 1.
        max_shift_frac: centre offset, fraction of the image size.
        perspective: perspective strength (relative scale change across the image).
        local_px: amplitude of the local distortion in pixels (default ~1.2% of the size).

    Returns:
        A :class:`Warp`.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not (0 < lo <= hi):
        raise ConfigError(f"random_warp: scale_range {scale_range} must satisfy 0 < lo <= hi")
    h0, w0 = int(shape[0]), int(shape[1])
    h1, w1 = (h0, w0) if shape1 is None else (int(shape1[0]), int(shape1[1]))
    theta = np.radians(rng.uniform(-max_rotation_deg, max_rotation_deg))
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    aniso = float(np.exp(rng.normal(0.0, 0.04)))
    shear = float(rng.normal(0.0, 0.03))
    size = float(max(h0, w0))
    pvec = rng.uniform(-1.0, 1.0, 2) * perspective / size
    t = rng.uniform(-1.0, 1.0, 2) * max_shift_frac * np.array([w1, h1])
    c0 = np.array([(w0 - 1) / 2.0, (h0 - 1) / 2.0])
    c1 = np.array([(w1 - 1) / 2.0, (h1 - 1) / 2.0])
    t_c0 = np.array([[1, 0, -c0[0]], [0, 1, -c0[1]], [0, 0, 1]], np.float64)
    persp = np.array([[1, 0, 0], [0, 1, 0], [pvec[0], pvec[1], 1]], np.float64)
    lin = np.array([[s * aniso, s * shear, 0], [0, s / aniso, 0], [0, 0, 1]], np.float64)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                    [0, 0, 1]], np.float64)
    t_c1 = np.array([[1, 0, c1[0] + t[0]], [0, 1, c1[1] + t[1]], [0, 0, 1]], np.float64)
    hm = t_c1 @ rot @ lin @ persp @ t_c0
    hm /= hm[2, 2]
    steps: tuple[_Shear, ...] = ()
    if local_distortion:
        amp = 0.012 * size if local_px is None else float(local_px)
        steps = _local_steps(rng, (h0, w0), amp * rng.uniform(0.3, 1.0) if local_px is None
                             else amp)
    return Warp(hm, (h0, w0), (h1, w1), steps)


def similarity_warp(shape: tuple[int, int], shift_px: tuple[float, float], rotation_deg: float,
                    scale: float, local_px: float = 0.0, seed: int = 0,
                    shape1: tuple[int, int] | None = None) -> Warp:
    """A known misregistration: similarity about the image centre, then shift, plus local
    distortion of amplitude ``local_px`` (deterministic by ``seed``)."""
    h0, w0 = int(shape[0]), int(shape[1])
    h1, w1 = (h0, w0) if shape1 is None else (int(shape1[0]), int(shape1[1]))
    c0 = np.array([(w0 - 1) / 2.0, (h0 - 1) / 2.0])
    c1 = np.array([(w1 - 1) / 2.0, (h1 - 1) / 2.0])
    th = np.radians(rotation_deg)
    r = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    hm = np.eye(3)
    hm[:2, :2] = r
    hm[:2, 2] = c1 + np.asarray(shift_px, np.float64) - r @ c0
    steps: tuple[_Shear, ...] = ()
    if local_px > 0:
        steps = _local_steps(np.random.default_rng([int(seed), 0x10CA1]), (h0, w0),
                             float(local_px))
    return Warp(hm, (h0, w0), (h1, w1), steps)
