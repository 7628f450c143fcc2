"""A STAC collection describing a cube: one item per time slice, the COG as its asset.

Items carry the projection extension (``proj:code`` or ``proj:wkt2``, ``proj:shape``,
``proj:transform``) and the raster extension on the ``data`` asset (one band per COG band with
the COG's own ``data_type``, ``nodata`` and resolution) so that odc-stac / stackstac can load the
COGs onto the same grid (``odc.stac.load`` names the bands ``data.1``, ``data.2``, ...), and
the per-scene QA as ``xgeo:*`` properties. The collection links the Zarr cube as an asset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pystac
import rasterio
from pyproj import CRS, Transformer
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from xgeo.cube._store import open_cube

__all__ = ["cube_stac_collection"]


def _bbox_4326(bounds: tuple[float, float, float, float], crs: CRS) -> list[float]:
    tr = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    x0, y0, x1, y1 = bounds
    xs = np.concatenate([np.linspace(x0, x1, 21), np.full(21, x1), np.linspace(x1, x0, 21),
                         np.full(21, x0)])
    ys = np.concatenate([np.full(21, y0), np.linspace(y0, y1, 21), np.full(21, y1),
                         np.linspace(y1, y0, 21)])
    lon, lat = tr.transform(xs, ys)
    return [float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))]


def _geom(b: list[float]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]],
                                                 [b[0], b[3]], [b[0], b[1]]]]}


def _proj(obj: Any, crs: CRS, shape: tuple[int, int], transform: list[float]) -> None:
    ext = ProjectionExtension.ext(obj, add_if_missing=True)
    epsg = crs.to_epsg()
    if epsg is not None:
        ext.code = f"EPSG:{epsg}"
    else:
        ext.wkt2 = crs.to_wkt()
    ext.shape = [int(shape[0]), int(shape[1])]
    ext.transform = [float(v) for v in transform]


def _raster_bands(dtypes: list[str], nodatas: list[float | None], res: float,
                  names: list[str | None]) -> list[RasterBand]:
    """Raster-extension bands as the COG stores them (odc-stac reads dtype and nodata here)."""
    valid = {d.value for d in DataType}
    bands = []
    for dtype, nd, name in zip(dtypes, nodatas, names, strict=True):
        band = RasterBand.create(
            nodata=None if nd is None else ("nan" if np.isnan(nd) else float(nd)),
            data_type=DataType(dtype) if dtype in valid else None,
            spatial_resolution=res,
        )
        if name:
            band.properties["name"] = name
        bands.append(band)
    return bands


def cube_stac_collection(cube_path: str | Path, collection_id: str | None = None) -> pystac.Collection:
    """Build (in memory) a STAC collection of the cube's slices; ``.normalize_hrefs`` + save it.

    Args:
        cube_path: the cube (``*.zarr``).
        collection_id: default: the cube's folder name.

    Returns:
        ``pystac.Collection`` with one item per slice (asset ``data`` = the registered COG) and
        a collection asset ``cube`` (the Zarr store).
    """
    cube = Path(cube_path)
    ds = open_cube(cube)
    crs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
    items: list[pystac.Item] = []
    bboxes: list[list[float]] = []
    times = pd.to_datetime(ds["time"].values)
    for i in range(ds.sizes["time"]):
        href = str(ds["source_href"].values[i])
        sid = str(ds["scene_id"].values[i])
        try:
            with rasterio.open(href) as src:
                icrs = CRS.from_user_input(src.crs.to_wkt())
                shape = (src.height, src.width)
                tr = list(src.transform)[:6]
                bounds = tuple(src.bounds)
                bands = _raster_bands(list(src.dtypes), list(src.nodatavals),
                                      float(abs(src.res[0])), list(src.descriptions))
        except rasterio.errors.RasterioIOError:  # COG moved: describe the cube grid instead
            gt = [float(v) for v in str(ds["spatial_ref"].attrs["GeoTransform"]).split()]
            icrs, shape, nb = crs, (ds.sizes["y"], ds.sizes["x"]), ds.sizes["band"]
            tr = [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]]
            bounds = (gt[0], gt[3] + gt[5] * shape[0], gt[0] + gt[1] * shape[1], gt[3])
            names = list(ds["band"].attrs.get("long_names", [None] * nb))
            bands = _raster_bands(["float32"] * nb, [float("nan")] * nb, abs(gt[1]), names)
        bbox = _bbox_4326(bounds, icrs)  # type: ignore[arg-type]
        bboxes.append(bbox)
        qa = json.loads(str(ds["qa_json"].values[i]) or "{}")
        props: dict[str, Any] = {f"xgeo:{k}": v for k, v in qa.items()
                                 if isinstance(v, (str, int, float, bool, list)) or v is None}
        props["xgeo:cube_index"] = i
        item = pystac.Item(id=sid, geometry=_geom(bbox), bbox=bbox,
                           datetime=times[i].to_pydatetime(), properties=props)
        asset = pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"],
                             title="registered scene")
        item.add_asset("data", asset)
        RasterExtension.ext(asset, add_if_missing=True).apply(bands=bands)
        _proj(item, icrs, shape, tr)
        items.append(item)
    if bboxes:
        b = np.array(bboxes)
        union = [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()),
                 float(b[:, 3].max())]
        t0, t1 = times.min().to_pydatetime(), times.max().to_pydatetime()
    else:
        union, t0, t1 = [-180.0, -90.0, 180.0, 90.0], None, None
    coll = pystac.Collection(
        id=collection_id or cube.stem,
        description=f"Registered scenes of the xgeo cube {cube.name}",
        extent=pystac.Extent(pystac.SpatialExtent([union]), pystac.TemporalExtent([[t0, t1]])),
        license="other",
    )
    coll.add_asset("cube", pystac.Asset(href=str(cube.resolve()), media_type="application/vnd+zarr",
                                        roles=["data"], title="Zarr v3 analyst cube"))
    for it in items:
        coll.add_item(it)
    return coll
