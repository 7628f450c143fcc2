"""Registration report: JSON (DESIGN.md contract), tie points as GeoPackage, PNG figure.

Every file is written to a temporary path next to its target and renamed into place, so a
reader never sees a partial report.

Contract fields of the JSON (relied on outside the repo): ``status``, ``model`` (type string),
``mov_to_ref_pixel`` (3x3 list: moving *input file* pixel -> reference file pixel, or ``null``
for non-linear models), ``n_tiepoints``, ``n_inliers``, ``rmse_px``, ``ce90_px``, ``seconds``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from importlib import metadata
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from xgeo.errors import ConfigError, ShapeError
from xgeo.viz import read_preview, rmse_ce90
from xgeo.warp import atomic_target

__all__ = [
    "CONTRACT_FIELDS",
    "build_report",
    "write_json",
    "write_tiepoints_gpkg",
    "plot_report",
    "read_preview",
    "to_jsonable",
]

CONTRACT_FIELDS: tuple[str, ...] = (
    "status", "model", "mov_to_ref_pixel", "n_tiepoints", "n_inliers", "rmse_px", "ce90_px",
    "seconds",
)
TIEPOINT_LAYER = "tiepoints"


def _version() -> str:
    try:
        return metadata.version("xgeo")
    except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
        return "unknown"


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy types, paths, tuples and dataclasses to JSON-able values.

    Non-finite floats become ``None`` (strict JSON has no NaN/Infinity).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (Path, PathLike)):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    return str(obj)


def _grid_info(plan: Any) -> dict[str, Any] | None:
    if plan is None:
        return None
    ref = plan.ref
    info: dict[str, Any] = {
        "shape": [int(v) for v in plan.shape],
        "transform": [float(v) for v in tuple(ref.transform)[:6]],
        "pixel_size": float(plan.pixel_size) if hasattr(plan, "pixel_size") else None,
    }
    try:
        from pyproj import CRS

        crs = CRS.from_user_input(ref.crs)
        epsg = crs.to_epsg()
        info["crs"] = f"EPSG:{epsg}" if epsg else crs.to_wkt()
    except Exception:  # the report must not fail on a CRS description
        info["crs"] = str(ref.crs)
    return info


def build_report(
    *,
    status: str,
    model: Any,
    fit: Any,
    plan: Any,
    seconds: float,
    mov_to_ref_pixel: np.ndarray | None,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    matcher: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the registration report (a JSON-able ``dict``).

    Args:
        status: outcome, e.g. ``"success"`` or ``"failed"``.
        model: the fitted ``GeoModel`` (``kind``, ``to_matrix()``, ``to_dict()``), or ``None``.
        fit: the ``FitResult`` (``inliers``, ``residuals_px``, ``qa``, ``candidates``), or
            ``None`` when fitting failed.
        plan: the ``TilePlan`` (``ref``, ``shape``, ``pixel_size``,
            ``mov_file_to_grid_matrix()``), or ``None``.
        seconds: wall time of the whole registration.
        mov_to_ref_pixel: ``(3, 3)`` moving-file pixel -> reference-file pixel; when ``None``
            and the model is linear it is computed as ``model.to_matrix() @ A``.
        inputs: e.g. ``{"ref": path, "mov": path, "modalities": ...}``.
        outputs: e.g. ``{"cog": path, "tiepoints": path, "figure": path}``.
        matcher: matcher name, weights version, options.
        extra: more top-level fields (may not overwrite contract fields).

    Returns:
        The report: contract fields first, then ``rmse_m``, ``ce90_m``, ``heldout_rmse_px``,
        ``model_params``, ``candidates``, ``per_tile``, ``qa``, ``grid``, ``inputs``,
        ``outputs``, ``matcher``, ``xgeo_version``, ``created`` (UTC ISO 8601).
    """
    qa: dict[str, Any] = dict(getattr(fit, "qa", None) or {})
    kind = getattr(model, "kind", None) if model is not None else qa.get("model")

    m = mov_to_ref_pixel
    if m is None and model is not None and plan is not None:
        lin = model.to_matrix()
        if lin is not None:
            m = np.asarray(lin, np.float64) @ np.asarray(plan.mov_file_to_grid_matrix(), float)
    if m is not None:
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (3, 3):
            raise ShapeError("mov_to_ref_pixel", "(3, 3)", m.shape)

    inliers = np.asarray(getattr(fit, "inliers", np.zeros(0, bool)), bool).reshape(-1)
    residuals = np.asarray(getattr(fit, "residuals_px", np.zeros(0)), np.float64).reshape(-1)
    rmse, ce90 = rmse_ce90(residuals[inliers]) if inliers.size == residuals.size else (None, None)
    pixel = float(plan.pixel_size) if plan is not None and hasattr(plan, "pixel_size") else None

    def q(key: str, default: Any) -> Any:
        v = qa.get(key)
        return default if v is None else v

    rmse_px = q("rmse_px", rmse)
    ce90_px = q("ce90_px", ce90)
    report: dict[str, Any] = {
        "status": str(status),
        "model": None if kind is None else str(kind),
        "mov_to_ref_pixel": None if m is None else m.tolist(),
        "n_tiepoints": int(q("n_tiepoints", inliers.size)),
        "n_inliers": int(q("n_inliers", int(inliers.sum()))),
        "rmse_px": rmse_px,
        "ce90_px": ce90_px,
        "seconds": float(seconds),
        "rmse_m": q("rmse_m", None if rmse_px is None or pixel is None else rmse_px * pixel),
        "ce90_m": q("ce90_m", None if ce90_px is None or pixel is None else ce90_px * pixel),
        "heldout_rmse_px": qa.get("heldout_rmse_px"),
        "model_params": None if model is None else model.to_dict(),
        "candidates": getattr(fit, "candidates", None),
        "per_tile": qa.get("per_tile"),
        "qa": {k: v for k, v in qa.items() if k != "per_tile"},
        "grid": _grid_info(plan),
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "matcher": dict(matcher),
        "xgeo_version": _version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        clash = sorted(set(extra) & set(CONTRACT_FIELDS))
        if clash:
            raise ConfigError(f"extra report fields may not overwrite contract fields {clash}")
        report.update(extra)
    return to_jsonable(report)


def write_json(report: Mapping[str, Any], path: str | PathLike[str]) -> Path:
    """Write ``report`` as strict, indented JSON, atomically.

    numpy scalars/arrays are converted and non-finite floats written as ``null``.
    """
    text = json.dumps(to_jsonable(report), indent=2, allow_nan=False)
    with atomic_target(path, "json", ".json") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def _points(name: str, xy: Any, n: int | None = None) -> np.ndarray:
    a = np.asarray(xy, dtype=np.float64)
    if a.size == 0:
        a = a.reshape(0, 2)
    if a.ndim != 2 or a.shape[1] != 2 or (n is not None and len(a) != n):
        raise ShapeError(name, "(N, 2)" if n is None else f"({n}, 2)", a.shape)
    return a


def _column(name: str, v: Any, n: int, dtype: Any) -> np.ndarray:
    a = np.asarray(v, dtype=dtype).reshape(-1) if v is not None else None
    if a is None or len(a) != n:
        raise ShapeError(name, f"({n},)", () if a is None else a.shape)
    return a


def _tile_names(tile_ids: Any, n: int) -> list[str]:
    if tile_ids is None:
        return [""] * n
    a = np.asarray(tile_ids)
    if a.ndim == 2 and a.shape == (n, 2):  # (row, col) pairs
        return [f"r{int(r)}_c{int(c)}" for r, c in a]
    if isinstance(tile_ids, Sequence) and not isinstance(tile_ids, str):
        names = [str(getattr(t, "key", t)) for t in tile_ids]
    else:
        names = [str(t) for t in a.reshape(-1)]
    if len(names) != n:
        raise ShapeError("tile_ids", f"({n},)", (len(names),))
    return names


def write_tiepoints_gpkg(
    path: str | PathLike[str],
    *,
    src_grid: np.ndarray,
    dst_ref: np.ndarray,
    confidence: np.ndarray,
    inliers: np.ndarray,
    residuals_px: np.ndarray,
    tile_ids: Any,
    plan: Any,
) -> Path:
    """Write tie points as a GeoPackage point layer ``tiepoints``, atomically.

    Each point lies at the map position of its reference pixel (``plan.ref.affine`` applied to
    the pixel centre ``(x + 0.5, y + 0.5)``), in the reference CRS.

    Args:
        path: ``.gpkg`` file to write.
        src_grid: ``(N, 2)`` grid-mov points (x, y).
        dst_ref: ``(N, 2)`` reference points (x, y).
        confidence: ``(N,)`` matcher confidence.
        inliers: bool ``(N,)``.
        residuals_px: ``(N,)`` residual norms of the final model (NaN allowed).
        tile_ids: ``(N,)`` tile names / ids, ``(N, 2)`` (row, col), or ``None``.
        plan: ``TilePlan``-like (``ref.affine``, ``ref.crs``).

    Returns:
        ``path``. Attributes: ``ref_x, ref_y, mov_x, mov_y`` (grid px), ``dx, dy``
        (``ref - mov``), ``residual_px, confidence, inlier, tile``.
    """
    import geopandas as gpd
    import shapely

    dst = _points("dst_ref", dst_ref)
    n = len(dst)
    src = _points("src_grid", src_grid, n)
    conf = _column("confidence", confidence, n, np.float64)
    inl = _column("inliers", inliers, n, bool)
    res = _column("residuals_px", residuals_px, n, np.float64)
    aff = plan.ref.affine
    mx = aff.a * (dst[:, 0] + 0.5) + aff.b * (dst[:, 1] + 0.5) + aff.c
    my = aff.d * (dst[:, 0] + 0.5) + aff.e * (dst[:, 1] + 0.5) + aff.f
    gdf = gpd.GeoDataFrame(
        {
            "ref_x": dst[:, 0], "ref_y": dst[:, 1], "mov_x": src[:, 0], "mov_y": src[:, 1],
            "dx": dst[:, 0] - src[:, 0], "dy": dst[:, 1] - src[:, 1], "residual_px": res,
            "confidence": conf, "inlier": inl, "tile": _tile_names(tile_ids, n),
        },
        geometry=shapely.points(mx, my) if n else gpd.GeoSeries([], dtype="geometry"),
        crs=plan.ref.crs,
    )
    with atomic_target(path, "gpkg", ".gpkg") as tmp:
        gdf.to_file(tmp, driver="GPKG", layer=TIEPOINT_LAYER, engine="pyogrio",
                    geometry_type="Point")
    return Path(path)


def plot_report(
    path: str | PathLike[str],
    *,
    ref_preview: np.ndarray,
    mov_before: np.ndarray,
    mov_after: np.ndarray,
    scale: float,
    src_grid: np.ndarray,
    dst_ref: np.ndarray,
    inliers: np.ndarray,
    residuals_px: np.ndarray,
    title: str,
) -> Path:
    """Write the report figure as PNG, atomically.

    Panels: displacement vectors (exaggerated; inliers coloured by residual, outliers red) over
    the reference preview; histogram of inlier residuals with RMSE and CE90; checkerboards of
    reference vs moving before and after registration.

    Args:
        path: ``.png`` file to write.
        ref_preview: ``(h, w)`` float ``[0, 1]`` preview of the reference (NaN = invalid).
        mov_before: ``(h, w)`` preview of the moving scene on the common grid, unregistered.
        mov_after: ``(h, w)`` preview of the registered output.
        scale: preview pixels per grid pixel.
        src_grid: ``(N, 2)`` grid-mov tie points.
        dst_ref: ``(N, 2)`` reference tie points.
        inliers: bool ``(N,)``.
        residuals_px: ``(N,)`` residual norms.
        title: figure title.
    """
    from xgeo.viz import report_figure

    if not (float(scale) > 0):
        raise ConfigError(f"scale={scale!r} must be > 0 (preview pixels per grid pixel)")
    for name, img in (("ref_preview", ref_preview), ("mov_before", mov_before),
                      ("mov_after", mov_after)):
        if np.ndim(img) != 2:
            raise ShapeError(name, "(h, w)", np.shape(img))
    dst = _points("dst_ref", dst_ref)
    src = _points("src_grid", src_grid, len(dst))
    fig = report_figure(
        ref_preview=np.asarray(ref_preview, np.float32),
        mov_before=np.asarray(mov_before, np.float32),
        mov_after=np.asarray(mov_after, np.float32), scale=float(scale), src_grid=src,
        dst_ref=dst, inliers=_column("inliers", inliers, len(dst), bool),
        residuals_px=_column("residuals_px", residuals_px, len(dst), np.float64), title=title)
    with atomic_target(path, "png", ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)
