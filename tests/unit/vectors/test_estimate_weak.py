"""Maps against images that share almost no intensities (DEMs): answer right or raise, never move
the map by noise.

The ``correlate`` stage (map boundaries vs image edge strength) is checked on a terrain whose
plateau margins are the map's polygons; the split-half checks on noise and on a generated DEM
whose map layers (roads, parcels, buildings) are mostly invisible in elevation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from scipy import ndimage

from xgeo.errors import RegistrationError
from xgeo.vectors import align_vectors, load_image, read_vectors, vertex_rmse_px, write_vectors
from xgeo.vectors._estimate import correlate_structure, edge_strength

sys.path.insert(0, str(Path(__file__).parent))
from test_vectors_align import _displace  # noqa: E402


def _plateaus(rng: np.random.Generator, shape: tuple[int, int]) -> list[np.ndarray]:
    h, w = shape
    polys = []
    for _ in range(9):
        c = rng.uniform([40, 40], [w - 40, h - 40])
        ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
        r = rng.uniform(12, 40, 9)
        polys.append(np.stack([c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)], -1))
    return polys


def _similarity(deg: float, shift: tuple[float, float], centre: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D(tuple(centre), deg, 1.0)
    m[:2, 2] += shift
    return m


def test_correlate_recovers_similarity_on_plateau_margins() -> None:
    rng = np.random.default_rng(0)
    h, w = 320, 352
    polys = _plateaus(rng, (h, w))
    relief = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 25) * 400  # smooth hills
    mesa = np.zeros((h, w), np.float32)
    for p in polys:
        cv2.fillPoly(mesa, [np.round(p * 8).astype(np.int32)], 1.0, shift=3)
    dem = relief + 60 * ndimage.gaussian_filter(mesa, 1.0) + rng.normal(0, 2, (h, w))
    # the map is displaced: map pixel = truth^-1 (image pixel)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    truth = _similarity(0.6, (3.4, -2.7), centre)  # map px -> image px
    inv = np.linalg.inv(truth)
    edges = np.zeros((h * 4, w * 4), np.float32)
    for p in polys:
        q = p @ inv[:2, :2].T + inv[:2, 2]
        cv2.polylines(edges, [np.round(q * 4 * 8 + 12).astype(np.int32)], True, 1.0,
                      thickness=4, shift=3)
    edges = edges.reshape(h, 4, w, 4).mean((1, 3))
    m, info = correlate_structure(edge_strength(dem, 2.0), ndimage.gaussian_filter(edges, 1.0))
    pts = np.array([[20, 20, 1], [w - 20, 20, 1], [20, h - 20, 1], [w - 20, h - 20, 1.0]]).T
    err = np.hypot(*((m @ pts)[:2] - (truth @ pts)[:2]))
    assert err.max() < 0.6, (err, info)
    assert info["z"] > 6 and max(info["halves_px"]) < 1.0


def test_correlate_on_noise_is_not_valid() -> None:
    rng = np.random.default_rng(1)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, (256, 256)), 2.0)
    edges = np.zeros((256, 256), np.float32)
    cv2.rectangle(edges, (60, 50), (200, 190), 1.0, 1)
    _, info = correlate_structure(edge_strength(noise, 1.5), edges)
    assert info["z"] < 3.0 or max(info["halves_px"]) > 2.0, info


def test_generated_dem_vs_street_map_raises_rather_than_moving(tmp_path: Path) -> None:
    """Roads, parcels and buildings are invisible in elevation: no model is trustworthy."""
    synth = pytest.importorskip("xgeo.synth")
    world = synth.generate_world(3, (384, 384))
    dem = np.asarray(synth.render(world, "dem"), np.float32)
    p = tmp_path / "dem.tif"
    with rasterio.open(p, "w", driver="GTiff", width=384, height=384, count=1, dtype="float32",
                       crs=world.crs, transform=world.transform) as ds:
        ds.write(dem, 1)
    grid = load_image(p, modality="dem")
    layers = {k: v for k, v in world.vectors.items() if len(v)}
    write_vectors(_displace(layers, grid), tmp_path / "moved.gpkg")
    try:
        align_vectors(tmp_path / "moved.gpkg", grid, tmp_path / "fixed.gpkg",
                      matcher="classical", model="affine", overlay=False)
    except RegistrationError as exc:  # before the split-half check: moved 29 px by MI noise
        assert "both image halves: False" in str(exc)
        assert not (tmp_path / "fixed.gpkg").exists()
    else:
        after = vertex_rmse_px(layers, read_vectors(tmp_path / "fixed.gpkg"), grid)
        assert after <= 1.5, after


def test_exploradores_is_right_or_raises(real_data: Path, tmp_path: Path) -> None:
    """ASTER DEM vs RGI outlines: whatever the outcome, never a silently wrong correction."""
    folder = real_data / "exploradores_aster_dem_rgi"
    grid = load_image(folder / "AST_L1A_00303182012144228_Z.tif")
    orig = read_vectors(folder / "17_rgi60_glacier_outlines.gpkg")
    write_vectors(_displace(orig, grid), tmp_path / "moved.gpkg")
    try:
        align_vectors(tmp_path / "moved.gpkg", grid, tmp_path / "fixed.gpkg",
                      matcher="classical", model="affine", overlay=False)
    except RegistrationError as exc:
        assert "too little structure" in str(exc)
        assert not (tmp_path / "fixed.gpkg").exists()
    else:
        after = vertex_rmse_px(orig, read_vectors(tmp_path / "fixed.gpkg"), grid)
        assert after <= 1.5, after


def test_cue_scan_places_everest_outlines_but_not_exploradores(real_data: Path) -> None:
    """The evidence behind the Exploradores RegistrationError (tests/bench/dem_map_cues.py):
    the same shift scan that places the Everest outlines at their georeferenced position finds
    no agreeing cue near it on the ASTER DEM."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from dem_map_cues import _load, report

    ev = real_data / "everest_landsat7_rgi"
    rows = report("everest", *_load(ev / "LE71400412000304SGS00_B4.tif",
                                    ev / "15_rgi60_glacier_outlines.gpkg"), 12, echo=lambda _: None)
    assert sum(r["agree"] and r["near_zero"] for r in rows) >= 4, rows
    ex = real_data / "exploradores_aster_dem_rgi"
    rows = report("exploradores", *_load(ex / "AST_L1A_00303182012144228_Z.tif",
                                         ex / "17_rgi60_glacier_outlines.gpkg"), 12, echo=lambda _: None)
    assert not any(r["agree"] and r["near_zero"] for r in rows), rows
