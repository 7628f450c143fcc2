"""Read, validate and write vector maps (GeoPackage, GeoJSON, shapefile; any CRS).

Every problem a user can cause raises :class:`~xgeo.errors.VectorError` naming the file.
Invalid geometries are *reported* (layer, feature index, reason) and kept: nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
import shapely

from xgeo.errors import VectorError

__all__ = [
    "InvalidGeometry",
    "read_vectors",
    "invalid_geometries",
    "write_vectors",
    "driver_for",
]

_DRIVERS = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
}


@dataclass(frozen=True)
class InvalidGeometry:
    """One feature whose geometry is invalid, empty or missing (it is kept, not dropped).

    Attributes:
        layer: layer name.
        index: position of the feature in its layer (0-based).
        reason: shapely's explanation (``is_valid_reason``), or ``"empty"`` / ``"missing"``.
    """

    layer: str
    index: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "index": self.index, "reason": self.reason}


def driver_for(path: str | Path) -> str:
    """OGR driver name for an output path from its suffix.

    Raises:
        VectorError: unknown suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _DRIVERS:
        raise VectorError(
            f"unknown vector format {suffix!r}", path,
            hint=f"use one of {sorted(_DRIVERS)}",
        )
    return _DRIVERS[suffix]


def read_vectors(path: str | Path, layer: str | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Read every layer (or one) of a vector file, keeping attributes and CRS.

    Args:
        path: GeoPackage, GeoJSON or shapefile.
        layer: read only this layer; ``None`` reads all layers.

    Returns:
        ``{layer_name: GeoDataFrame}`` in file order, each with a CRS.

    Raises:
        VectorError: missing/unreadable file, unknown layer, no features at all, or no CRS.
    """
    p = Path(path)
    if not p.exists():
        raise VectorError("vector file does not exist", p, hint="check the path")
    try:
        listed = pyogrio.list_layers(p)
    except Exception as exc:  # GDAL errors come in many types
        raise VectorError(
            f"cannot open as a vector map ({exc})", p,
            hint="pass a GeoPackage, GeoJSON or shapefile",
        ) from exc
    names = [str(row[0]) for row in listed]
    if layer is not None:
        if layer not in names:
            raise VectorError(f"no layer {layer!r} (layers: {names})", p,
                              hint="pick one of the listed layers")
        names = [layer]
    if not names:
        raise VectorError("the file holds no layers", p, hint="check the export of the map")
    layers: dict[str, gpd.GeoDataFrame] = {}
    for name in names:
        try:
            gdf = gpd.read_file(p, layer=name, engine="pyogrio")
        except Exception as exc:
            raise VectorError(f"cannot read layer {name!r} ({exc})", p,
                              hint="check that the file is a valid vector map") from exc
        if "geometry" not in gdf or not isinstance(gdf, gpd.GeoDataFrame):
            continue  # attribute-only table (e.g. a GeoPackage non-spatial table)
        layers[name] = gdf
    n_features = sum(len(g) for g in layers.values())
    if n_features == 0:
        raise VectorError("the vector map holds no features", p,
                          hint="check the export or the layer name")
    for name, gdf in layers.items():
        if gdf.crs is None and len(gdf):
            raise VectorError(f"layer {name!r} has no coordinate reference system", p,
                              hint="assign one, e.g. `ogr2ogr -a_srs EPSG:4326 out.gpkg in.gpkg`")
    return {k: v for k, v in layers.items() if len(v)}


def invalid_geometries(layers: dict[str, gpd.GeoDataFrame]) -> list[InvalidGeometry]:
    """List features whose geometry is missing, empty or invalid (OGC rules), per layer."""
    out: list[InvalidGeometry] = []
    for name, gdf in layers.items():
        geoms = gdf.geometry.values
        for i, g in enumerate(geoms):
            if g is None:
                out.append(InvalidGeometry(name, i, "missing"))
            elif g.is_empty:
                out.append(InvalidGeometry(name, i, "empty"))
            elif not g.is_valid:
                out.append(InvalidGeometry(name, i, shapely.is_valid_reason(g)))
    return out


def write_vectors(layers: dict[str, gpd.GeoDataFrame], path: str | Path) -> list[Path]:
    """Write layers to a GeoPackage (all layers in one file) or GeoJSON/shapefile.

    GeoJSON and shapefile hold one layer per file: with several layers, the first goes to
    ``path`` and the others to ``<stem>_<layer><suffix>`` beside it.

    Returns:
        The files written.
    """
    p = Path(path)
    driver = driver_for(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if driver == "GPKG":
        if p.exists():
            p.unlink()
        for name, gdf in layers.items():
            gdf.to_file(p, layer=name, driver=driver, engine="pyogrio")
        return [p]
    for k, (name, gdf) in enumerate(layers.items()):
        target = p if k == 0 else p.with_name(f"{p.stem}_{name}{p.suffix}")
        if target.exists():
            target.unlink()
        gdf.to_file(target, driver=driver, engine="pyogrio")
        written.append(target)
    return written
