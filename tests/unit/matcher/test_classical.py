"""Tests of the classical structural matcher (``xgeo.load_matcher("classical")``).

Synthetic round trips (``__synthetic``) with a known sub-pixel shift and a modality change, NaN
handling, options, and real cross-modal pairs from ``../shared/data/real`` through the ``real_data`` fixture of
``tests/conftest.py`` (skipped if absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

import xgeo
from xgeo.errors import ConfigError
from xgeo.matcher.classical import StructuralMatcher

SHIFT_XY = (3.4, -2.7)  # content at p in image 0 is at p + SHIFT_XY in image 1


def _read(path: Path) -> np.ndarray:
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(path) as ds:
        a = ds.read().astype(np.float32)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


def _structured(n: int, seed: int) -> np.ndarray:
    """Seeded ``(n, n)`` float32 image in [0, 1]: smooth noise plus disks and rectangles."""
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.standard_normal((n, n)), 3)
    low = ndimage.gaussian_filter(rng.standard_normal((n, n)), 16)
    img = 0.25 * tex / tex.std() + 0.5 * low / low.std()
    yy, xx = np.mgrid[0:n, 0:n]
    for _ in range(n * n // 4400):
        cx, cy = rng.uniform(0, n, 2)
        r = rng.uniform(8, 50)
        img += rng.uniform(-1, 1) * ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)
    for _ in range(n * n // 8800):
        x0, y0 = rng.integers(0, n - 20, 2)
        w, h = rng.integers(10, 80, 2)
        img[y0:y0 + h, x0:x0 + w] += rng.uniform(-1, 1)
    return ((img - img.min()) / np.ptp(img)).astype(np.float32)


def _other_modality(img: np.ndarray, rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
    """Contrast inversion, a non-linear intensity map and noise."""
    out = 1.0 - np.clip(img, 0.0, 1.0)
    out = out ** 2.2 + 0.3 * np.sin(3.0 * out)
    return (out + noise * rng.standard_normal(out.shape)).astype(np.float32)


def _shift_xy(img: np.ndarray, dxy: tuple[float, float], cval: float = np.nan) -> np.ndarray:
    return ndimage.shift(img, (dxy[1], dxy[0]), order=3, mode="constant", cval=cval)


@pytest.fixture(scope="module")
def cross_modal_pair() -> tuple[np.ndarray, np.ndarray]:
    img0 = _structured(512, seed=0)
    img1 = _other_modality(_shift_xy(img0, SHIFT_XY, cval=0.5), np.random.default_rng(1))
    return img0, img1


# --- contract and options -------------------------------------------------------------------


def test_load_matcher_classical_and_describe() -> None:
    m = xgeo.load_matcher("classical", window=48)
    assert isinstance(m, StructuralMatcher)
    assert "classical" in xgeo.available_matchers()
    d = m.describe()
    assert d["name"] == "classical" and d["window"] == 48 and d["search"] == 24
    assert set(d) == {"name", *StructuralMatcher.default_conf}
    json.dumps(d)  # JSON-able: used in cache keys
    assert xgeo.load_matcher("classical").describe() != d


def test_unknown_option_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError, match="allowed:.*'window'"):
        xgeo.load_matcher("classical", windw=32)


@pytest.mark.parametrize("bad", [{"window": 4}, {"search": 0}, {"subpixel": "cubic"},
                                 {"min_score": 1.5}, {"sigma": -1.0}, {"spacing": 2.5}])
def test_bad_option_values_raise(bad: dict) -> None:
    with pytest.raises(ConfigError):
        StructuralMatcher(**bad)


def test_tiny_flat_and_empty_inputs_give_empty_matches() -> None:
    m = StructuralMatcher()
    assert len(m.match(np.zeros((40, 40), np.float32), np.zeros((40, 40), np.float32))) == 0
    flat = np.full((200, 200), 7.0, np.float32)
    r = m.match(flat, flat)
    assert len(r) == 0 and r.points0.shape == (0, 2)
    nan = np.full((200, 200), np.nan, np.float32)
    assert len(m.match(nan, _structured(200, 3))) == 0


# --- synthetic round trips -------------------------------------------------------------------


def test_cross_modal_subpixel_shift__synthetic(cross_modal_pair) -> None:
    img0, img1 = cross_modal_pair
    r = StructuralMatcher().match(img0, img1)
    err = np.hypot(*(r.points1 - r.points0 - np.float32(SHIFT_XY)).T)
    assert len(r) >= 60
    assert np.median(err) < 0.2
    assert np.mean(err < 1.0) > 0.95
    assert r.points0.dtype == np.float32 and r.confidence.dtype == np.float32
    assert np.all((r.confidence >= 0) & (r.confidence <= 1))
    # Integer peaks alone are off by about (0.4, 0.3): the sub-pixel refinement matters.
    r0 = StructuralMatcher(subpixel="none").match(img0, img1)
    err0 = np.hypot(*(r0.points1 - r0.points0 - np.float32(SHIFT_XY)).T)
    assert np.median(err0) > 0.4


def test_any_dtype_and_channels__synthetic(cross_modal_pair) -> None:
    img0, img1 = cross_modal_pair
    rgb16 = np.repeat((img0 * 60000).astype(np.uint16)[..., None], 3, axis=2)
    r = StructuralMatcher().match(rgb16, (img1 * 200).astype(np.float64))
    err = np.hypot(*(r.points1 - r.points0 - np.float32(SHIFT_XY)).T)
    assert len(r) >= 60 and np.median(err) < 0.25


def test_images_of_different_sizes__synthetic(cross_modal_pair) -> None:
    img0, img1 = cross_modal_pair
    r = StructuralMatcher().match(img0, img1[:400, :450])
    err = np.hypot(*(r.points1 - r.points0 - np.float32(SHIFT_XY)).T)
    assert len(r) >= 40 and np.median(err) < 0.2
    assert np.all((r.points1 >= 0) & (r.points1 < np.float32((450, 400))))


def test_global_search_extends_range__synthetic() -> None:
    big = _structured(800, seed=3)
    dx, dy = 128, -96  # a quarter / a fifth of the 512 px image
    img0 = big[140:652, 140:652]
    img1 = _other_modality(big[140 + dy:652 + dy, 140 + dx:652 + dx], np.random.default_rng(2))
    truth = np.float32((-dx, -dy))
    r = StructuralMatcher().match(img0, img1)
    err = np.hypot(*(r.points1 - r.points0 - truth).T)
    assert r.info["offset_used"] == (-dx, -dy)
    assert len(r) >= 30 and np.median(err) < 0.3
    r_local = StructuralMatcher(global_search=False).match(img0, img1)
    err_local = np.hypot(*(r_local.points1 - r_local.points0 - truth).T)
    assert np.sum(err_local < 1.0) <= 2


def test_nan_regions_get_no_points__synthetic(cross_modal_pair) -> None:
    img0, img1 = (a.copy() for a in cross_modal_pair)
    img0[100:260, 150:330] = np.nan  # a hole in image 0
    img1[:, 400:] = np.nan  # an edge of the swath in image 1
    m = StructuralMatcher(max_invalid=0.0)
    r = m.match(img0, img1)
    assert len(r) >= 30
    win = m.conf["window"] // 2
    x0, y0 = r.points0.T
    # No window of image 0 touches the hole (max_invalid=0): centres stay >= win/2 px away.
    assert not np.any((x0 > 150 - win) & (x0 < 330 + win - 1) & (y0 > 100 - win) & (y0 < 260 + win - 1))
    # No matched point, nor its window, in the invalid part of image 1.
    assert np.all(r.points1[:, 0] < 400 - win + 0.5)
    err = np.hypot(*(r.points1 - r.points0 - np.float32(SHIFT_XY)).T)
    assert np.median(err) < 0.2
    # With the default tolerance (5 % invalid), points may sit near but never on NaN pixels.
    r5 = StructuralMatcher().match(img0, img1)
    p0 = np.rint(r5.points0).astype(int)
    p1 = np.rint(r5.points1).astype(int)
    assert np.all(np.isfinite(img0[p0[:, 1], p0[:, 0]]))
    assert np.all(np.isfinite(img1[p1[:, 1], p1[:, 0]]))


# --- real cross-modal pairs ------------------------------------------------------------------


def test_landsat8_optical_vs_thermal_shift(real_data: Path) -> None:
    d = real_data / "landsat8_oli_tirs"
    red = _read(d / "l8_B4.tif")
    thermal = _shift_xy(_read(d / "l8_B10.tif"), SHIFT_XY)  # NaN where shifted in
    r = StructuralMatcher().match(red, thermal)
    # Clouds show OLI/TIRS parallax (README): judge on the cloud-free ground strip (bottom).
    ok = (r.confidence >= 0.3) & (r.points0[:, 1] >= 460)
    assert ok.sum() >= 10
    off = np.median(r.points1[ok] - r.points0[ok], axis=0)
    assert np.hypot(*(off - np.float32(SHIFT_XY))) < 0.5


def test_cfog_optical_vs_sar_against_tie_points(real_data: Path) -> None:
    d = real_data / "cfog_geotiff" / "optical-sar_utm33"
    r = StructuralMatcher().match(_read(d / "visible2_ref.tif"), _read(d / "SAR2_sen.tif"))
    assert len(r) >= 50
    A, inliers = cv2.estimateAffine2D(r.points0, r.points1, ransacReprojThreshold=3.0)
    assert A is not None and inliers.sum() >= 40
    cp = np.loadtxt(d / "visibleToSAR2_CP.txt").astype(np.float32) - 1.0  # 1-based -> 0-based
    pred = cp[:, :2] @ A[:, :2].T + A[:, 2]
    rmse = float(np.sqrt(np.mean(np.sum((pred - cp[:, 2:]) ** 2, axis=1))))
    assert rmse < 2.0


def test_cfog_visible_vs_infrared_identity(real_data: Path) -> None:
    d = real_data / "cfog_geotiff" / "visible-infrared_utm49"
    r = StructuralMatcher().match(_read(d / "test6_ref.tif"), _read(d / "test6_sen.tif"))
    err = np.hypot(*(r.points1 - r.points0).T)
    assert len(r) >= 300
    assert np.median(err) < 0.4 and np.mean(err < 1.0) > 0.9


def test_bigearthnet_s2_vs_s1_small_patches(real_data: Path) -> None:
    # 120 px patches: small windows, and a search range that fits georeferenced S1/S2 data.
    m = StructuralMatcher(window=32, spacing=24, search=8)
    offsets = []
    for pair in sorted((real_data / "bigearthnet_s1_s2").iterdir()):
        nir = _read(next(pair.glob("*_B08.tif")))
        vv = _read(next(pair.glob("*_VV.tif")))
        r = m.match(nir, vv)
        assert len(r) >= 3, pair.name
        offsets.append(r.points1 - r.points0)
    assert len(offsets) == 6
    # S1/S2 geolocation differ by about 1.5 px (README); single 120 px SAR patches are noisy.
    per_pair = [np.hypot(*np.median(o, axis=0)) for o in offsets]
    assert sum(p < 2.5 for p in per_pair) >= 4
    assert np.hypot(*np.median(np.concatenate(offsets), axis=0)) < 2.5
