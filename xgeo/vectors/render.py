"""Render vector map layers onto an image grid, and a hillshade for DEM images.

The map raster is anti-aliased (rendered ``supersample`` times finer, then block-averaged) so
that sub-pixel positions of edges survive: matching then resolves better than one pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy.ndimage import gaussian_filter

from xgeo.errors import ConfigError, ShapeError

__all__ = ["MapStyle", "DEFAULT_STYLE", "render_map", "hillshade"]


@dataclass(frozen=True)
class MapStyle:
    """How geometry types are drawn (values in [0, 1], widths in output pixels).

    Attributes:
        polygon_fill: value inside polygons (per layer it varies slightly, see ``render_map``).
        boundary: value on polygon boundaries.
        boundary_width: boundary width, pixels.
        line: value on line features.
        line_width: line width, pixels.
        point: value of point features (disks).
        point_radius: disk radius, pixels.
        supersample: render factor before block averaging (anti-aliasing), >= 1.
        blur_sigma: Gaussian blur applied at the end, pixels (0 disables).
    """

    polygon_fill: float = 0.45
    boundary: float = 0.45
    boundary_width: float = 1.5
    line: float = 1.0
    line_width: float = 2.0
    point: float = 1.0
    point_radius: float = 1.5
    supersample: int = 4
    blur_sigma: float = 1.0

    def __post_init__(self) -> None:
        if self.supersample < 1 or self.supersample > 16:
            raise ConfigError(f"MapStyle.supersample must be in 1..16, got {self.supersample}")


DEFAULT_STYLE = MapStyle()
#: boundaries and lines only, thin: what a map shares with an image's edges (``correlate``)
EDGE_STYLE = MapStyle(polygon_fill=0.0, boundary=1.0, boundary_width=1.0, line=1.0,
                      line_width=1.0, point=1.0, point_radius=1.0)


def _shapes(geoms: np.ndarray, value: float) -> list[tuple[object, float]]:
    return [(g, value) for g in geoms if g is not None and not g.is_empty]


def render_map(
    layers: dict[str, gpd.GeoDataFrame] | gpd.GeoDataFrame,
    shape: tuple[int, int],
    transform: Affine,
    style: MapStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """Rasterize map layers (already in the grid's CRS) onto a grid.

    Polygons are filled (each layer a slightly different grey so neighbouring layers keep an
    edge) and get a boundary line; lines are drawn as strokes, points as disks.

    Args:
        layers: ``{name: GeoDataFrame}`` or one GeoDataFrame, in the CRS of ``transform``.
        shape: output ``(H, W)``.
        transform: affine of the grid (rasterio convention: pixel corner -> map x, y).
        style: drawing style.

    Returns:
        float32 ``(H, W)`` in [0, 1]; 0 where no feature is.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ShapeError("render_map shape", "(H, W) with H, W >= 1", tuple(shape))
    if isinstance(layers, gpd.GeoDataFrame):
        layers = {"layer": layers}
    s = int(style.supersample)
    h, w = int(shape[0]), int(shape[1])
    t_s = transform @ Affine.scale(1.0 / s)
    px = float(np.sqrt(abs(transform.a * transform.e - transform.b * transform.d)))
    fine = np.zeros((h * s, w * s), np.float32)
    n_layers = max(len(layers), 1)
    fills: list[tuple[object, float]] = []
    strokes: list[tuple[object, float]] = []
    for k, gdf in enumerate(layers.values()):
        geoms = np.asarray(gdf.geometry.values, dtype=object)
        if len(geoms) == 0:
            continue
        kinds = np.array([g.geom_type if g is not None else "" for g in geoms])
        poly = np.isin(kinds, ["Polygon", "MultiPolygon"])
        line = np.isin(kinds, ["LineString", "MultiLineString", "LinearRing"])
        point = np.isin(kinds, ["Point", "MultiPoint"])
        fill = style.polygon_fill * (1.0 - 0.35 * k / n_layers)
        fills += _shapes(geoms[poly], fill)
        if poly.any():
            b = shapely.buffer(shapely.boundary(geoms[poly]), 0.5 * style.boundary_width * px,
                               quad_segs=2)
            strokes += _shapes(b, style.boundary)
        if line.any():
            b = shapely.buffer(geoms[line], 0.5 * style.line_width * px, quad_segs=2)
            strokes += _shapes(b, style.line)
        if point.any():
            b = shapely.buffer(geoms[point], style.point_radius * px, quad_segs=4)
            strokes += _shapes(b, style.point)
    # Collections (GeometryCollection) are drawn as their parts by rasterize's fill.
    if fills:
        rasterize(fills, out=fine, transform=t_s, all_touched=False)
    if strokes:
        rasterize(strokes, out=fine, transform=t_s, all_touched=False)
    out = fine.reshape(h, s, w, s).mean(axis=(1, 3)) if s > 1 else fine
    if style.blur_sigma > 0:
        out = gaussian_filter(out, style.blur_sigma, mode="nearest")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def hillshade(
    dem: np.ndarray,
    pixel_size: float | tuple[float, float] = 1.0,
    azimuth: float = 315.0,
    altitude: float = 45.0,
    z_factor: float = 1.0,
) -> np.ndarray:
    """Hillshade of a DEM (Horn-like central differences), NaN where the DEM is invalid.

    Args:
        dem: ``(H, W)`` elevations; NaN marks nodata.
        pixel_size: ground size of a pixel (x, y) in the elevation unit.
        azimuth: sun azimuth, degrees clockwise from north.
        altitude: sun elevation, degrees.
        z_factor: vertical exaggeration.

    Returns:
        float32 ``(H, W)`` in [0, 1], NaN where the DEM (or a neighbour) is NaN.
    """
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2:
        raise ShapeError("dem", "(H, W)", z.shape)
    px, py = (pixel_size, pixel_size) if np.isscalar(pixel_size) else pixel_size  # type: ignore[misc]
    dzdy, dzdx = np.gradient(z * z_factor, abs(float(py)), abs(float(px)))
    # dzdy is the gradient along rows (southwards), as in the ESRI formulation.
    slope = np.arctan(np.hypot(dzdx, dzdy))
    aspect = np.arctan2(dzdy, -dzdx)
    az = np.deg2rad((360.0 - azimuth + 90.0) % 360.0)
    zenith = np.deg2rad(90.0 - altitude)
    shade = np.cos(zenith) * np.cos(slope) + np.sin(zenith) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(shade, 0.0, 1.0).astype(np.float32)
