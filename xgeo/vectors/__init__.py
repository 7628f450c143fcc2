"""Vector maps aligned to imagery: the geometries themselves are corrected.

Public face::

    from xgeo.vectors import align_vectors
    res = align_vectors("roads.gpkg", "scene.tif", "roads_fixed.gpkg", report="fix.json")
    res.qa["rmse_px"], res.kind, res.invalid

``register_image_to_vectors`` is the reverse use (resample an image onto a trusted map).
"""

from __future__ import annotations

from xgeo.vectors.align import (
    AlignResult,
    ImageGrid,
    align_vectors,
    load_image,
    pixel_matrices,
    plot_overlay,
    register_image_to_vectors,
    resolve_matcher,
    transform_layers,
    vertex_rmse_px,
)
from xgeo.vectors.io import InvalidGeometry, invalid_geometries, read_vectors, write_vectors
from xgeo.vectors.render import DEFAULT_STYLE, MapStyle, hillshade, render_map

__all__ = [
    "AlignResult",
    "DEFAULT_STYLE",
    "ImageGrid",
    "InvalidGeometry",
    "MapStyle",
    "align_vectors",
    "hillshade",
    "invalid_geometries",
    "load_image",
    "pixel_matrices",
    "plot_overlay",
    "read_vectors",
    "register_image_to_vectors",
    "render_map",
    "resolve_matcher",
    "transform_layers",
    "vertex_rmse_px",
    "write_vectors",
]
