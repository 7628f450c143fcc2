"""Evaluation of matchers by the MatchAnything protocol, on synthetic and real cross-modal pairs.

    python -m training.eval --suite real --suite synthetic --n-real 50 --out training/runs/eval.json

Protocol: grayscale input, long side <= 832 px; an affine is fitted to each method's matches by
``cv2.estimateAffine2D`` (RANSAC, 3 px, confidence 0.99999); the error of a pair is the mean
distance of image 0's four corners mapped by the estimate and by the truth. Reported per pair type
and method: success rates SR@5/10/20 px, AUC@5/10/20 (area under the error-recall curve up to the
threshold, normalised), mean matches and seconds per pair.

Suites:
- ``synthetic``: held-out :func:`xgeo.synth.make_pair` pairs (seeds from 50,000,000, never used in
  training) for every modality combination, rotation up to 180 deg, scale 0.5-2, no local
  distortion and no perspective, so the truth is an exact affine (the protocol's estimator).
- ``real``: crops of the real pairs in ``../shared/data/real`` (never trained on). For each pair
  type, image 0 is a crop of the first image and image 1 the second image warped by a seeded
  random similarity (rotation 0-180 deg either way, scale 0.7-1.4, translation up to 10 %),
  through the pair's ground truth (identity of the shared grid, or an affine fitted to the
  authors' tie points). Outside the second image is NaN (0 for SIFT). The Landsat-8 subset is
  mostly cumulus and thin cloud, which move about 12 px between OLI and TIRS (parallax), so the
  identity holds on the ground only: image 0 (OLI) of the optical-thermal type is masked to
  cloud-free ground (:func:`landsat_cloud_mask`, from the product's own calibration; what it
  keeps is the scene's clear bottom strip), image 1 keeps its clouds.

:func:`run_eval` is the function behind ``python -m training.eval``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from xgeo.errors import ConfigError, MissingFileError

__all__ = [
    "EvalPair",
    "fit_affine",
    "corner_error",
    "auc",
    "real_suite",
    "synthetic_suite",
    "sift_match",
    "evaluate",
    "run_eval",
    "markdown_table",
    "merge_results",
    "compact_table",
    "common_valid_share",
    "overlap_table",
    "plot_curves",
    "REAL_PAIR_TYPES",
]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = (REPO / ".." / "shared" / "data" / "real").resolve()
REAL_PAIR_TYPES = (
    "optical-thermal (L8 B4 / B10)",
    "optical-infrared (CFOG)",
    "optical-SAR (CFOG)",
    "optical-SAR (S2 B08 / S1 VV)",
    "image-map (L7 B4 / RGI)",
    "DEM-map (ASTER hillshade / RGI)",
)


@dataclass(frozen=True)
class EvalPair:
    """One evaluation pair with its exact image-0 -> image-1 transform.

    Attributes:
        pair_type: group name in the tables.
        img0: float32 ``(H0, W0)`` in ``[0, 1]``, NaN invalid.
        img1: float32 ``(H1, W1)``.
        H_0to1: ``(3, 3)`` truth.
        seed: the seed that generated it.
    """

    pair_type: str
    img0: np.ndarray
    img1: np.ndarray
    H_0to1: np.ndarray
    seed: int


# -- metrics -------------------------------------------------------------------------------------
def fit_affine(p0: np.ndarray, p1: np.ndarray) -> np.ndarray | None:
    """Affine ``(2, 3)`` from image 0 to image 1 by ``cv2.estimateAffine2D`` RANSAC (3 px, 0.99999).

    Args:
        p0: ``(N, 2)`` points in image 0.
        p1: ``(N, 2)`` points in image 1.

    Returns:
        ``(2, 3)`` float64 or ``None`` with fewer than 3 matches or on failure.
    """
    if len(p0) < 3:
        return None
    a, _ = cv2.estimateAffine2D(
        np.asarray(p0, np.float64).reshape(-1, 1, 2), np.asarray(p1, np.float64).reshape(-1, 1, 2),
        method=cv2.RANSAC, ransacReprojThreshold=3.0, confidence=0.99999, maxIters=10000,
    )
    return a


def corner_error(a: np.ndarray | None, h_true: np.ndarray, shape: tuple[int, ...]) -> float:
    """Mean distance of the four warped image-0 corners: estimate ``a`` vs truth ``h_true``.

    Args:
        a: ``(2, 3)`` estimated affine (``None`` = failure -> ``inf``).
        h_true: ``(3, 3)`` true image-0 -> image-1 transform.
        shape: image-0 shape ``(H, W, ...)``.
    """
    if a is None:
        return float("inf")
    h, w = shape[:2]
    c = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    ch = np.c_[c, np.ones(4)]
    t = ch @ np.asarray(h_true, np.float64).T
    t = t[:, :2] / t[:, 2:]
    e = ch @ np.asarray(a, np.float64).T
    return float(np.linalg.norm(e - t, axis=1).mean())


def common_valid_share(img0: np.ndarray, img1: np.ndarray, h_0to1: np.ndarray) -> float:
    """Share of image 0's pixels that are valid (finite) in image 0 and whose true place in
    image 1 is inside image 1 and valid there: the ground the two images share.

    Args:
        img0: ``(H0, W0)``, NaN invalid. img1: ``(H1, W1)``, NaN invalid.
        h_0to1: ``(3, 3)`` true image-0 -> image-1 transform.
    """
    h, w = img0.shape[:2]
    v1 = np.isfinite(img1).astype(np.float32)
    # image 1's validity in image 0's frame (nearest: a pixel counts where its centre lands)
    back = cv2.warpPerspective(v1, np.asarray(h_0to1, np.float64), (w, h),
                               flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return float((np.isfinite(img0) & (back > 0.5)).mean())


def auc(errors: Sequence[float], threshold: float) -> float:
    """Area under the recall-vs-error curve up to ``threshold``, normalised to ``[0, 1]``."""
    e = np.sort(np.asarray(errors, np.float64))
    n = len(e)
    if n == 0:
        return 0.0
    recall = np.arange(1, n + 1) / n
    e = np.r_[0.0, e]
    recall = np.r_[0.0, recall]
    last = np.searchsorted(e, threshold)
    x = np.r_[e[:last], threshold]
    y = np.r_[recall[:last], recall[last - 1]]
    return float(np.trapezoid(y, x) / threshold)


# -- suites --------------------------------------------------------------------------------------
def _similarity(rng: np.random.Generator, size: tuple[int, int], max_rot: float,
                scale: tuple[float, float], shift: float) -> np.ndarray:
    h, w = size
    ang = np.deg2rad(rng.uniform(0.0, max_rot) * rng.choice([-1.0, 1.0]))
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    t = rng.uniform(-shift, shift, 2) * np.array([w, h])
    r = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = c + t - r @ c
    return m


def _read(path: Path, band: int = 1) -> tuple[np.ndarray, Any]:
    import rasterio

    if not path.is_file():
        raise MissingFileError("real evaluation data file not found", path,
                               "the real suite needs ../shared/data/real beside the checkout")
    with rasterio.open(path) as ds:
        if ds.count >= 3 and band == 0:
            a = ds.read([1, 2, 3]).astype(np.float32).mean(0)
        else:
            a = ds.read(max(band, 1)).astype(np.float32)
        if ds.nodata is not None:
            a[a == ds.nodata] = np.nan
        return a, ds


def _norm(a: np.ndarray) -> np.ndarray:
    from xgeo.matcher.base import as_gray

    return as_gray(a)


def _map_raster(gpkg: Path, ds: Any) -> np.ndarray:
    import geopandas as gpd
    from rasterio.features import rasterize

    gdf = gpd.read_file(gpkg).to_crs(ds.crs)
    shape = (ds.height, ds.width)
    fill = rasterize(((g, 1) for g in gdf.geometry), out_shape=shape, transform=ds.transform)
    edge = rasterize(((g.boundary, 1) for g in gdf.geometry), out_shape=shape,
                     transform=ds.transform)
    out = np.full(shape, 0.15, np.float32)
    out[fill > 0] = 0.6
    out[edge > 0] = 1.0
    return out


def _tie_affine(path: Path) -> np.ndarray:
    pts = np.loadtxt(path)
    a, _ = cv2.estimateAffine2D(np.ascontiguousarray(pts[:, :2]).reshape(-1, 1, 2),
                                np.ascontiguousarray(pts[:, 2:4]).reshape(-1, 1, 2), method=cv2.LMEDS)
    m = np.eye(3)
    m[:2] = a
    return m


def _mtl(path: Path) -> dict[str, float]:
    """Numeric ``KEY = value`` entries of a Landsat ``_MTL.txt``."""
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition("=")
        try:
            out[k.strip()] = float(v.strip().strip('"'))
        except ValueError:
            continue
    return out


def landsat_cloud_mask(red_dn: np.ndarray, tir_dn: np.ndarray, mtl: Path,
                       parallax_px: int = 16) -> np.ndarray:
    """Clouds of a Landsat-8 OLI/TIRS scene, thin ones included, widened by the cloud parallax.

    A pixel is cloud when it is cold at 10.9 um: brightness temperature more than 4 K below the
    scene's 90th percentile. Thick cloud is also bright in the red band; thin cloud (cirrus,
    haze) is not - its red reflectance is that of the ground beneath - but it is as cold and
    moves with parallax just the same. Measured on the shared subset: its top strip (red TOA
    reflectance 0.045 like the clear ground, 4 K colder) registers OLI to TIRS at the cloud
    parallax (+5, -11) px by mutual information, the clear bottom strip at (0, 0); a mask that
    also asked for bright red (reflectance > 0.08) kept that strip as ground. Cold water is masked
    too: it costs test area, never a wrong truth. Isolated pixels are removed and the mask is
    dilated by ``parallax_px`` because a cloud sits at a different place in the two instruments'
    images (about 12 px here). Warm ground, bright (towns, sand) or not, is kept.

    Args:
        red_dn: ``(H, W)`` OLI band 4 digital numbers.
        tir_dn: ``(H, W)`` TIRS band 10 digital numbers.
        mtl: the product's ``_MTL.txt`` (K1/K2 and scale factors of band 10).

    Returns:
        bool ``(H, W)``, True on (widened) cloud.
    """
    m = _mtl(mtl)
    rad = m["RADIANCE_MULT_BAND_10"] * tir_dn + m["RADIANCE_ADD_BAND_10"]
    with np.errstate(divide="ignore", invalid="ignore"):
        bt = m["K2_CONSTANT_BAND_10"] / np.log(m["K1_CONSTANT_BAND_10"] / np.maximum(rad, 1e-6) + 1.0)
    warm = float(np.nanpercentile(bt[tir_dn > 0], 90))
    cloud = ((bt < warm - 4.0) & (tir_dn > 0) & (red_dn > 0)).astype(np.uint8)
    cloud = cv2.morphologyEx(cloud, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    k = 2 * parallax_px + 1
    return cv2.dilate(cloud, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


def real_sources(root: Path) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The real image pairs as ``(imgA, imgB, A_to_B (3, 3))`` per pair type, normalised to [0, 1]."""
    from xgeo.synth import hillshade

    root = Path(root)
    eye = np.eye(3)
    src: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    l8 = root / "landsat8_oli_tirs"
    a, _ = _read(l8 / "l8_B4.tif")
    b, _ = _read(l8 / "l8_B10.tif")
    # the identity holds on the ground only: clouds move ~12 px between OLI and TIRS (parallax),
    # so image 0 (OLI) keeps only ground (see landsat_cloud_mask). Image 1 keeps its clouds: the
    # same mask in both images would be a shared outline that any matcher could follow.
    cloud = landsat_cloud_mask(a, b, l8 / "l8_MTL.txt")
    a[(a == 0) | cloud], b[b == 0] = np.nan, np.nan
    src[REAL_PAIR_TYPES[0]] = [(_norm(a), _norm(b), eye)]
    vi = root / "cfog_geotiff" / "visible-infrared_utm49"
    src[REAL_PAIR_TYPES[1]] = [(_norm(_read(vi / "test6_ref.tif")[0]), _norm(_read(vi / "test6_sen.tif")[0]),
                                _tie_affine(vi / "VisibletoInfrared_CP.txt"))]
    vs = root / "cfog_geotiff" / "optical-sar_utm33"
    src[REAL_PAIR_TYPES[2]] = [(_norm(_read(vs / "visible2_ref.tif", band=0)[0]),
                                _norm(_read(vs / "SAR2_sen.tif")[0]),
                                _tie_affine(vs / "visibleToSAR2_CP.txt"))]
    s12 = []
    up = 3.0
    for d in sorted((root / "bigearthnet_s1_s2").iterdir()):
        if not d.is_dir():
            continue
        b08 = next(d.glob("*_B08.tif"))
        vv = next(d.glob("*_VV.tif"))
        ia, ib = _read(b08)[0], _read(vv)[0]
        size = (int(ia.shape[1] * up), int(ia.shape[0] * up))
        ia = cv2.resize(ia, size, interpolation=cv2.INTER_CUBIC)
        ib = cv2.resize(ib, size, interpolation=cv2.INTER_CUBIC)
        s12.append((_norm(ia), _norm(ib), eye))
    src[REAL_PAIR_TYPES[3]] = s12
    ev = root / "everest_landsat7_rgi"
    img, ds = _read(ev / "LE71400412000304SGS00_B4.tif")
    src[REAL_PAIR_TYPES[4]] = [(_norm(img), _map_raster(ev / "15_rgi60_glacier_outlines.gpkg", ds), eye)]
    ex = root / "exploradores_aster_dem_rgi"
    dem, ds = _read(ex / "AST_L1A_00303182012144228_Z.tif")
    hs = hillshade(np.nan_to_num(dem, nan=float(np.nanmedian(dem))), pixel_size=float(ds.res[0]))
    hs = np.where(np.isfinite(dem), hs, np.nan).astype(np.float32)
    src[REAL_PAIR_TYPES[5]] = [(hs, _map_raster(ex / "17_rgi60_glacier_outlines.gpkg", ds), eye)]
    return src


def real_suite(root: str | Path = DEFAULT_REAL, n_per_type: int = 50, seed: int = 0,
               crop: int = 384, max_rotation_deg: float = 180.0,
               scale_range: tuple[float, float] = (0.7, 1.4)) -> list[EvalPair]:
    """Seeded crops of every real cross-sensor pair type with a random similarity applied.

    Args:
        root: ``shared/data/real`` folder.
        n_per_type: pairs per type.
        seed: base seed.
        crop: side of the image-0 crop (and of image 1) in px (smaller images use their size).
        max_rotation_deg: rotation drawn in ``[-max, max]``.
        scale_range: scale drawn log-uniformly.

    Raises:
        MissingFileError: the data folder or a file is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError("real data folder not found", root,
                               "place ../shared/data/real beside the checkout")
    pairs = []
    for ti, (ptype, sources) in enumerate(real_sources(root).items()):
        for k in range(n_per_type):
            s = seed * 1000 + ti * 100 + k
            rng = np.random.default_rng(s)
            ia, ib, g = sources[k % len(sources)]
            h, w = ia.shape
            cs = min(crop, h, w)
            best = (-1.0, 0, 0)
            for _ in range(20):  # crop with mostly valid content (else the most valid of 20)
                y0, x0 = int(rng.integers(0, h - cs + 1)), int(rng.integers(0, w - cs + 1))
                share = float(np.isfinite(ia[y0 : y0 + cs, x0 : x0 + cs]).mean())
                if share > best[0]:
                    best = (share, y0, x0)
                if share > 0.8:
                    break
            _, y0, x0 = best
            img0 = ia[y0 : y0 + cs, x0 : x0 + cs]
            sim = _similarity(rng, (cs, cs), max_rotation_deg, scale_range, 0.1)
            shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
            img1_to_b = g @ shift @ np.linalg.inv(sim)
            img1 = cv2.warpAffine(ib, img1_to_b[:2], (cs, cs), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
            pairs.append(EvalPair(ptype, np.ascontiguousarray(img0), img1.astype(np.float32), sim, s))
    return pairs


def synthetic_suite(n_per_combo: int = 2, size: int = 320, seed: int = 50_000_000,
                    modalities: Sequence[str] | None = None) -> list[EvalPair]:
    """Held-out synthetic pairs of every modality combination (exact homography truth)."""
    from xgeo.synth import MODALITIES, make_pair

    mods = list(modalities or MODALITIES)
    out = []
    k = 0
    for m0 in mods:
        for m1 in mods:
            for _ in range(n_per_combo):
                s = seed + k
                k += 1
                # affine truth: the protocol fits an affine, and with the engine's default
                # perspective even exact correspondences would miss the corners by 4-13 px
                p = make_pair(s, size=size, mod0=m0, mod1=m1, max_rotation_deg=180.0,
                              scale_range=(0.5, 2.0), local_distortion=False, perspective=0.0)
                out.append(EvalPair(f"{m0}-{m1}", np.asarray(p.img0, np.float32),
                                    np.asarray(p.img1, np.float32), np.asarray(p.H_0to1), s))
    return out


# -- methods -------------------------------------------------------------------------------------
def _u8(a: np.ndarray) -> np.ndarray:
    return (np.nan_to_num(a, nan=0.0) * 255).clip(0, 255).astype(np.uint8)


def sift_match(img0: np.ndarray, img1: np.ndarray, ratio: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV SIFT + Lowe ratio test. Returns ``p0 (N, 2)``, ``p1 (N, 2)``."""
    sift = cv2.SIFT_create(nfeatures=4000)
    k0, d0 = sift.detectAndCompute(_u8(img0), None)
    k1, d1 = sift.detectAndCompute(_u8(img1), None)
    if d0 is None or d1 is None or len(k0) < 2 or len(k1) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    mm = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d0, d1, k=2)
    good = [m[0] for m in mm if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    p0 = np.array([k0[m.queryIdx].pt for m in good]).reshape(-1, 2)
    p1 = np.array([k1[m.trainIdx].pt for m in good]).reshape(-1, 2)
    return p0, p1


#: a method: ``(img0, img1) -> (points0, points1)`` or ``(points0, points1, diagnostics)``
MatchFn = Callable[[np.ndarray, np.ndarray], tuple[Any, ...]]
#: methods ``run_eval`` knows; ``universal+structural`` refines the universal matches of the same
#: pair with the structural matcher (:mod:`xgeo.matcher.refined`)
METHODS = ("universal", "universal+structural", "classical", "sift")


def _xgeo_method(name: str, **opts: Any) -> MatchFn:
    import xgeo

    m = xgeo.load_matcher(name, **opts)

    def fn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        r = m.match(a, b)
        return r.points0, r.points1, _diagnostics(r.info)

    return fn


def _diagnostics(info: dict[str, Any]) -> dict[str, Any]:
    """What a learned match says about its own search: the hypothesis it kept (rotation of
    image 1's view in degrees, scale of the view) and the two best hypothesis supports (a clear
    winner has at least 30 and twice the runner-up; chance is about 10-25)."""
    out: dict[str, Any] = {}
    if "rotation_deg" in info:
        out["picked_deg"] = int(info["rotation_deg"])
    if "scale_view" in info:
        out["picked_scale"] = round(float(info["scale_view"]), 3)
    scores = sorted((float(v) for v in info.get("orientation_scores", {}).values()), reverse=True)
    if scores:
        out["support"] = [round(x, 1) for x in scores[:2]]
    if info.get("verify_scores"):  # the unclear search's candidates after their full-size rematch
        out["verify"] = {k: round(float(v), 1) for k, v in info["verify_scores"].items()}
    if info.get("equalize_scores"):  # equalize="auto": which contrast was kept, both results' scores
        out["contrast"] = {"kept": str(info.get("equalized", "none")),
                           **{k: round(float(v), 1) for k, v in info["equalize_scores"].items()}}
    return out


def _limit_side(a: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    s = min(1.0, max_side / max(a.shape))
    if s < 1.0:
        a = cv2.resize(a, (round(a.shape[1] * s), round(a.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return a, s


def evaluate(methods: dict[str, MatchFn], pairs: Sequence[EvalPair], max_side: int = 832,
             progress: bool = True) -> dict[str, Any]:
    """Run every method on every pair; return per-pair errors and per-type summaries.

    Returns:
        ``{"per_type": {type: {method: {sr5, sr10, sr20, auc5, auc10, auc20, n, matches, s}}},
        "overall": {method: {...}}, "pairs": [{type, seed, truth, errors: {method: px},
        matches: {method: n}, diagnostics: {method: {picked_deg, picked_scale, support}}}]}``
        (``truth``: rotation in degrees, scale, valid share of image 0 and ``overlap``, the share
        of image 0 valid in both images (:func:`common_valid_share`); diagnostics only for
        methods that report them, the learned matcher's search).
    """
    from rich.progress import track

    errs: dict[str, dict[str, list[float]]] = {}
    stats: dict[str, dict[str, list[float]]] = {}
    per_pair: list[dict[str, Any]] = []
    it = track(pairs, description="evaluating") if progress else pairs
    for pr in it:
        h = np.asarray(pr.H_0to1, np.float64) / pr.H_0to1[2, 2]
        truth = {"rotation_deg": round(float(np.degrees(np.arctan2(h[1, 0], h[0, 0]))), 1),
                 "scale": round(float(np.sqrt(abs(np.linalg.det(h[:2, :2])))), 3),
                 "valid0": round(float(np.isfinite(pr.img0).mean()), 3),
                 "overlap": round(common_valid_share(pr.img0, pr.img1, h), 3)}
        per_pair.append({"type": pr.pair_type, "seed": int(pr.seed), "truth": truth,
                         "errors": {}, "matches": {}, "diagnostics": {}})
        a, sa = _limit_side(pr.img0, max_side)
        b, sb = _limit_side(pr.img1, max_side)
        for name, fn in methods.items():
            t = time.perf_counter()
            diag: dict[str, Any] = {}
            try:
                out = fn(a, b)
                p0, p1 = out[0], out[1]
                diag = dict(out[2]) if len(out) > 2 else {}
            except Exception as exc:  # a failing method counts as a failure, never stops the run
                print(f"[eval] {name} failed on {pr.pair_type} seed {pr.seed}: {exc}")
                p0, p1 = np.zeros((0, 2)), np.zeros((0, 2))
            dt = time.perf_counter() - t
            p0 = (np.asarray(p0, np.float64) + 0.5) / sa - 0.5
            p1 = (np.asarray(p1, np.float64) + 0.5) / sb - 0.5
            e = corner_error(fit_affine(p0, p1), pr.H_0to1, pr.img0.shape)
            errs.setdefault(pr.pair_type, {}).setdefault(name, []).append(e)
            per_pair[-1]["errors"][name] = e if np.isfinite(e) else None
            per_pair[-1]["matches"][name] = len(p0)
            if diag:
                per_pair[-1]["diagnostics"][name] = diag
            st = stats.setdefault(f"{pr.pair_type}|{name}", {"matches": [], "s": []})
            st["matches"].append(len(p0))
            st["s"].append(dt)

    def summary(e: list[float], st: dict[str, list[float]]) -> dict[str, float]:
        ea = np.asarray(e)
        return {
            "n": len(ea),
            **{f"sr{t}": float((ea < t).mean()) for t in (5, 10, 20)},
            **{f"auc{t}": auc(ea, t) for t in (5, 10, 20)},
            "matches": float(np.mean(st["matches"])),
            "s": float(np.mean(st["s"])),
        }

    per_type = {
        t: {m: summary(e, stats[f"{t}|{m}"]) for m, e in d.items()} for t, d in errs.items()
    }
    overall = {}
    for m in methods:
        e = [x for d in errs.values() for x in d.get(m, [])]
        st = {"matches": [x for k, v in stats.items() if k.endswith(f"|{m}") for x in v["matches"]],
              "s": [x for k, v in stats.items() if k.endswith(f"|{m}") for x in v["s"]]}
        overall[m] = summary(e, st)
    return {"per_type": per_type, "overall": overall, "pairs": per_pair}


def markdown_table(res: dict[str, Any], metrics: Sequence[str] = ("sr5", "sr10", "sr20", "auc10")) -> str:
    """Per-type table: one row per (pair type, method)."""
    lines = ["| pair type | method | n | " + " | ".join(m.upper() for m in metrics) + " | matches | s/pair |",
             "|---|---|---|" + "---|" * len(metrics) + "---|---|"]
    rows = list(res["per_type"].items()) + [("ALL", res["overall"])]
    for t, d in rows:
        for m, s in d.items():
            vals = " | ".join(f"{100 * s[k]:.0f}%" if k.startswith("sr") else f"{s[k]:.3f}" for k in metrics)
            lines.append(f"| {t} | {m} | {s['n']} | {vals} | {s['matches']:.0f} | {s['s']:.2f} |")
    return "\n".join(lines)


def run_eval(
    suites: Sequence[str] = ("real", "synthetic"),
    methods: Sequence[str] = ("universal", "classical", "sift"),
    n_real: int = 50,
    n_synth: int = 2,
    real_root: str | Path = DEFAULT_REAL,
    weights: str | None = None,
    orientation_search: bool = True,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    fine_local: int | None = None,
    pair_types: Sequence[str] | None = None,
    scale_search: bool = True,
    threshold: float | None = None,
    search_side: int | None = None,
    options: dict[str, Any] | None = None,
    max_rotation_deg: float = 180.0,
    scale_range: tuple[float, float] = (0.7, 1.4),
    crop: int = 384,
) -> dict[str, Any]:
    """Evaluate matchers on the chosen suites (the function behind ``python -m training.eval``).

    Args:
        suites: any of ``"real"``, ``"synthetic"``.
        methods: any of ``METHODS``.
        n_real: pairs per real pair type.
        n_synth: pairs per synthetic modality combination.
        real_root: the real data folder.
        weights: universal-matcher ``.safetensors`` (None = shipped).
        orientation_search: universal matcher's orientation search (8 orientations, 45 deg apart).
        seed: suite seed.
        out: optional JSON path for the results.
        progress: show a progress bar.
        fine_local: universal matcher's fine readout radius (None = the weights' card).
        pair_types: keep only real pair types whose name contains one of these (case-insensitive;
            None = all); the pairs kept are the same as in a full run.
        scale_search: universal matcher's adaptive scale search.
        threshold: universal matcher's coarse threshold (None = the weights' card).
        search_side: universal matcher's search size (None = the card's training crop; 832 =
            search at full size, as before this option).
        options: further universal-matcher options (``xgeo.matcher.inference``), e.g.
            ``{"verify": 3}``; they override the ones above.
        max_rotation_deg, scale_range, crop: the real suite's geometry (:func:`real_suite`;
            the defaults are the issue's protocol: rotation 0-180 deg, scale 0.7-1.4, 384 px).

    Returns:
        ``{suite: evaluate(...) result, "methods": [...], "seconds": float}``.

    Raises:
        ConfigError: unknown suite or method.
    """
    bad = sorted(set(suites) - {"real", "synthetic"}) + sorted(set(methods) - set(METHODS))
    if bad:
        raise ConfigError(f"Unknown suite(s)/method(s) {bad}; suites: real, synthetic; "
                          f"methods: {', '.join(METHODS)}")
    fns: dict[str, MatchFn] = {}
    uni: Any = None
    last: dict[str, Any] = {}  # the universal result of the current pair, reused by the refined
    for m in methods:
        if m in ("universal", "universal+structural") and uni is None:
            import xgeo

            opts: dict[str, Any] = {"orientation_search": orientation_search,
                                    "scale_search": scale_search}
            if fine_local is not None:
                opts["fine_local"] = int(fine_local)
            if threshold is not None:
                opts["threshold"] = float(threshold)
            if search_side is not None:
                opts["search_side"] = int(search_side)
            if weights:
                opts["weights"] = weights
            uni = xgeo.load_matcher("universal", **{**opts, **(options or {})})
        if m == "universal":

            def fn_u(a: np.ndarray, b: np.ndarray, uni: Any = uni
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
                r = uni.match(a, b)
                last.update(key=(id(a), id(b)), matches=r)
                return r.points0, r.points1, _diagnostics(r.info)

            fns[m] = fn_u
        elif m == "universal+structural":
            from xgeo.matcher import as_gray
            from xgeo.matcher.refined import RefinedMatcher

            ref = RefinedMatcher(coarse=uni)

            def fn_r(a: np.ndarray, b: np.ndarray, ref: Any = ref) -> tuple[np.ndarray, np.ndarray]:
                # same pair as the universal call just before: refine its matches (the timing
                # then counts the refinement only)
                if last.get("key") == (id(a), id(b)):
                    r = ref.refine(as_gray(a), as_gray(b), last["matches"])
                else:
                    r = ref.match(a, b)
                return r.points0, r.points1

            fns[m] = fn_r
        elif m == "classical":
            fns[m] = _xgeo_method("classical")
        else:
            fns[m] = sift_match
    t = time.perf_counter()
    res: dict[str, Any] = {"methods": list(methods)}
    for s in suites:
        pairs = (real_suite(real_root, n_real, seed, crop, max_rotation_deg, tuple(scale_range))
                 if s == "real" else synthetic_suite(n_synth, seed=50_000_000 + seed))
        if pair_types and s == "real":
            pairs = [p for p in pairs if any(k.lower() in p.pair_type.lower() for k in pair_types)]
            if not pairs:
                raise ConfigError(f"No real pair type matches {list(pair_types)}; types: "
                                  f"{', '.join(REAL_PAIR_TYPES)}")
        res[s] = evaluate(fns, pairs, progress=progress)
        if out:  # write partial results as we go
            Path(out).write_text(json.dumps(res, indent=2))
    res["seconds"] = time.perf_counter() - t
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(res, indent=2))
    return res


def compact_table(res: dict[str, Any], metric: str = "sr10") -> str:
    """One row per pair type, one column per method (``metric`` in percent)."""
    methods = list(res["overall"])
    lines = ["| pair type | n | " + " | ".join(f"{m} {metric.upper()}" for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for t, d in list(res["per_type"].items()) + [("ALL", res["overall"])]:
        n = next(iter(d.values()))["n"]
        cells = " | ".join(f"{100 * d[m][metric]:.0f}%" if m in d else "-" for m in methods)
        lines.append(f"| {t} | {n} | {cells} |")
    return "\n".join(lines)


def pair_table(res: dict[str, Any], method: str = "universal", failures_only: bool = True,
               threshold: float = 10.0) -> str:
    """One row per pair of ``method`` (by default the failures at ``threshold`` px): the truth
    (rotation, scale, valid share of image 0, share valid in both), the error, the matches and, where the method
    reports them, the hypothesis it kept, the two best supports and the two best verification
    scores (the unclear search's candidates after their full-size rematch), and the contrast
    kept by ``equalize="auto"`` with both results' scores (none / clahe)."""
    lines = ["| pair type | seed | rotation | scale | valid0 | overlap | error px | matches | kept | "
             "support | verify | contrast |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for q in res.get("pairs", []):
        if method not in q.get("errors", {}):
            continue
        e = q["errors"][method]
        if failures_only and e is not None and e < threshold:
            continue
        t, d = q.get("truth", {}), q.get("diagnostics", {}).get(method, {})
        kept = f"{d['picked_deg']} @ {d.get('picked_scale', 1.0):g}" if "picked_deg" in d else "-"
        ver = sorted(d.get("verify", {}).values(), reverse=True)[:2]
        con = d.get("contrast")
        con_s = f"{con['kept']} ({con.get('none', 0):g} / {con.get('clahe', 0):g})" if con else "-"
        lines.append(
            f"| {q['type']} | {q['seed']} | {t.get('rotation_deg', '-')} | {t.get('scale', '-')} | "
            f"{t.get('valid0', '-')} | {t.get('overlap', '-')} | {'fail' if e is None else f'{e:.1f}'} | "
            f"{q.get('matches', {}).get(method, '-')} | {kept} | "
            f"{' / '.join(str(x) for x in d.get('support', [])) or '-'} | "
            f"{' / '.join(str(x) for x in ver) or '-'} | {con_s} |")
    return "\n".join(lines)


OVERLAP_BINS = (0.0, 0.06, 0.08, 0.10, 0.15, 0.25, 1.0)


def overlap_table(results: Sequence[dict[str, Any]], metric_px: float = 10.0,
                  bins: Sequence[float] = OVERLAP_BINS) -> str:
    """Success rate at ``metric_px`` by the ground the two images share (``truth["overlap"]``,
    :func:`common_valid_share`), one row per pair type and method, pooled over ``results`` (the
    ``"real"`` or ``"synthetic"`` parts of one or more runs, e.g. several seeds).

    Cells are ``SR (n)``; a bin without pairs is ``-``.

    Raises:
        ConfigError: no pair carries an overlap (a result saved before it was recorded).
    """
    rows: dict[tuple[str, str], list[list[bool]]] = {}
    for res in results:
        for q in res.get("pairs", []):
            ov = q.get("truth", {}).get("overlap")
            if ov is None:
                continue
            b = min(int(np.searchsorted(bins, ov, side="right")) - 1, len(bins) - 2)
            for m, e in q.get("errors", {}).items():
                cells = rows.setdefault((q["type"], m), [[] for _ in bins[:-1]])
                cells[b].append(e is not None and e < metric_px)
    if not rows:
        raise ConfigError("no pair carries its overlap (results saved before training.eval "
                          "recorded it); rerun the evaluation")
    heads = [f"{100 * lo:.0f}-{100 * hi:.0f} %" for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
    lines = [f"| pair type | method | {' | '.join(heads)} |", "|---|---|" + "---|" * len(heads)]
    for (t, m), cells in rows.items():
        txt = [f"{100 * np.mean(c):.0f}% ({len(c)})" if c else "-" for c in cells]
        lines.append(f"| {t} | {m} | {' | '.join(txt)} |")
    return "\n".join(lines)


def plot_curves(res: dict[str, Any], path: str | Path, max_px: float = 20.0) -> Path:
    """Success rate against the error threshold, one panel per real pair type (and one for the
    whole synthetic suite), one curve per method; the 10 px bar dashed.

    Args:
        res: a :func:`run_eval` result (or its JSON).
        path: PNG to write.
        max_px: right end of the threshold axis.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    panels: list[tuple[str, dict[str, list[float]]]] = []
    for suite in ("real", "synthetic"):
        pairs = res.get(suite, {}).get("pairs", [])
        groups: dict[str, dict[str, list[float]]] = {}
        for q in pairs:
            key = q["type"] if suite == "real" else "synthetic suite (all combinations)"
            for m, e in q.get("errors", {}).items():
                groups.setdefault(key, {}).setdefault(m, []).append(np.inf if e is None else float(e))
        panels += list(groups.items())
    if not panels:
        raise ConfigError("nothing to plot: the result holds no per-pair errors")
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    x = np.linspace(0.0, max_px, 201)
    methods = list(dict.fromkeys(res.get("methods", [])) or
                   dict.fromkeys(m for _, g in panels for m in g))
    for ax, (title, errs) in zip(axes, panels, strict=False):
        for m in methods:
            if m in errs:
                e = np.asarray(errs[m])
                ax.plot(x, 100.0 * (e[None, :] < x[:, None]).mean(1), lw=1.6, label=m)
        ax.axvline(10.0, color="0.5", ls="--", lw=0.8)
        ax.set_title(f"{title} (n={len(next(iter(errs.values())))})", fontsize=8)
        ax.set_xlim(0, max_px)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.set_xlabel("corner error threshold (px)", fontsize=8)
        ax.set_ylabel("pairs matched (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def merge_results(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Add the methods of result ``b`` (same suites, seeds and pair counts) to result ``a``."""
    out = json.loads(json.dumps(a))
    for suite in ("real", "synthetic"):
        if suite not in a or suite not in b:
            continue
        for t, d in b[suite]["per_type"].items():
            for m, s in d.items():
                out[suite]["per_type"].setdefault(t, {}).setdefault(m, s)
        for m, s in b[suite]["overall"].items():
            out[suite]["overall"].setdefault(m, s)
        byid = {(q["type"], q["seed"]): q for q in out[suite].get("pairs", [])}
        for q in b[suite].get("pairs", []):
            if (q["type"], q["seed"]) in byid:
                for key in ("errors", "matches", "diagnostics"):
                    for m, e in q.get(key, {}).items():
                        byid[(q["type"], q["seed"])].setdefault(key, {}).setdefault(m, e)
    out["methods"] = list(dict.fromkeys(list(a.get("methods", [])) + list(b.get("methods", []))))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", action="append", choices=["real", "synthetic"])
    ap.add_argument("--method", action="append", choices=list(METHODS))
    ap.add_argument("--n-real", type=int, default=50)
    ap.add_argument("--n-synth", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0,
                    help="suite seed: another seed draws other crops and transforms (default 0)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--no-orientation-search", action="store_true")
    ap.add_argument("--no-scale-search", action="store_true")
    ap.add_argument("--search-side", type=int, default=None,
                    help="long side of the universal matcher's search pass (default: the card's "
                         "training crop; 832 searches at full size)")
    ap.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                    help="universal-matcher option (repeatable; value parsed as JSON), "
                         "e.g. --option verify=3")
    ap.add_argument("--real-root", default=str(DEFAULT_REAL))
    ap.add_argument("--max-rotation", type=float, default=180.0, metavar="DEG",
                    help="real suite: rotation drawn in [-DEG, DEG] (default 180, the protocol's)")
    ap.add_argument("--scale-range", default="0.7,1.4", metavar="LO,HI",
                    help="real suite: scale drawn log-uniformly in [LO, HI] (default 0.7,1.4)")
    ap.add_argument("--crop", type=int, default=384,
                    help="real suite: side of the crops in px (default 384; smaller images keep their size)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--fine-local", type=int, default=None,
                    help="fine readout radius of the universal matcher (default: the weights' card)")
    ap.add_argument("--pair-type", action="append", default=None,
                    help="only real pair types whose name contains this (repeatable), e.g. thermal")
    ap.add_argument("--out", default=None)
    ap.add_argument("--pairs", choices=["failures", "all"], default=None,
                    help="also print one row per pair of the first method (truth, error, matches, "
                         "the learned matcher's kept hypothesis and supports)")
    ap.add_argument("--merge", default=None, help="JSON of an earlier run whose methods are added to the tables")
    ap.add_argument("--load", action="append", default=None, metavar="JSON",
                    help="print (and --plot) the result of an earlier run instead of running; "
                         "repeatable: the tables show the first, --by-overlap pools every run's "
                         "pairs (e.g. seeds)")
    ap.add_argument("--by-overlap", action="store_true",
                    help="also print SR@10 by the ground the two images share (the share of "
                         "image 0 valid in both), per pair type and method")
    ap.add_argument("--plot", default=None, metavar="PNG",
                    help="also draw success rate against error threshold per pair type")
    a = ap.parse_args(argv)
    from xgeo.cli import matcher_options

    try:
        lo, hi = (float(x) for x in a.scale_range.split(","))
    except ValueError:
        ap.error(f"--scale-range {a.scale_range!r}: expected LO,HI, e.g. 0.9,1.1")
    if not (0 < lo <= hi) or not (0 <= a.max_rotation <= 180) or a.crop < 64:
        ap.error("real-suite geometry out of range: need 0 < LO <= HI, 0 <= --max-rotation <= 180 "
                 "and --crop >= 64")

    options = dict(matcher_options(a.option))
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
        cv2.setNumThreads(a.threads)
    runs: list[dict[str, Any]] = []
    if a.load:
        for src in map(Path, a.load):
            if not src.is_file():
                raise MissingFileError("evaluation result not found", src,
                                       "pass a JSON written by --out")
            runs.append(json.loads(src.read_text()))
        res = runs[0]
        a.suite = a.suite or [k for k in ("real", "synthetic") if k in res]
    else:
        res = run_eval(a.suite or ["real", "synthetic"], a.method or ["universal", "classical", "sift"],
                       a.n_real, a.n_synth, a.real_root, a.weights, not a.no_orientation_search,
                       seed=a.seed, out=a.out,
                       fine_local=a.fine_local, pair_types=a.pair_type,
                       scale_search=not a.no_scale_search, search_side=a.search_side,
                       options=options, max_rotation_deg=a.max_rotation,
                       scale_range=(lo, hi), crop=a.crop)
    if a.merge:
        res = merge_results(res, json.loads(Path(a.merge).read_text()))
        if runs:  # the by-overlap table pools the merged first run
            runs[0] = res
        if a.out:
            Path(a.out).write_text(json.dumps(res, indent=2))
    for s in a.suite or ["real", "synthetic"]:
        print(f"\n## {s}\n")
        print(markdown_table(res[s]))
        if a.pairs:
            m = (a.method or ["universal"])[0]
            print(f"\n### {s}: {a.pairs} of {m} (SR@10)\n")
            print(pair_table(res[s], m, failures_only=a.pairs == "failures"))
        if a.by_overlap:
            pooled = [r[s] for r in (runs or [res]) if s in r]
            print(f"\n### {s}: SR@10 by the share of image 0 valid in both images "
                  f"({len(pooled)} run{'s' if len(pooled) > 1 else ''})\n")
            print(overlap_table(pooled))
    if a.plot:
        print(f"\nplot: {plot_curves(res, a.plot)}")
    print(f"\n{res.get('seconds', 0.0):.0f} s")


if __name__ == "__main__":
    main()
