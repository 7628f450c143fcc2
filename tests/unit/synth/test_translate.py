from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xgeo.errors import ConfigError
from xgeo.synth import TRANSLATORS, translate

REAL = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real").resolve()


def _test_image() -> np.ndarray:
    """RGB uint16 image with a bright square and a diagonal stripe on texture."""
    rng = np.random.default_rng(0)
    img = rng.integers(1000, 1100, (96, 128, 3)).astype(np.uint16)
    img[30:60, 40:80] = [6000, 5000, 4000]
    yy, xx = np.mgrid[0:96, 0:128]
    img[np.abs(xx - yy - 10) < 3] = [200, 300, 500]
    return img


@pytest.mark.parametrize("kind", TRANSLATORS)
def test_translators_contract(kind: str) -> None:
    img = _test_image()
    a, b = translate(img, kind, 3), translate(img, kind, 3)
    assert a.shape == (96, 128) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.01
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, translate(img, kind, 4)) or kind == "edges"
    # single-band and channels-first inputs work too
    assert translate(img[..., 0], kind, 1).shape == (96, 128)
    assert translate(np.moveaxis(img, -1, 0), kind, 1).shape == (96, 128)


def _edge_shift(a: np.ndarray, b: np.ndarray, r: int = 4) -> float:
    """Integer shift (px) maximising the correlation of the edge-strength maps of a and b."""
    import cv2

    def grad(x: np.ndarray) -> np.ndarray:
        x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), 2.0)
        x = (x - x.mean()) / (x.std() + 1e-9)
        g = np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))
        return cv2.GaussianBlur(g, (0, 0), 1.5)

    ga, gb = grad(a), grad(b)
    h, w = ga.shape
    core = ga[r:h - r, r:w - r] - ga[r:h - r, r:w - r].mean()
    best, arg = -np.inf, (0, 0)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            win = gb[r + dy:h - r + dy, r + dx:w - r + dx]
            c = float((core * (win - win.mean())).sum())
            if c > best:
                best, arg = c, (dx, dy)
    return float(np.hypot(*arg))


@pytest.mark.parametrize("kind", [k for k in TRANSLATORS if k != "event_like"])
def test_translators_keep_geometry(kind: str) -> None:
    img = _test_image()
    gray = img.astype(np.float32).mean(axis=-1)
    # integer search: speckle / polarity / segment outlines allow one pixel either way
    assert _edge_shift(gray, translate(img, kind, 2)) <= 1.5


def test_translators_on_real_landsat(real_data: Path) -> None:
    import rasterio

    bands = []
    for b in ("l8_B4.tif", "l8_B3.tif", "l8_B2.tif"):
        with rasterio.open(real_data / "landsat8_oli_tirs" / b) as ds:
            bands.append(ds.read(1, window=((100, 356), (100, 356))))
    rgb = np.stack(bands, -1)
    gray = rgb.astype(np.float32).mean(-1)
    for kind in ("pseudo_thermal", "sar_like", "style", "posterize"):
        out = translate(rgb, kind, 0)
        assert out.shape == (256, 256) and out.std() > 0.02
        assert _edge_shift(gray, out) <= 1.5, kind
    assert _edge_shift(gray, np.roll(gray, 3, axis=1)) == 3.0  # the check can fail


def test_unknown_translator() -> None:
    with pytest.raises(ConfigError):
        translate(np.zeros((8, 8)), "cartoon", 0)
