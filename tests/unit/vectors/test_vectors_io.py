"""Vector I/O: typed errors naming the file, invalid geometries reported and kept."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from xgeo.errors import VectorError
from xgeo.vectors import align_vectors, invalid_geometries, read_vectors, write_vectors


def test_missing_file_is_vector_error(tmp_path: Path) -> None:
    p = tmp_path / "nope.gpkg"
    with pytest.raises(VectorError, match="nope.gpkg"):
        read_vectors(p)


def test_empty_file_is_vector_error(tmp_path: Path) -> None:
    p = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"a": []}, geometry=[], crs="EPSG:4326").to_file(p, layer="x")
    with pytest.raises(VectorError, match="empty.gpkg.*no features"):
        read_vectors(p)


def test_garbage_file_is_vector_error(tmp_path: Path) -> None:
    p = tmp_path / "junk.geojson"
    p.write_text("this is not json")
    with pytest.raises(VectorError, match="junk.geojson"):
        read_vectors(p)


def test_no_crs_is_vector_error(tmp_path: Path) -> None:
    p = tmp_path / "nocrs.geojson"
    p.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},'
                 ' "geometry": {"type": "Point", "coordinates": [1, 2]}}]}')
    g = gpd.read_file(p)
    g = g.set_crs(None, allow_override=True)
    q = tmp_path / "nocrs.shp"
    g.to_file(q)
    with pytest.raises(VectorError, match="nocrs.shp.*coordinate reference system"):
        read_vectors(q)


def test_outside_image_is_vector_error(tmp_path: Path, small_image: Path) -> None:
    p = tmp_path / "far.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:4326").to_file(p, layer="far")
    with pytest.raises(VectorError, match="far.gpkg.*inside the image"):
        align_vectors(p, small_image, tmp_path / "out.gpkg", matcher="classical")


def test_roundtrip_layers_attributes_crs(tmp_path: Path, square_layers) -> None:
    p = tmp_path / "two.gpkg"
    write_vectors(square_layers, p)
    back = read_vectors(p)
    assert list(back) == ["fields", "roads"]
    assert back["fields"]["code"].tolist() == [7]
    assert back["roads"].crs == square_layers["roads"].crs
    one = read_vectors(p, layer="roads")
    assert list(one) == ["roads"]
    with pytest.raises(VectorError, match="no layer"):
        read_vectors(p, layer="missing")


def test_invalid_geometries_reported_not_dropped(tmp_path: Path) -> None:
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    ok = shapely.box(0, 0, 1, 1)
    g = gpd.GeoDataFrame({"id": [1, 2]}, geometry=[ok, bowtie], crs="EPSG:32633")
    p = tmp_path / "bad.gpkg"
    write_vectors({"l": g}, p)
    layers = read_vectors(p)
    assert len(layers["l"]) == 2
    bad = invalid_geometries(layers)
    assert [(b.layer, b.index) for b in bad] == [("l", 1)]
    assert "intersection" in bad[0].reason.lower()
