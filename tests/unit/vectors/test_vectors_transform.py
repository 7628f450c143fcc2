"""Geometry transformation: exact for affine, per-vertex for non-linear models, CRS kept."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS
from rasterio.transform import from_origin

from xgeo.geometry import AffineModel, PolynomialModel, ShiftModel, fit_model
from xgeo.vectors import hillshade, pixel_matrices, render_map, transform_layers

T0 = from_origin(500000.0, 5300000.0, 10.0, 10.0)  # as in conftest.py


def _pix(gdf, crs=CRS.from_epsg(32633)):
    w2p, _ = pixel_matrices(T0)
    xy = shapely.get_coordinates(gdf.to_crs(crs).geometry.values)
    return xy @ w2p[:2, :2].T + w2p[:2, 2]


def test_affine_is_exact_in_pixel_frame(square_layers) -> None:
    m = AffineModel(np.array([[0.999, -0.02, 3.4], [0.02, 0.999, -2.7]]))
    out = transform_layers(square_layers, m, T0, CRS.from_epsg(32633))
    for k in square_layers:
        np.testing.assert_allclose(_pix(out[k]), m(_pix(square_layers[k])), atol=1e-6)
        assert out[k].crs == square_layers[k].crs
        assert list(out[k].columns) == list(square_layers[k].columns)


def test_other_crs_roundtrip(square_layers) -> None:
    geo = {k: v.to_crs(4326) for k, v in square_layers.items()}
    m = ShiftModel(1.5, -2.0)
    out = transform_layers(geo, m, T0, CRS.from_epsg(32633))
    assert out["fields"].crs.to_epsg() == 4326
    np.testing.assert_allclose(_pix(out["fields"]), _pix(geo["fields"]) + [1.5, -2.0], atol=1e-5)


def test_polynomial_densifies_and_moves_each_vertex(square_layers) -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 160, (60, 2))
    dst = src + 0.002 * (src - 80) ** 2 / 10 + [1.0, 0.5]
    model = fit_model(src, dst, "poly2")
    assert isinstance(model, PolynomialModel)
    out = transform_layers(square_layers, model, T0, CRS.from_epsg(32633), densify_px=2.0)
    n_in = len(shapely.get_coordinates(square_layers["fields"].geometry.values))
    p_out = _pix(out["fields"])
    assert len(p_out) > 4 * n_in  # densified: an 80x60 px square at 2 px segments
    # every output vertex is the model image of a point on the input boundary
    w2p, _ = pixel_matrices(T0)
    back = model.inverse(p_out)
    ring = shapely.get_coordinates(square_layers["fields"].geometry.values)
    ring_px = ring @ w2p[:2, :2].T + w2p[:2, 2]
    poly_px = shapely.Polygon(ring_px)
    d = shapely.distance(shapely.points(back), poly_px.exterior)
    assert float(np.max(d)) < 1e-3


def test_render_map_antialiased_and_hillshade(square_layers) -> None:
    r = render_map(square_layers, (128, 160), T0)
    assert r.shape == (128, 160) and r.dtype == np.float32
    assert 0.0 <= r.min() and r.max() <= 1.0
    assert r[60, 80] > 0.3 and r[5, 5] == 0.0  # inside the polygon vs far outside
    dem = np.add.outer(np.arange(50.0), np.zeros(40)) * 10.0  # slope facing north (rows down)
    dem[0, 0] = np.nan
    hs = hillshade(dem, 10.0)
    assert np.isnan(hs).sum() >= 1 and np.nanstd(hs[5:-5, 5:-5]) < 1e-6
