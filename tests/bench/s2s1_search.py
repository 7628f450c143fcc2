"""How much shared structure do the Sentinel-2 / Sentinel-1 suite pairs hold? An exhaustive search.

    python tests/bench/s2s1_search.py [--n 50] [--sigma 1.0] [--rot-step 3]

The real suite's S2 B08 / S1 VV pairs (``training.eval.real_suite``, the same 50 pairs the
matchers are scored on) are 120 px BigEarthNet patches at 10 m, upsampled 3x, with a seeded
similarity (rotation 0-180 deg either way, scale 0.7-1.4, translation) on the S1 side. This
script asks what a matcher that looks everywhere could find: at the patches' native 10 m, it
compares the smoothed gradient magnitude of image 0, rotated and scaled over a full grid
(``--rot-step`` degrees x 9 scales from 0.66 to 1.5), with image 1's at every translation
(masked normalised cross-correlation by FFT, at least half of image 0 overlapping), keeps the
best peak, and scores it by the suite's own metric (mean corner error of image 0, px of the
upsampled images) - SR@10 next to the learned matcher's figure of the same suite. The search
knows nothing of the truth; it is a yardstick of the pairs, not a matcher to ship (about 20 s
a pair on 2 cores; session 8: SR@10 20 % against the learned matcher's 10 %, README).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from scipy import fft

from training.eval import REAL_PAIR_TYPES, corner_error, real_suite
from xgeo.matcher._structural import block_mean, subpixel_peak
from xgeo.vectors._estimate import edge_strength

UP = 3.0  # the suite's upsampling of the 120 px patches
SCALES = tuple(float(s) for s in np.geomspace(0.66, 1.5, 9))
MIN_OVERLAP = 0.5  # share of image 0's valid pixels that must overlap image 1


def _edges_native(a: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, valid)`` at 10 m: NaN-aware block means back from the upsampled grid, then the
    smoothed gradient magnitude (both sensors' edges, whatever their polarity), 0 off ``valid``."""
    b = block_mean(a, int(UP))
    valid = np.isfinite(b)
    return np.nan_to_num(edge_strength(b, sigma)) * valid, valid


class MaskedNCC:
    """Masked normalised cross-correlation of many templates ``f`` against one image ``g`` at
    every integer shift (Padfield's six correlations by FFT; ``g``'s transforms are kept).

    :meth:`__call__` returns ``(ncc, overlap)`` on the full correlation grid: index ``(i, j)``
    is the shift ``(dy, dx) = (i - (hf - 1), j - (wf - 1))`` that maps a pixel of ``f`` onto
    ``g``.
    """

    def __init__(self, g: np.ndarray, mg: np.ndarray, max_template: tuple[int, int]) -> None:
        self.hg, self.wg = g.shape
        self.fs = [fft.next_fast_len(self.hg + max_template[0] - 1),
                   fft.next_fast_len(self.wg + max_template[1] - 1)]
        m = mg.astype(np.float64)
        g = g * m
        self.G = [fft.rfft2(x, self.fs, workers=-1) for x in (m, g, g * g)]

    def __call__(self, f: np.ndarray, mf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hf, wf = f.shape
        shape = (hf + self.hg - 1, wf + self.wg - 1)
        m = mf.astype(np.float64)
        f = f * m
        # sum over x of a(x) b(x + t) is the convolution of the flipped a with b
        mf_, f1, f2 = (fft.rfft2(x[::-1, ::-1], self.fs, workers=-1) for x in (m, f, f * f))
        gm, g1, g2 = self.G

        def inv(x: np.ndarray) -> np.ndarray:
            return fft.irfft2(x, self.fs, workers=-1)[: shape[0], : shape[1]]

        n = np.round(inv(mf_ * gm))
        sf, sg, sff, sgg, sfg = inv(f1 * gm), inv(mf_ * g1), inv(f2 * gm), inv(mf_ * g2), inv(f1 * g1)
        with np.errstate(divide="ignore", invalid="ignore"):
            num = sfg - sf * sg / n
            den = np.sqrt(np.maximum(sff - sf**2 / n, 0) * np.maximum(sgg - sg**2 / n, 0))
            ncc = np.where((n > 0) & (den > 1e-9), num / den, 0.0)
        return ncc, n


def _similarity(theta_deg: float, scale: float, centre: tuple[float, float]) -> np.ndarray:
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D(centre, theta_deg, scale)
    return m


def search(img0: np.ndarray, img1: np.ndarray, sigma: float, rot_step: float) -> np.ndarray:
    """Best image-0 -> image-1 similarity ``(3, 3)`` in upsampled pixels, by exhaustive search
    over rotation and scale (then a finer grid around the best) and every translation."""
    ea, va = _edges_native(img0, sigma)
    eb, vb = _edges_native(img1, sigma)
    h, w = ea.shape
    c = ((w - 1) / 2.0, (h - 1) / 2.0)
    side = int(np.ceil(max(h, w) * max(SCALES) * 1.08 * 1.42))
    corr = MaskedNCC(eb, vb, (side, side))
    need = MIN_OVERLAP * va.sum()

    def score(theta: float, scale: float) -> tuple[float, np.ndarray]:
        r = _similarity(theta, scale, c)  # image 0 -> rotated/scaled, centred on a canvas
        off = np.array([[1, 0, (side - w) / 2], [0, 1, (side - h) / 2], [0, 0, 1]])
        m = off @ r
        f = cv2.warpAffine(ea, m[:2], (side, side), flags=cv2.INTER_LINEAR)
        mf = cv2.warpAffine(va.astype(np.uint8), m[:2], (side, side), flags=cv2.INTER_NEAREST) > 0
        ncc, n = corr(f, mf)
        ncc[n < need] = -1.0
        i, j = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
        di = dj = 0.0
        if 0 < i < ncc.shape[0] - 1 and 0 < j < ncc.shape[1] - 1:
            ddx, ddy = subpixel_peak(ncc[None], np.array([i]), np.array([j]), "parabola")
            di, dj = float(ddy[0]), float(ddx[0])
        t = np.array([[1, 0, j + dj - (side - 1)], [0, 1, i + di - (side - 1)], [0, 0, 1]])
        return float(ncc[i, j]), t @ m

    coarse = [(theta, s) for s in SCALES for theta in np.arange(0.0, 360.0, rot_step)]
    scored = [(score(th, s), th, s) for th, s in coarse]
    (best, _), th0, s0 = max(scored, key=lambda x: x[0][0])
    ratio = SCALES[1] / SCALES[0]
    fine = [(th0 + d, s0 * ratio**e) for d in np.linspace(-rot_step / 2, rot_step / 2, 7)
            for e in np.linspace(-0.5, 0.5, 5)]
    m = max((score(th, s) for th, s in fine), key=lambda x: x[0])[1]
    up = np.array([[UP, 0, (UP - 1) / 2], [0, UP, (UP - 1) / 2], [0, 0, 1]])  # native -> upsampled
    return up @ m @ np.linalg.inv(up)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="pairs (the suite's first N of the type)")
    ap.add_argument("--sigma", type=float, default=1.0, help="smoothing before the gradient, 10 m px")
    ap.add_argument("--rot-step", type=float, default=3.0)
    a = ap.parse_args(argv)
    pairs = [p for p in real_suite(n_per_type=a.n) if p.pair_type == REAL_PAIR_TYPES[3]]
    errs, t = [], time.perf_counter()
    for p in pairs:
        est = search(p.img0, p.img1, a.sigma, a.rot_step)
        e = corner_error(est[:2], p.H_0to1, p.img0.shape)
        errs.append(e)
        print(f"seed {p.seed}: corner error {e:8.1f} px", flush=True)
    e = np.asarray(errs)
    print(f"\n{len(e)} S2/S1 pairs, exhaustive edge search (sigma {a.sigma}, {a.rot_step} deg x "
          f"{len(SCALES)} scales): SR@5 {np.mean(e < 5):.0%}  SR@10 {np.mean(e < 10):.0%}  "
          f"SR@20 {np.mean(e < 20):.0%}  ({(time.perf_counter() - t) / len(e):.1f} s a pair)")


if __name__ == "__main__":
    main()
