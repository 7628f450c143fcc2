from __future__ import annotations

import numpy as np
import pytest

from xgeo.errors import ConfigError
from xgeo.synth import LANDCOVER, World, generate_world
from xgeo.synth.world import LC_BUILDING, LC_ROAD, LC_WATER

ARRAYS = ("dem", "landcover", "building_height", "tree_height", "road_mask", "water_mask",
          "parcel_id", "building_id", "urban_density")


def test_same_seed_byte_identical_and_different_seeds_differ() -> None:
    a = generate_world(3, (128, 160), pixel_size=15.0)
    b = generate_world(3, (128, 160), pixel_size=15.0)
    c = generate_world(4, (128, 160), pixel_size=15.0)
    for name in ARRAYS:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert not np.array_equal(a.dem, c.dem)
    assert a.dem.shape == (128, 160) and a.dem.dtype == np.float32
    assert a.landcover.dtype == np.uint8


def test_georeferencing_and_classes(world: World) -> None:
    assert world.crs == "EPSG:32633"
    t = world.transform
    assert (t.a, t.e, t.c, t.f) == (10.0, -10.0, 500000.0, 5300000.0)
    assert set(np.unique(world.landcover)) <= set(LANDCOVER)
    assert np.isfinite(world.dem).all()
    # classes are consistent with the masks they came from
    assert (world.landcover[world.road_mask] != LC_WATER).all()
    bh = world.building_height
    assert (bh[world.landcover == LC_BUILDING] > 0).all()
    assert (bh[world.landcover != LC_BUILDING] == 0).all()
    # pixel_to_crs uses the pixel-centre convention
    np.testing.assert_allclose(world.pixel_to_crs(np.array([[0.0, 0.0]])),
                               [[500005.0, 5299995.0]])


def test_world_has_every_ingredient() -> None:
    w = generate_world(7, (256, 256), pixel_size=10.0)
    counts = np.bincount(w.landcover.ravel(), minlength=9)
    assert counts[LC_ROAD] > 0 and counts[LC_BUILDING] > 0
    assert len(w.roads) > 0 and len(w.building_corners) > 0


def test_vectors_layers_and_alignment(rural_world: World) -> None:
    from rasterio import features

    v = rural_world.vectors
    assert set(v) == {"roads", "water", "buildings", "parcels"}
    for gdf in v.values():
        assert gdf.crs.to_string() == "EPSG:32633"
    roads = v["roads"]
    assert len(roads) == len(rural_world.roads) and (roads["width_m"] > 0).all()
    # road centre lines fall on road pixels (vector -> raster alignment)
    inv = ~rural_world.transform
    hits = []
    for geom in roads.geometry:
        pts = np.array([geom.interpolate(d).coords[0] for d in np.arange(0, geom.length, 20.0)])
        col = inv.a * pts[:, 0] + inv.b * pts[:, 1] + inv.c
        row = inv.d * pts[:, 0] + inv.e * pts[:, 1] + inv.f
        c, r = np.floor(col).astype(int), np.floor(row).astype(int)
        ok = (c >= 0) & (c < 256) & (r >= 0) & (r < 256)
        hits.append(rural_world.road_mask[r[ok], c[ok]])
    hits = np.concatenate(hits)
    assert hits.mean() > 0.97
    # parcels rasterised from the GeoPackage-ready polygons agree with parcel_id
    if len(v["parcels"]):
        ras = features.rasterize(((g, i + 1) for i, g in enumerate(v["parcels"].geometry)),
                                 out_shape=rural_world.shape, transform=rural_world.transform)
        m = rural_world.parcel_id >= 0
        agree = (ras[m] - 1 == rural_world.parcel_id[m]).mean()
        assert agree > 0.97
    # water polygons cover exactly the water mask
    if len(v["water"]):
        ras = features.rasterize(v["water"].geometry, out_shape=rural_world.shape,
                                 transform=rural_world.transform)
        assert np.array_equal(ras.astype(bool), rural_world.water_mask)


def test_crop_is_a_consistent_window(world: World) -> None:
    c = world.crop(30, 40, 100, 90)
    assert c.shape == (90, 100)
    np.testing.assert_array_equal(c.dem, world.dem[40:130, 30:130])
    assert c.transform.c == world.transform.c + 30 * world.pixel_size
    np.testing.assert_allclose(c.building_corners, world.building_corners - [30, 40])
    with pytest.raises(ConfigError):
        world.crop(200, 200, 100, 100)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ConfigError):
        generate_world(0, (8, 8))
    with pytest.raises(ConfigError):
        generate_world(0, (64, 64), pixel_size=0.0)


def test_mountain_wilderness_has_glaciers_on_high_smooth_ground() -> None:
    from xgeo.synth.world import LC_ICE, LC_URBAN

    w = generate_world(17, (192, 192), pixel_size=30.0, cities=False)
    lc = w.landcover
    ice = lc == LC_ICE
    assert 0.02 < ice.mean() < 0.6, ice.mean()
    assert not (ice & w.water_mask).any()
    assert not np.isin(lc, [LC_URBAN, LC_BUILDING]).any()  # wilderness: no towns
    land = ~ice & ~w.water_mask
    assert w.dem[ice].mean() > w.dem[land].mean() + 50.0  # above the snow line
    # ice surfaces are smoother than the rock around them (no fine roughness under the ice)
    import cv2

    lap = np.abs(cv2.Laplacian(w.dem.astype(np.float64), cv2.CV_64F))
    core = cv2.erode(ice.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    rock = cv2.erode(land.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert np.median(lap[core]) < 0.7 * np.median(lap[rock])


def test_cities_flag_only_removes_towns() -> None:
    from xgeo.synth.world import LC_URBAN

    a = generate_world(7, (256, 256), pixel_size=10.0)
    b = generate_world(7, (256, 256), pixel_size=10.0, cities=False)
    assert (a.landcover == LC_BUILDING).any() and not (b.landcover == LC_BUILDING).any()
    assert not (b.landcover == LC_URBAN).any() and len(b.building_corners) == 0
    np.testing.assert_array_equal(a.dem, b.dem)  # same terrain
