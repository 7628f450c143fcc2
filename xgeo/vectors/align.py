"""Align vector maps to imagery (and the reverse): render, match, fit, transform geometries.

Frames (see ARCHITECTURE.md): the *image grid* is the reference. The map is reprojected to the
image CRS and rendered on the image grid (map raster); the fitted model maps a map-raster
pixel to an image pixel. Geometry vertices travel

    input CRS -> image CRS -> image pixel (centre convention) -> model -> image CRS -> input CRS

For shift/affine the composite in the image CRS is one affine map, applied exactly
(:func:`shapely.affinity.affine_transform`); for polynomial/TPS the geometries are densified
first (``densify_px``) and every vertex is transformed. Attributes, layers, feature order and
the CRS of each layer are preserved; invalid geometries are transformed too and reported.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from scipy import ndimage

from xgeo.errors import ConfigError, VectorError, WeightsError
from xgeo.geometry import GeoModel
from xgeo.matcher import Matcher, load_matcher
from xgeo.vectors._estimate import Estimate, edge_strength, estimate_map_to_image
from xgeo.vectors.io import InvalidGeometry, invalid_geometries, read_vectors, write_vectors
from xgeo.vectors.render import DEFAULT_STYLE, EDGE_STYLE, MapStyle, hillshade, render_map

__all__ = [
    "AlignResult",
    "ImageGrid",
    "align_vectors",
    "register_image_to_vectors",
    "load_image",
    "transform_layers",
    "pixel_matrices",
    "resolve_matcher",
]

log = logging.getLogger(__name__)

_KINDS = ("auto", "shift", "affine", "poly2", "poly3", "tps")


@dataclass(frozen=True)
class ImageGrid:
    """The image side of an alignment.

    Attributes:
        path: image file.
        image: float32 ``(H, W)`` in [0, 1], NaN invalid (a hillshade for DEMs).
        transform: rasterio affine (pixel corner -> CRS).
        crs: the image CRS.
        modality: inferred or given modality.
        structure: float32 ``(H, W)`` edge strength, NaN invalid: the slope of the smoothed
            elevation for DEMs, the gradient magnitude of the smoothed image otherwise (used by
            the ``correlate`` stage); ``None`` skips that stage.
    """

    path: Path
    image: np.ndarray
    transform: Affine
    crs: CRS
    modality: str
    structure: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def pixel_size(self) -> float:
        t = self.transform
        return float(np.sqrt(abs(t.a * t.e - t.b * t.d)))


@dataclass(frozen=True)
class AlignResult:
    """Outcome of :func:`align_vectors` / :func:`register_image_to_vectors`.

    Attributes:
        out_paths: files written (corrected vectors, or the registered image).
        model: map-raster pixel -> image pixel (``mov_to_ref`` with mov = map).
        kind: model kind.
        source: stage that produced the model (``matcher | dense | rematch``).
        matcher: name of the matcher used (the learned one, or the classical fallback).
        qa: tie-point QA (``n_tiepoints, n_inliers, rmse_px, ce90_px, ...``) plus ``mi``.
        invalid: invalid geometries found in the input (kept, transformed, reported).
        vertex_shift_px: ``{"mean", "max"}`` displacement applied to vertices, image px.
        report_path: JSON report, if written.
        overlay_path: PNG overlay before/after, if written.
        seconds: wall time.
        info: per-stage diagnostics.
    """

    out_paths: tuple[Path, ...]
    model: GeoModel
    kind: str
    source: str
    matcher: str
    qa: dict[str, Any]
    invalid: tuple[InvalidGeometry, ...] = ()
    vertex_shift_px: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None
    overlay_path: Path | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able report (``status, model, map_to_image_pixel, rmse_px, ...``)."""
        mat = self.model.to_matrix()
        return {
            "status": "ok",
            "model": self.kind,
            "source": self.source,
            "matcher": self.matcher,
            "map_to_image_pixel": None if mat is None else np.asarray(mat).tolist(),
            "model_params": self.model.to_dict(),
            "n_tiepoints": self.qa.get("n_tiepoints"),
            "n_inliers": self.qa.get("n_inliers"),
            "rmse_px": self.qa.get("rmse_px"),
            "ce90_px": self.qa.get("ce90_px"),
            "mi": self.qa.get("mi"),
            "vertex_shift_px": self.vertex_shift_px,
            "invalid_geometries": [g.to_dict() for g in self.invalid],
            "outputs": [str(p) for p in self.out_paths],
            "overlay": None if self.overlay_path is None else str(self.overlay_path),
            "seconds": round(self.seconds, 3),
            "stages": _jsonable(self.info),
        }


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------

def resolve_matcher(matcher: str | Matcher | None) -> Matcher:
    """The matcher to use: given, else the registration default of the pipeline
    (:data:`xgeo.pipeline.PIPELINE_DEFAULT_MATCHER`, one policy for images and maps), with the
    classical matcher as fallback when the learned one cannot load."""
    from xgeo.pipeline import PIPELINE_DEFAULT_MATCHER

    if isinstance(matcher, Matcher):
        return matcher
    if matcher is not None:
        return load_matcher(matcher)
    try:
        return load_matcher(PIPELINE_DEFAULT_MATCHER)
    except (WeightsError, ImportError, OSError) as exc:
        log.warning("matcher %r unavailable (%s): using the classical matcher",
                    PIPELINE_DEFAULT_MATCHER, exc)
        return load_matcher("classical")


def _normalise(a: np.ndarray) -> np.ndarray:
    valid = np.isfinite(a)
    out = np.full(a.shape, np.nan, np.float32)
    if not valid.any():
        return out
    lo, hi = np.percentile(a[valid], [1.0, 99.0])
    if hi <= lo:
        hi = lo + 1.0
    out[valid] = np.clip((a[valid] - lo) / (hi - lo), 0.0, 1.0)
    return out


def load_image(path: str | Path, modality: str | None = None, band: int = 1) -> ImageGrid:
    """Open an image (any GDAL raster with a CRS) as the reference grid of an alignment.

    DEMs (modality ``dem``) become a hillshade of the lightly smoothed elevation.

    Raises:
        MissingFileError, NotARasterError, MissingCRSError: from :func:`xgeo.scenes.open_scene`.
    """
    from xgeo.scenes import open_scene

    scene = open_scene(path, modality=modality)
    mod = scene.modality if modality is None else modality
    with rasterio.open(scene.path) as ds:
        a = ds.read(band, masked=True)
        arr = np.ma.filled(a.astype(np.float32), np.nan)
        transform, crs = ds.transform, CRS.from_user_input(ds.crs.to_wkt())
    if mod == "dem":
        fin = np.isfinite(arr)
        filled = np.where(fin, arr, np.nanmean(arr) if fin.any() else 0.0)
        px = float(np.sqrt(abs(transform.a * transform.e - transform.b * transform.d)))
        hs = hillshade(ndimage.gaussian_filter(filled, 1.0), px)
        hs[~ndimage.binary_erosion(fin, iterations=1, border_value=1)] = np.nan
        img = hs
        # map boundaries (glacier margins, divides, shores) follow breaks of slope, which a
        # hillshade shows only for one illumination direction; gaps' filled values are masked
        structure = edge_strength(filled, sigma=2.0)
        structure[~ndimage.binary_erosion(fin, iterations=3, border_value=1)] = np.nan
    else:
        img = _normalise(arr)
        structure = edge_strength(img, sigma=1.5)
    return ImageGrid(Path(path), img.astype(np.float32), transform, crs, mod, structure)


def _check_overlap(layers: dict[str, gpd.GeoDataFrame], grid: ImageGrid, path: Path) -> None:
    h, w = grid.shape
    t = grid.transform
    xs = [t.c, t.c + t.a * w + t.b * h, t.c + t.a * w, t.c + t.b * h]
    ys = [t.f, t.f + t.d * w + t.e * h, t.f + t.d * w, t.f + t.e * h]
    box = shapely.box(min(xs), min(ys), max(xs), max(ys))
    n_in = 0
    for gdf in layers.values():
        geoms = np.asarray(gdf.geometry.values, dtype=object)
        ok = np.array([g is not None and not g.is_empty for g in geoms], bool)
        if ok.any():
            n_in += int(shapely.intersects(geoms[ok], box).sum())
    if n_in == 0:
        raise VectorError(
            f"no geometry lies inside the image {grid.path.name}", path,
            hint="check the CRS of the vector file and that it covers the image area")


# ---------------------------------------------------------------------------------------------
# geometry transformation
# ---------------------------------------------------------------------------------------------

def pixel_matrices(transform: Affine) -> tuple[np.ndarray, np.ndarray]:
    """3x3 ``(world_to_pixel, pixel_to_world)`` with pixel centres at integers."""
    t = np.array([[transform.a, transform.b, transform.c],
                  [transform.d, transform.e, transform.f],
                  [0.0, 0.0, 1.0]])
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    p2w = t @ half
    return np.linalg.inv(p2w), p2w


def transform_layers(
    layers: dict[str, gpd.GeoDataFrame],
    model: GeoModel,
    grid_transform: Affine,
    grid_crs: CRS,
    densify_px: float = 1.0,
) -> dict[str, gpd.GeoDataFrame]:
    """Apply a grid-pixel model to geometries, returning layers in their own CRS.

    Args:
        layers: ``{name: GeoDataFrame}`` in any CRS.
        model: grid pixel -> grid pixel (map -> image).
        grid_transform: the grid's affine.
        grid_crs: the grid's CRS.
        densify_px: largest segment length, in grid pixels, before a non-linear model.

    Returns:
        New layers (same attributes, order and CRS).
    """
    w2p, p2w = pixel_matrices(grid_transform)
    mat = model.to_matrix()
    px = float(np.sqrt(abs(grid_transform.a * grid_transform.e
                           - grid_transform.b * grid_transform.d)))
    out: dict[str, gpd.GeoDataFrame] = {}
    for name, gdf in layers.items():
        src_crs = gdf.crs
        same = src_crs is not None and CRS.from_user_input(src_crs) == grid_crs
        g = gdf if same else gdf.to_crs(grid_crs)
        geoms = np.asarray(g.geometry.values, dtype=object)
        present = np.array([x is not None for x in geoms], bool)
        new = geoms.copy()
        if mat is not None:
            a = p2w @ np.asarray(mat, float) @ w2p
            params = [a[0, 0], a[0, 1], a[1, 0], a[1, 1], a[0, 2], a[1, 2]]
            new[present] = [shapely.affinity.affine_transform(x, params) for x in geoms[present]]
        else:
            dense = shapely.segmentize(geoms[present], densify_px * px)

            def fn(xy: np.ndarray) -> np.ndarray:
                p = xy @ w2p[:2, :2].T + w2p[:2, 2]
                q = model(p)
                return q @ p2w[:2, :2].T + p2w[:2, 2]

            new[present] = shapely.transform(dense, fn)
        res = g.copy()
        res = res.set_geometry(gpd.GeoSeries(new, index=g.index, crs=grid_crs))
        out[name] = res if same else res.to_crs(src_crs)
    return out


def _vertex_pixels(layers: dict[str, gpd.GeoDataFrame], grid: ImageGrid) -> np.ndarray:
    w2p, _ = pixel_matrices(grid.transform)
    parts = []
    for gdf in layers.values():
        g = gdf.to_crs(grid.crs) if CRS.from_user_input(gdf.crs) != grid.crs else gdf
        xy = shapely.get_coordinates(np.asarray(g.geometry.values, dtype=object))
        parts.append(xy @ w2p[:2, :2].T + w2p[:2, 2])
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def vertex_rmse_px(a: dict[str, gpd.GeoDataFrame], b: dict[str, gpd.GeoDataFrame],
                   grid: ImageGrid, inside_only: bool = True) -> float:
    """RMSE (image px) between corresponding vertices of two versions of the same layers.

    Only meaningful when both have the same vertex structure (shift/affine output, or inputs
    transformed without densification). ``inside_only`` keeps vertices of ``a`` on the image.
    """
    pa, pb = _vertex_pixels(a, grid), _vertex_pixels(b, grid)
    if pa.shape != pb.shape:
        raise ConfigError(f"vertex_rmse_px: different vertex counts {pa.shape} vs {pb.shape}")
    if inside_only:
        h, w = grid.shape
        m = (pa[:, 0] >= -0.5) & (pa[:, 0] <= w - 0.5) & (pa[:, 1] >= -0.5) & (pa[:, 1] <= h - 0.5)
        pa, pb = pa[m], pb[m]
    return float(np.sqrt(np.mean(np.sum((pa - pb) ** 2, axis=1)))) if len(pa) else float("nan")


# ---------------------------------------------------------------------------------------------
# core
# ---------------------------------------------------------------------------------------------

def _to_grid(layers: dict[str, gpd.GeoDataFrame], crs: CRS) -> dict[str, gpd.GeoDataFrame]:
    return {k: (v if CRS.from_user_input(v.crs) == crs else v.to_crs(crs))
            for k, v in layers.items()}


def _prepare(map_path: str | Path, image: str | Path | ImageGrid, layer: str | None,
             modality: str | None) -> tuple[dict[str, gpd.GeoDataFrame], ImageGrid]:
    layers = read_vectors(map_path, layer=layer)
    grid = image if isinstance(image, ImageGrid) else load_image(image, modality=modality)
    _check_overlap(_to_grid(layers, grid.crs), grid, Path(map_path))
    return layers, grid


def _estimate(layers: dict[str, gpd.GeoDataFrame], grid: ImageGrid, matcher: Matcher,
              model: str, style: MapStyle) -> tuple[Estimate, np.ndarray]:
    if model not in _KINDS:
        raise ConfigError(f"unknown model {model!r}; expected one of {_KINDS}")
    on_grid = _to_grid(layers, grid.crs)
    map_raster = render_map(on_grid, grid.shape, grid.transform, style)
    edges = (render_map(on_grid, grid.shape, grid.transform, EDGE_STYLE)
             if grid.structure is not None else None)
    est = estimate_map_to_image(grid.image, map_raster, matcher, kind=model,
                                pixel_size=grid.pixel_size, structure=grid.structure,
                                map_edges=edges)
    return est, map_raster


def align_vectors(
    map_path: str | Path,
    image_path: str | Path | ImageGrid,
    out_path: str | Path,
    *,
    matcher: str | Matcher | None = None,
    model: str = "auto",
    layer: str | None = None,
    report: str | Path | None = None,
    overlay: str | Path | None | bool = True,
    modality: str | None = None,
    style: MapStyle = DEFAULT_STYLE,
    densify_px: float = 1.0,
) -> AlignResult:
    """Correct a vector map's geometries so that they align with an image.

    Args:
        map_path: GeoPackage / GeoJSON / shapefile, any CRS, one or many layers.
        image_path: the trusted image (any GDAL raster with a CRS; DEMs are hillshaded), or a
            prepared :class:`ImageGrid`.
        out_path: corrected vectors (format from the suffix; GeoPackage keeps all layers).
        matcher: matcher name or instance; ``None`` = learned universal, else classical.
        model: ``auto | shift | affine | poly2 | poly3 | tps``.
        layer: align only this layer (default: all layers).
        report: JSON report path (default: none).
        overlay: PNG overlay path; ``True`` puts it beside ``report`` (or ``out_path``) as
            ``*_overlay.png``; ``False``/``None`` skips it.
        modality: force the image modality (default: inferred).
        style: map rendering style.
        densify_px: segment length (image px) before non-linear models.

    Returns:
        :class:`AlignResult` (residual QA, model, invalid geometries, files written).

    Raises:
        VectorError: empty/unreadable vectors, no CRS, or nothing inside the image.
        RegistrationError: no trustworthy model.
    """
    t0 = time.perf_counter()
    layers, grid = _prepare(map_path, image_path, layer, modality)
    bad = tuple(invalid_geometries(layers))
    if bad:
        log.warning("%s: %d invalid geometries (kept and transformed; listed in the report)",
                    map_path, len(bad))
    m = resolve_matcher(matcher)
    est, _ = _estimate(layers, grid, m, model, style)
    corrected = transform_layers(layers, est.model, grid.transform, grid.crs, densify_px)
    written = tuple(write_vectors(corrected, out_path))
    shift = _shift_stats(est.model, _vertex_pixels(layers, grid))
    overlay_path = _overlay_target(overlay, report, out_path)
    res = AlignResult(
        out_paths=written, model=est.model, kind=est.kind, source=est.source,
        matcher=m.name, qa=est.qa, invalid=bad, vertex_shift_px=shift,
        report_path=Path(report) if report else None, overlay_path=overlay_path,
        seconds=time.perf_counter() - t0, info=est.info)
    if overlay_path is not None:
        plot_overlay(grid, layers, corrected, overlay_path,
                     title=f"{Path(map_path).name} on {grid.path.name}: {est.kind} ({m.name})")
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(_jsonable(res.to_dict()), indent=2))
    return res


def register_image_to_vectors(
    image_path: str | Path,
    map_path: str | Path,
    out_path: str | Path,
    *,
    matcher: str | Matcher | None = None,
    model: str = "auto",
    layer: str | None = None,
    report: str | Path | None = None,
    modality: str | None = None,
    style: MapStyle = DEFAULT_STYLE,
) -> AlignResult:
    """Reverse use: resample an image so that it aligns with a trusted vector map.

    The output keeps the image's grid (CRS, transform, size, dtype, nodata):
    ``out[p] = image[model(p)]`` for every grid pixel ``p`` (bilinear; nearest for integer
    class rasters is not attempted), written as a COG.

    Returns:
        :class:`AlignResult` with ``out_paths = (out_path,)``.
    """
    import cv2

    t0 = time.perf_counter()
    layers, grid = _prepare(map_path, image_path, layer, modality)
    m = resolve_matcher(matcher)
    est, _ = _estimate(layers, grid, m, model, style)
    h, w = grid.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    src = est.model(np.stack([xx.ravel(), yy.ravel()], 1))
    mx = src[:, 0].reshape(h, w).astype(np.float32)
    my = src[:, 1].reshape(h, w).astype(np.float32)
    with rasterio.open(image_path) as ds:
        profile = ds.profile.copy()
        data = ds.read()
        nodata = ds.nodata
        descriptions = ds.descriptions
    fill = float(nodata) if nodata is not None else 0.0
    out = np.empty_like(data)
    for b in range(data.shape[0]):
        band = data[b].astype(np.float32)
        if nodata is not None:
            band[band == nodata] = np.nan
        r = cv2.remap(band, mx, my, interpolation=cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        r = np.where(np.isfinite(r), r, fill)
        if np.issubdtype(data.dtype, np.integer):
            info = np.iinfo(data.dtype)
            r = np.clip(np.rint(r), info.min, info.max)
        out[b] = r.astype(data.dtype)
    _write_cog(out, profile, Path(out_path), descriptions)
    shift = _shift_stats(est.model, _vertex_pixels(layers, grid))
    res = AlignResult(
        out_paths=(Path(out_path),), model=est.model, kind=est.kind, source=est.source,
        matcher=m.name, qa=est.qa, invalid=tuple(invalid_geometries(layers)),
        vertex_shift_px=shift, report_path=Path(report) if report else None,
        seconds=time.perf_counter() - t0, info=est.info)
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(_jsonable(res.to_dict()), indent=2))
    return res


def _write_cog(data: np.ndarray, profile: dict[str, Any], path: Path,
               descriptions: tuple[str | None, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.tif")
    prof = {k: v for k, v in profile.items()
            if k not in ("blockxsize", "blockysize", "tiled", "interleave", "compress")}
    prof.update(driver="COG", compress="DEFLATE")
    with rasterio.open(tmp, "w", **prof) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            if d:
                dst.set_band_description(i, d)
    tmp.replace(path)


def _shift_stats(model: GeoModel, px: np.ndarray) -> dict[str, float]:
    if len(px) == 0:
        return {"mean": 0.0, "max": 0.0}
    d = np.linalg.norm(model(px) - px, axis=1)
    return {"mean": float(d.mean()), "max": float(d.max())}


def _overlay_target(overlay: str | Path | None | bool, report: str | Path | None,
                    out_path: str | Path) -> Path | None:
    if overlay is None or overlay is False:
        return None
    if overlay is True:
        base = Path(report) if report else Path(out_path)
        return base.with_name(base.stem + "_overlay.png")
    return Path(overlay)


def plot_overlay(grid: ImageGrid, before: dict[str, gpd.GeoDataFrame],
                 after: dict[str, gpd.GeoDataFrame], path: str | Path, title: str = "") -> Path:
    """PNG: the image with the map before (left) and after (right) correction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w2p, _ = pixel_matrices(grid.transform)
    fig, axes = plt.subplots(1, 2, figsize=(14, 7), sharex=True, sharey=True)
    for ax, layers, colour, label in ((axes[0], before, "tab:red", "before"),
                                      (axes[1], after, "cyan", "after")):
        ax.imshow(grid.image, cmap="gray", interpolation="nearest")
        for gdf in _to_grid(layers, grid.crs).values():
            for g in gdf.geometry.values:
                if g is None or g.is_empty:
                    continue
                for line in _lines(g):
                    xy = np.asarray(line.coords)[:, :2] @ w2p[:2, :2].T + w2p[:2, 2]
                    ax.plot(xy[:, 0], xy[:, 1], color=colour, lw=0.7)
        ax.set_title(label)
        ax.set_xlim(-0.5, grid.shape[1] - 0.5)
        ax.set_ylim(grid.shape[0] - 0.5, -0.5)
    fig.suptitle(title)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def _lines(g: Any) -> list[Any]:
    if g.geom_type in ("LineString", "LinearRing"):
        return [g]
    if g.geom_type == "Polygon":
        return [g.exterior, *g.interiors]
    if g.geom_type == "Point":
        return []
    if hasattr(g, "geoms"):
        return [x for part in g.geoms for x in _lines(part)]
    return []
