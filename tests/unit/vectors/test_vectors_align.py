"""End-to-end alignment: generated worlds (exact truth) and real glacier outlines.

The vectors are displaced by a shift of (+3.4, -2.7) px and a 0.5 degree rotation about the
image centre; the corrected vertices must return to the original positions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from xgeo.errors import RegistrationError
from xgeo.vectors import (
    align_vectors,
    load_image,
    read_vectors,
    register_image_to_vectors,
    vertex_rmse_px,
    write_vectors,
)


def _displace(layers, grid, shift=(3.4, -2.7), angle=0.5):
    h, w = grid.shape
    t = grid.transform
    cx, cy = t @ (w / 2, h / 2)
    ps = grid.pixel_size
    out = {}
    for k, v in layers.items():
        u = v.to_crs(grid.crs)
        # +x px is +easting; -y px (up) is +northing
        u["geometry"] = u.geometry.rotate(angle, origin=(cx, cy)).translate(
            shift[0] * ps, -shift[1] * ps)
        out[k] = u.to_crs(v.crs)
    return out


@pytest.fixture(scope="module")
def synth_case(tmp_path_factory) -> tuple[Path, dict, Path]:
    synth = pytest.importorskip("xgeo.synth")
    world = synth.generate_world(3, (384, 384))
    if not hasattr(world, "vectors"):
        pytest.skip("xgeo.synth World has no .vectors yet")
    img = np.asarray(synth.render(world, "optical"), np.float32)
    if img.ndim == 2:
        img = img[None]
    elif img.shape[-1] <= 4 and img.shape[0] > 4:
        img = np.moveaxis(img, -1, 0)
    d = tmp_path_factory.mktemp("synth")
    p = d / "optical.tif"
    with rasterio.open(p, "w", driver="GTiff", width=img.shape[2], height=img.shape[1],
                       count=img.shape[0], dtype="float32", crs=world.crs,
                       transform=world.transform) as ds:
        ds.write(img)
    layers = {k: v for k, v in world.vectors.items() if len(v)}
    return p, layers, d


def test_synth_world_returns_within_half_pixel(synth_case) -> None:
    img_path, layers, d = synth_case
    grid = load_image(img_path)
    moved = _displace(layers, grid)
    write_vectors(moved, d / "moved.gpkg")
    before = vertex_rmse_px(layers, moved, grid)
    res = align_vectors(d / "moved.gpkg", grid, d / "fixed.gpkg", matcher="classical",
                        report=d / "fix.json")
    fixed = read_vectors(d / "fixed.gpkg")
    after = vertex_rmse_px(layers, fixed, grid)
    assert before > 4.0
    assert after <= 0.5, (after, res.info)
    # layers, attributes and CRS preserved; report and overlay written
    assert list(fixed) == list(layers)
    for k in layers:
        assert len(fixed[k]) == len(layers[k])
        assert fixed[k].crs == layers[k].crs
        assert set(layers[k].columns) <= set(fixed[k].columns)
    rep = json.loads((d / "fix.json").read_text())
    assert rep["status"] == "ok" and rep["matcher"] == "classical"
    assert rep["map_to_image_pixel"] is not None
    assert (d / "fix_overlay.png").stat().st_size > 10_000


def test_reverse_image_registered_to_map(synth_case) -> None:
    img_path, layers, d = synth_case
    grid = load_image(img_path)
    # the map is trusted; shift the *image* content by resampling it 2.5 px to the right
    with rasterio.open(img_path) as ds:
        prof, a = ds.profile, ds.read()
    from scipy.ndimage import shift as nd_shift

    moved = np.stack([nd_shift(b, (0.0, 2.5), order=1, mode="nearest") for b in a])
    mov_path = d / "optical_shifted.tif"
    with rasterio.open(mov_path, "w", **prof) as ds:
        ds.write(moved.astype(prof["dtype"]))
    write_vectors(layers, d / "truth.gpkg")
    res = register_image_to_vectors(mov_path, d / "truth.gpkg", d / "registered.tif",
                                    matcher="classical", model="shift")
    c = res.model(np.array([[192.0, 192.0]]))[0] - 192.0
    assert abs(c[0] - 2.5) < 0.5 and abs(c[1]) < 0.5, c
    with rasterio.open(d / "registered.tif") as ds:
        out = ds.read(1)
        assert ds.transform == grid.transform
    inner = (slice(20, -20), slice(20, -20))
    err_before = np.abs(moved[0] - a[0])[inner].mean()
    err_after = np.abs(out - a[0])[inner].mean()
    assert err_after < 0.5 * err_before


def test_everest_outlines_return_within_1_5_px(real_data: Path, tmp_path: Path) -> None:
    folder = real_data / "everest_landsat7_rgi"
    grid = load_image(folder / "LE71400412000304SGS00_B4.tif")
    orig = read_vectors(folder / "15_rgi60_glacier_outlines.gpkg")
    moved = _displace(orig, grid)
    write_vectors(moved, tmp_path / "moved.gpkg")
    before = vertex_rmse_px(orig, moved, grid)
    res = align_vectors(tmp_path / "moved.gpkg", grid, tmp_path / "fixed.gpkg",
                        matcher="classical", model="affine", overlay=False)
    after = vertex_rmse_px(orig, read_vectors(tmp_path / "fixed.gpkg"), grid)
    assert before > 4.0
    assert after <= 1.5, (after, res.info)
    assert read_vectors(tmp_path / "fixed.gpkg")["glacier_outlines"].crs.to_epsg() == 4326


@pytest.mark.slow
@pytest.mark.xfail(reason="ASTER L1A DEM vs RGI outlines: no cue is reproducible - 4 of ~25 tie "
                          "points agree, best MI 0.007 nats, and the slope-vs-boundary correlation "
                          "peak (z 2.6) is found by only one checkerboard half - so align_vectors "
                          "raises RegistrationError (see test_estimate_weak); open item",
                   raises=RegistrationError, strict=True)
def test_exploradores_outlines_on_dem_hillshade(real_data: Path, tmp_path: Path) -> None:
    folder = real_data / "exploradores_aster_dem_rgi"
    grid = load_image(folder / "AST_L1A_00303182012144228_Z.tif")
    assert grid.modality == "dem"
    orig = read_vectors(folder / "17_rgi60_glacier_outlines.gpkg")
    moved = _displace(orig, grid)
    write_vectors(moved, tmp_path / "moved.gpkg")
    res = align_vectors(tmp_path / "moved.gpkg", grid, tmp_path / "fixed.gpkg",
                        matcher="classical", model="affine", overlay=False)
    assert len(res.invalid) > 0  # RGI multipolygons with self-intersections: reported, kept
    after = vertex_rmse_px(orig, read_vectors(tmp_path / "fixed.gpkg"), grid)
    assert after <= 1.5, (after, res.info)


def test_no_shared_structure_raises_instead_of_moving(tmp_path: Path, square_layers) -> None:
    from rasterio.transform import from_origin

    noise = np.random.default_rng(0).integers(0, 255, (160, 200)).astype(np.uint8)
    p = tmp_path / "noise.tif"
    with rasterio.open(p, "w", driver="GTiff", width=200, height=160, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000.0, 5300000.0, 10.0, 10.0)
                       ) as ds:
        ds.write(noise, 1)
    write_vectors(square_layers, tmp_path / "map.gpkg")
    with pytest.raises(RegistrationError, match="too little structure"):
        align_vectors(tmp_path / "map.gpkg", p, tmp_path / "out.gpkg", matcher="classical",
                      overlay=False)
    assert not (tmp_path / "out.gpkg").exists()
