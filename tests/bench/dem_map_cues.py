"""Is there any cue that places glacier outlines on a raster? A shift scan, per cue.

For each raster-derived feature and each map-derived feature, the correlation over integer
shifts in [-R, R]^2 (valid pixels only), on the whole raster and on each half of a 64 px
checkerboard. A cue that can register the map peaks at the same shift in all three and
stands out (z = (peak - median) / std of the correlation surface). The georeferenced
position is (0, 0); the alignment tests demand 1.5 px.

Cases: the Exploradores ASTER DEM vs its RGI outlines (the open acceptance case of
``align-vectors``), and as a control the Everest Landsat-7 band 4 vs its RGI outlines, which
``align-vectors`` registers to 1.2 px.

Usage::

    python tests/bench/dem_map_cues.py [--real ../shared/data/real] [--radius 12]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from scipy import ndimage

from xgeo.vectors._estimate import _checkerboard, edge_strength

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


def _load(raster: Path, gpkg: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(raster) as ds:
        a = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
        outlines = gpd.read_file(gpkg).to_crs(ds.crs)
        fill = rasterize([(g, 1) for g in outlines.geometry], out_shape=a.shape,
                         transform=ds.transform).astype(np.float64)
    return a, fill


def _band(a: np.ndarray, s: float) -> np.ndarray:
    return ndimage.gaussian_filter(a, s) - ndimage.gaussian_filter(a, 4 * s)


def _roughness(a: np.ndarray) -> np.ndarray:
    r = a - ndimage.gaussian_filter(a, 2.0)
    return np.sqrt(np.maximum(ndimage.uniform_filter(r * r, 5), 0.0))


def scan(img: np.ndarray, mp: np.ndarray, valid: np.ndarray, radius: int) -> np.ndarray:
    """Correlation of ``img`` with ``mp`` circularly shifted by (dy, dx), over valid pixels.

    Exact masked normalised cross-correlation from three FFT correlations (the map is valid
    everywhere, so only its sums over the moving window need the mask).
    """
    core = np.zeros_like(valid)
    core[radius:-radius, radius:-radius] = True
    v = (valid & core).astype(np.float64)
    n = v.sum()
    a = np.where(v > 0, img - img[v > 0].mean(), 0.0)
    fm, fm2 = np.fft.rfft2(mp), np.fft.rfft2(mp * mp)

    def corr(x: np.ndarray, f: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(np.fft.rfft2(x) * np.conj(f), s=mp.shape)

    num, s1, s2 = corr(a, fm), corr(v, fm), corr(v, fm2)
    den = np.sqrt((a * a).sum() * np.maximum(s2 - s1 * s1 / n, 1e-12))
    c = num / den
    idx = np.arange(-radius, radius + 1)
    return c[np.ix_(idx % mp.shape[0], idx % mp.shape[1])]


def peak(c: np.ndarray, radius: int) -> tuple[int, int, float]:
    """``(dx, dy, z)`` of the largest |correlation|."""
    a = np.abs(c)
    i, j = np.unravel_index(int(np.argmax(a)), a.shape)
    return int(j - radius), int(i - radius), float((a.max() - np.median(a)) / (a.std() + 1e-12))


def cues(raster: np.ndarray, fill: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    filled = np.where(np.isfinite(raster), raster, np.nanmean(raster))
    boundary = ndimage.gaussian_filter(
        (ndimage.binary_dilation(fill > 0) ^ (fill > 0)).astype(np.float64), 1.0)
    signed = np.clip(ndimage.distance_transform_edt(fill > 0)
                     - ndimage.distance_transform_edt(fill == 0), -15, 15)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in (1.0, 3.0):
        out[f"gradient (sigma {s:g}) vs boundary"] = (edge_strength(filled, s).astype(np.float64),
                                                       boundary)
    out["roughness vs fill"] = (_roughness(filled), fill)
    for s in (1.0, 2.0, 4.0):
        out[f"band-pass {s:g}-{4 * s:g} px vs fill"] = (_band(filled, s), _band(fill, s))
        out[f"band-pass {s:g}-{4 * s:g} px vs signed distance"] = (_band(filled, s), _band(signed, s))
    return out


def report(name: str, raster: np.ndarray, fill: np.ndarray, radius: int,
           echo: Callable[[str], None] = print) -> list[dict[str, object]]:
    h, w = raster.shape
    valid = ndimage.binary_erosion(np.isfinite(raster), iterations=3)
    board, other = _checkerboard((h, w), 64)
    echo(f"\n{name}: shift (dx, dy) px and z of the peak; whole / checkerboard half A / half B")
    echo("| cue | whole | half A | half B | agrees, within 1.5 px of (0, 0) |")
    echo("|---|---|---|---|---|")
    rows = []
    for cue, (img, mp) in cues(raster, fill).items():
        res = [peak(scan(img, mp, valid & sel, radius), radius)
               for sel in (np.ones_like(board), board, other)]
        agree = max(np.hypot(r[0] - res[0][0], r[1] - res[0][1]) for r in res) <= 2.0
        near = all(np.hypot(r[0], r[1]) <= 1.5 for r in res)
        cells = " | ".join(f"({r[0]:+d}, {r[1]:+d}) z {r[2]:.1f}" for r in res)
        echo(f"| {cue} | {cells} | {'yes' if agree else 'no'}, {'yes' if near else 'no'} |")
        rows.append({"cue": cue, "peaks": res, "agree": agree, "near_zero": near})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", default=str(REAL))
    ap.add_argument("--radius", type=int, default=12)
    a = ap.parse_args(argv)
    real = Path(a.real)
    ex = real / "exploradores_aster_dem_rgi"
    report("Exploradores ASTER DEM vs RGI outlines",
           *_load(ex / "AST_L1A_00303182012144228_Z.tif", ex / "17_rgi60_glacier_outlines.gpkg"),
           a.radius)
    ev = real / "everest_landsat7_rgi"
    report("Everest Landsat-7 B4 vs RGI outlines (control)",
           *_load(ev / "LE71400412000304SGS00_B4.tif", ev / "15_rgi60_glacier_outlines.gpkg"),
           a.radius)


if __name__ == "__main__":
    main()
