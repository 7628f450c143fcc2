"""Private numerics of the classical structural matcher (CFOG-like, Ye et al., TGRS 2019).

Three stages, each a plain function over numpy arrays:

1. :func:`oriented_gradient_channels` - dense, modality-robust structure descriptors: the
   absolute directional derivative in ``K`` unsigned orientations, smoothed in space (Gaussian)
   and across orientation (circular ``[1, 2, 1]``), then L2-normalised per pixel. Only the *shape*
   of local structure survives, not intensity or its sign (contrast inversion is invisible).
2. :func:`global_offset` - masked normalised cross-correlation (Padfield, 2012) of the
   downsampled channel stacks over every overlap of at least ``min_overlap``; a coarse offset
   that extends the local search range.
3. :func:`match_windows` - batched FFT template matching of channel stacks: for every template
   window of image 0 the zero-mean normalised cross-correlation (NCC over all channels and pixels
   jointly) against every integer offset in ``[-search, search]^2`` of image 1, peak picking,
   sub-pixel refinement and a reliability score.

Arrays are ``(C, H, W)`` channel-first float32; points are ``(x, y) = (col, row)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

__all__ = [
    "Features",
    "GlobalOffset",
    "WindowMatches",
    "oriented_gradient_channels",
    "global_offset",
    "window_grid",
    "box_sums",
    "match_windows",
]


@dataclass(frozen=True)
class Features:
    """Structural channels of one image.

    Attributes:
        channels: float32 ``(C, H, W)``, per-pixel L2 norm <= 1, zero on invalid pixels.
        energy: float32 ``(H, W)`` smoothed gradient magnitude before normalisation (0 invalid).
        valid: bool ``(H, W)``: pixel is finite and far enough from invalid ones to be trusted.
    """

    channels: np.ndarray
    energy: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class GlobalOffset:
    """Result of :func:`global_offset`.

    Attributes:
        dx, dy: offset in full-resolution px: content at ``p`` in image 0 is at ``p + (dx, dy)``
            in image 1 (multiples of ``factor``).
        ncc: masked NCC at the offset.
        ncc2: best NCC more than 2 low-resolution px away from it.
        ncc_near: best NCC at offsets within ``near`` px of zero (per axis).
        factor: downsampling factor used.
    """

    dx: float
    dy: float
    ncc: float
    ncc2: float
    ncc_near: float
    factor: int


@dataclass(frozen=True)
class WindowMatches:
    """Raw per-window results of :func:`match_windows` (``N`` windows).

    Attributes:
        points0: float32 ``(N, 2)`` window centres in image 0.
        points1: float32 ``(N, 2)`` matched positions in image 1.
        ncc: float32 ``(N,)`` NCC at the peak.
        ncc2: float32 ``(N,)`` best NCC outside the exclusion radius around the peak.
        confidence: float32 ``(N,)`` reliability in ``[0, 1]`` (see :func:`reliability`).
        keep: bool ``(N,)``: peak is interior and the matched window of image 1 is valid.
    """

    points0: np.ndarray
    points1: np.ndarray
    ncc: np.ndarray
    ncc2: np.ndarray
    confidence: np.ndarray
    keep: np.ndarray


def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 ``(H, W)`` image (reflect border); identity for sigma <= 0."""
    if sigma <= 0:
        return img
    k = int(2 * np.ceil(3 * sigma) + 1)
    return cv2.GaussianBlur(img, (k, k), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)


def oriented_gradient_channels(
    img: np.ndarray,
    orientations: int = 9,
    sigma: float = 1.5,
    presmooth: float = 0.8,
    eps_rel: float = 0.1,
    margin: int = 3,
) -> Features:
    """Compute CFOG-like oriented-gradient channels.

    Args:
        img: float32 ``(H, W)`` in ``[0, 1]``, NaN where invalid.
        orientations: number ``K`` of unsigned orientations in ``[0, pi)``.
        sigma: spatial Gaussian sigma (px) applied to every channel.
        presmooth: Gaussian sigma (px) applied to the image before the gradient (speckle, noise).
        eps_rel: normalisation floor as a fraction of the median valid energy: flat areas get
            small descriptors instead of amplified noise.
        margin: pixels within this distance of an invalid pixel are marked invalid too (their
            gradients see the fill value).

    Returns:
        :class:`Features` with ``channels`` ``(K, H, W)``.
    """
    img = np.asarray(img, dtype=np.float32)
    finite = np.isfinite(img)
    if finite.all():
        filled = img
        valid = finite
    else:
        fill = float(img[finite].mean()) if finite.any() else 0.0
        filled = np.where(finite, img, np.float32(fill)).astype(np.float32)
        valid = (ndimage.binary_erosion(finite, iterations=margin, border_value=1)
                 if margin > 0 else finite)
    sm = _gauss(filled, presmooth)
    gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) * 0.125
    gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) * 0.125
    h, w = img.shape
    ch = np.empty((orientations, h, w), np.float32)
    for k in range(orientations):
        t = np.pi * k / orientations
        d = np.abs(np.float32(np.cos(t)) * gx + np.float32(np.sin(t)) * gy)
        ch[k] = _gauss(d, sigma)
    if orientations >= 3:  # circular [1, 2, 1] smoothing across orientation
        ch = (0.5 * ch + 0.25 * np.roll(ch, 1, axis=0) + 0.25 * np.roll(ch, -1, axis=0))
        ch = ch.astype(np.float32, copy=False)
    norm = np.sqrt(np.einsum("khw,khw->hw", ch, ch))
    norm[~valid] = 0.0
    med = float(np.median(norm[valid])) if valid.any() else 0.0
    eps = np.float32(max(eps_rel * med, 1e-6))
    ch *= (1.0 / (norm + eps))[None]
    ch[:, ~valid] = 0.0
    return Features(ch, norm.astype(np.float32, copy=False), valid)


def block_mean(img: np.ndarray, f: int) -> np.ndarray:
    """Downsample ``(H, W)`` by an integer factor with NaN-aware block means (edges cropped;
    a block with fewer than half valid pixels is NaN)."""
    if f <= 1:
        return img
    h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    b = img[:h, :w].reshape(h // f, f, w // f, f)
    fin = np.isfinite(b)
    cnt = fin.sum(axis=(1, 3))
    s = np.where(fin, b, 0).sum(axis=(1, 3))
    out = np.full(cnt.shape, np.nan, np.float32)
    ok = cnt >= (f * f) // 2
    out[ok] = s[ok] / cnt[ok]
    return out


def xcorr_full(a: np.ndarray, b: np.ndarray | None, shape: tuple[int, int], workers: int,
               b_fft: np.ndarray | None = None) -> np.ndarray:
    """Cross-correlation ``out[d] = sum_p a[p] b[p + d]`` for all 2-D shifts (circular layout).

    ``a``/``b`` may be ``(C, h, w)`` (summed over C) or ``(h, w)``. ``b_fft`` (``rfft2(b, s=shape)``)
    replaces ``b`` when one ``b`` is correlated with many ``a``.
    """
    fa = sfft.rfft2(a, s=shape, workers=workers)
    fb = sfft.rfft2(b, s=shape, workers=workers) if b_fft is None else b_fft
    prod = np.conj(fa) * fb
    if prod.ndim == 3:
        prod = prod.sum(axis=0)
    return sfft.irfft2(prod, s=shape, workers=workers)


def global_offset(
    img0: np.ndarray,
    img1: np.ndarray,
    max_size: int = 256,
    min_overlap: float = 0.3,
    max_shift: float = 0.3,
    near: int = 0,
    feature_kw: dict | None = None,
    workers: int = 1,
) -> GlobalOffset:
    """Coarse translation of image 1 relative to image 0 from downsampled structure channels.

    Masked NCC (Padfield, IEEE TIP 2012) over all channels, for every shift whose overlap
    covers at least ``min_overlap`` of the smaller image.

    Args:
        img0: float32 ``(H0, W0)``, NaN invalid.
        img1: float32 ``(H1, W1)``, NaN invalid.
        max_size: the longer side is downsampled (integer block mean) to at most this.
        min_overlap: smallest overlap fraction considered.
        max_shift: largest shift considered per axis, as a fraction of the image side.
        near: half-size (full-resolution px) of the neighbourhood of zero offset whose best NCC
            is reported as ``ncc_near``.
        feature_kw: options of :func:`oriented_gradient_channels`.
        workers: scipy.fft workers.

    Returns:
        :class:`GlobalOffset`.
    """
    f = max(1, int(np.ceil(max(*img0.shape, *img1.shape) / max_size)))
    a0, a1 = block_mean(img0, f), block_mean(img1, f)
    kw = dict(feature_kw or {})
    kw["sigma"] = max(1.0, kw.get("sigma", 1.5) / f)
    kw["presmooth"] = 0.5
    kw["margin"] = 1
    F0 = oriented_gradient_channels(a0, **kw)
    F1 = oriented_gradient_channels(a1, **kw)
    c = F0.channels.shape[0]
    m0 = F0.valid.astype(np.float32)
    m1 = F1.valid.astype(np.float32)
    (h0, w0), (h1, w1) = m0.shape, m1.shape
    shape = (sfft.next_fast_len(h0 + h1, real=True), sfft.next_fast_len(w0 + w1, real=True))
    s0, s1 = F0.channels.sum(0), F1.channels.sum(0)
    q0 = np.einsum("khw,khw->hw", F0.channels, F0.channels)
    q1 = np.einsum("khw,khw->hw", F1.channels, F1.channels)
    num = xcorr_full(F0.channels, F1.channels, shape, workers)
    ov = xcorr_full(m0, m1, shape, workers)
    s0m1 = xcorr_full(s0, m1, shape, workers)
    m0s1 = xcorr_full(m0, s1, shape, workers)
    q0m1 = xcorr_full(q0, m1, shape, workers)
    m0q1 = xcorr_full(m0, q1, shape, workers)
    ov = np.round(ov)
    n = np.maximum(ov, 1.0) * c
    cov = num - s0m1 * m0s1 / n
    v0 = q0m1 - s0m1 ** 2 / n
    v1 = m0q1 - m0s1 ** 2 / n
    ncc = cov / np.sqrt(np.maximum(v0 * v1, 1e-12))
    need = min_overlap * min(m0.sum(), m1.sum())
    dys = np.fft.fftfreq(shape[0], 1.0 / shape[0])[:, None]
    dxs = np.fft.fftfreq(shape[1], 1.0 / shape[1])[None, :]
    far = (np.abs(dys) > max_shift * max(h0, h1)) | (np.abs(dxs) > max_shift * max(w0, w1))
    ncc[(ov < max(need, 16)) | (v0 <= 1e-9) | (v1 <= 1e-9) | far] = -1.0
    iy, ix = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    peak = float(ncc[iy, ix])
    r = 2  # low-resolution px around the peak excluded for the second peak
    cy = np.minimum(np.abs(dys - dys[iy, 0]), shape[0] - np.abs(dys - dys[iy, 0]))
    cx = np.minimum(np.abs(dxs - dxs[0, ix]), shape[1] - np.abs(dxs - dxs[0, ix]))
    second = float(np.where((cy <= r) & (cx <= r), -1.0, ncc).max())
    near_mask = (np.abs(dys) * f <= near) & (np.abs(dxs) * f <= near)
    return GlobalOffset(float(dxs[0, ix] * f), float(dys[iy, 0] * f), peak, second,
                        float(np.where(near_mask, ncc, -1.0).max()), f)


def window_grid(shape: tuple[int, int], window: int, spacing: int) -> np.ndarray:
    """Top-left corners of a regular grid of ``window`` x ``window`` windows, centred.

    Returns:
        int ``(N, 2)`` ``(x0, y0)``; empty when the image is smaller than a window.
    """
    h, w = shape
    if h < window or w < window:
        return np.zeros((0, 2), np.int64)
    ny = (h - window) // spacing + 1
    nx = (w - window) // spacing + 1
    oy = (h - window - (ny - 1) * spacing) // 2
    ox = (w - window - (nx - 1) * spacing) // 2
    ys = oy + spacing * np.arange(ny)
    xs = ox + spacing * np.arange(nx)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.int64)


def box_sums(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over every ``k`` x ``k`` box of ``(H, W)``: ``(H-k+1, W-k+1)`` float64."""
    c = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1, out=c[1:, 1:])
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def reliability(ncc: np.ndarray, ncc2: np.ndarray, scale: float = 0.1) -> np.ndarray:
    """Reliability in ``[0, 1)`` of a correlation peak.

    ``u = (p1 - p2+) / (1 - p2+)`` with ``p1`` the NCC at the peak and ``p2+ = max(p2, 0)`` the
    best NCC outside the exclusion radius: the share of the NCC headroom above the best rival
    that the peak takes (0 when a rival is as good, 1 for a perfect unique peak). The score is
    ``1 - exp(-u / scale)``. Measured on real optical/SAR and visible/infrared pairs, ``u``
    ranked correct vs wrong matches best (AUC 0.86 / 0.98) among the peak NCC alone (0.54 /
    0.51), ``p1 - p2`` and the ratio ``p2 / p1``; ``scale = 0.1`` spreads typical
    cross-modal values (``u`` about 0.02 - 0.3) over the unit interval.
    """
    p1 = np.asarray(ncc, np.float64)
    p2 = np.maximum(np.asarray(ncc2, np.float64), 0.0)
    u = np.clip((p1 - p2) / np.maximum(1.0 - p2, 1e-6), 0.0, 1.0)
    return (1.0 - np.exp(-u / scale)).astype(np.float32)


def subpixel_peak(cc: np.ndarray, iy: np.ndarray, ix: np.ndarray, method: str) -> tuple[np.ndarray,
                                                                                      np.ndarray]:
    """Sub-pixel peak offsets ``(ddx, ddy)`` in ``[-0.5, 0.5]`` from the 3x3 neighbourhood.

    Args:
        cc: ``(N, S, S)`` correlation surfaces.
        iy, ix: ``(N,)`` integer peaks, interior (``1 <= i <= S-2``).
        method: ``"parabola"`` (separable 3-point quadratic), ``"gaussian"`` (quadratic on
            log values) or ``"none"``.
    """
    n = np.arange(len(iy))
    if method == "none" or len(iy) == 0:
        z = np.zeros(len(iy), np.float32)
        return z, z
    c0 = cc[n, iy, ix].astype(np.float64)
    xl, xr = cc[n, iy, ix - 1].astype(np.float64), cc[n, iy, ix + 1].astype(np.float64)
    yu, yd = cc[n, iy - 1, ix].astype(np.float64), cc[n, iy + 1, ix].astype(np.float64)
    if method == "gaussian":
        lo = 1e-6
        c0, xl, xr, yu, yd = (np.log(np.maximum(v, lo)) for v in (c0, xl, xr, yu, yd))
    den_x = xl - 2 * c0 + xr
    den_y = yu - 2 * c0 + yd
    ddx = np.where(den_x < -1e-12, 0.5 * (xl - xr) / np.where(den_x < -1e-12, den_x, -1), 0.0)
    ddy = np.where(den_y < -1e-12, 0.5 * (yu - yd) / np.where(den_y < -1e-12, den_y, -1), 0.0)
    return (np.clip(ddx, -0.5, 0.5).astype(np.float32), np.clip(ddy, -0.5, 0.5).astype(np.float32))


def match_windows(
    F0: Features,
    F1: Features,
    corners: np.ndarray,
    window: int,
    search: int,
    offset: tuple[int, int] = (0, 0),
    max_invalid: float = 0.05,
    exclusion: int = 3,
    subpixel: str = "parabola",
    batch: int = 64,
    workers: int = 1,
) -> WindowMatches:
    """Match template windows of image 0 against image 1 by FFT NCC of the channel stacks.

    Args:
        F0: features of image 0, channels ``(C, H0, W0)``.
        F1: features of image 1, channels ``(C, H1, W1)``.
        corners: int ``(N, 2)`` top-left ``(x0, y0)`` of windows fully inside image 0.
        window: template side (px).
        search: largest offset tried per axis (px), around ``offset``.
        offset: integer ``(dx, dy)`` prior offset of image 1 relative to image 0.
        max_invalid: largest invalid fraction tolerated in the matched window of image 1.
        exclusion: radius (px) around the peak excluded when looking for the second peak.
        subpixel: ``"parabola"``, ``"gaussian"`` or ``"none"``.
        batch: windows per FFT batch (memory: about ``batch * C * (window + 2 search)^2 * 12`` B).
        workers: scipy.fft workers.

    Returns:
        :class:`WindowMatches` with one row per window of ``corners``.
    """
    c = F0.channels.shape[0]
    n_win = len(corners)
    side = window + 2 * search
    nsh = 2 * search + 1
    fshape = (sfft.next_fast_len(side, real=True),) * 2
    odx, ody = int(offset[0]), int(offset[1])
    pad = search + max(abs(odx), abs(ody)) + 1
    # Padding so that every search region lies inside (image 1 may be smaller than image 0).
    pad_y = (pad, pad + max(0, F0.valid.shape[0] - F1.valid.shape[0]))
    pad_x = (pad, pad + max(0, F0.valid.shape[1] - F1.valid.shape[1]))
    ch1 = np.pad(F1.channels, ((0, 0), pad_y, pad_x))
    inv1 = np.pad(~F1.valid, (pad_y, pad_x), constant_values=True).astype(np.float32)
    sum1 = box_sums(ch1.sum(axis=0), window)
    sq1 = box_sums(np.einsum("khw,khw->hw", ch1, ch1), window)
    invb = box_sums(inv1, window)
    view0 = sliding_window_view(F0.channels, (window, window), axis=(1, 2))
    view1 = sliding_window_view(ch1, (side, side), axis=(1, 2))
    npx = float(c * window * window)
    out_d = np.zeros((n_win, 2), np.float32)
    p1 = np.full(n_win, -1.0, np.float32)
    p2 = np.full(n_win, -1.0, np.float32)
    keep = np.zeros(n_win, bool)
    ky, kx = np.mgrid[0:nsh, 0:nsh]
    for b0 in range(0, n_win, batch):
        cb = corners[b0:b0 + batch]
        nb = len(cb)
        x0, y0 = cb[:, 0], cb[:, 1]
        T = np.ascontiguousarray(view0[:, y0, x0].transpose(1, 0, 2, 3))  # (nb, C, w, w)
        T = T - T.mean(axis=(1, 2, 3), keepdims=True)
        tn = np.sqrt(np.einsum("nchw,nchw->n", T, T))
        sy = y0 - search + ody + pad  # search-region top-left in padded image 1
        sx = x0 - search + odx + pad
        S = view1[:, sy, sx].transpose(1, 0, 2, 3)  # (nb, C, side, side)
        ft = sfft.rfft2(T, s=fshape, workers=workers)
        fs = sfft.rfft2(S, s=fshape, workers=workers)
        num = sfft.irfft2((np.conj(ft) * fs).sum(axis=1), s=fshape, workers=workers)
        num = num[:, :nsh, :nsh]
        yy = sy[:, None, None] + ky[None]
        xx = sx[:, None, None] + kx[None]
        s_ = sum1[yy, xx]
        var = sq1[yy, xx] - s_ * s_ / npx
        den = tn[:, None, None] * np.sqrt(np.maximum(var, 0.0))
        cc = np.where(den > 1e-9, num / np.maximum(den, 1e-9), 0.0).astype(np.float32)
        flat = cc.reshape(nb, -1)
        arg = np.argmax(flat, axis=1)
        iy, ix = np.divmod(arg, nsh)
        best = flat[np.arange(nb), arg]
        excl = (np.abs(ky[None] - iy[:, None, None]) <= exclusion) & \
               (np.abs(kx[None] - ix[:, None, None]) <= exclusion)
        second = np.where(excl, -1.0, cc).reshape(nb, -1).max(axis=1)
        interior = (iy > 0) & (iy < nsh - 1) & (ix > 0) & (ix < nsh - 1) & (tn > 1e-6)
        iyc, ixc = np.clip(iy, 1, nsh - 2), np.clip(ix, 1, nsh - 2)
        ddx, ddy = subpixel_peak(cc, iyc, ixc, subpixel)
        invalid_frac = invb[sy + iy, sx + ix] / (window * window)
        sl = slice(b0, b0 + nb)
        out_d[sl, 0] = ix - search + odx + ddx
        out_d[sl, 1] = iy - search + ody + ddy
        p1[sl] = best
        p2[sl] = second
        keep[sl] = interior & (invalid_frac <= max_invalid)
    centres = corners.astype(np.float32) + np.float32((window - 1) / 2.0)
    pts1 = centres + out_d
    # The matched centre must fall on a valid pixel of image 1.
    h1, w1 = F1.valid.shape
    r = np.rint(pts1[:, 1]).astype(np.int64)
    q = np.rint(pts1[:, 0]).astype(np.int64)
    inside = (r >= 0) & (r < h1) & (q >= 0) & (q < w1)
    on_valid = np.zeros(n_win, bool)
    on_valid[inside] = F1.valid[r[inside], q[inside]]
    keep &= on_valid
    return WindowMatches(centres, pts1, p1, p2, reliability(p1, p2), keep)
