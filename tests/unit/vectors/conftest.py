"""Fixtures for the vector-alignment tests: a small georeferenced image and vector files."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

CRS_UTM = "EPSG:32633"
T0 = from_origin(500000.0, 5300000.0, 10.0, 10.0)


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    """A 128x160 uint8 GeoTIFF (EPSG:32633, 10 m) with a bright square."""
    a = np.full((128, 160), 40, np.uint8)
    a[30:90, 40:120] = 200
    p = tmp_path / "img.tif"
    with rasterio.open(p, "w", driver="GTiff", width=160, height=128, count=1, dtype="uint8",
                       crs=CRS_UTM, transform=T0) as d:
        d.write(a, 1)
    return p


@pytest.fixture
def square_layers() -> dict[str, gpd.GeoDataFrame]:
    """Two layers (polygons, lines) in the image CRS, with attributes."""
    x0, y0 = T0 @ (40, 30)
    x1, y1 = T0 @ (120, 90)
    poly = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    line = shapely.LineString([(x0, y0), (x1, y1)])
    return {
        "fields": gpd.GeoDataFrame({"name": ["a"], "code": [7]}, geometry=[poly], crs=CRS_UTM),
        "roads": gpd.GeoDataFrame({"kind": ["main"]}, geometry=[line], crs=CRS_UTM),
    }
