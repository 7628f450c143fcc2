"""The whole co-registration path as plain functions over value objects.

``register(ref, mov, out)`` runs it in one process; ``flows/`` runs the same stage functions as
Prefect tasks mapped over the tile plan. Stages::

    plan_pair     open + validate both scenes, put mov on the ref grid, tile both into Zarr v3
    match_tiles   read tile pairs from Zarr, match them -> TileResult per tile (failures as data)
    fuse_tiles    per-tile filtering, global robust fit, model choice, QA -> FitResult
    write_output  warp (or rewrite the geotransform) and write a validated COG, atomically
    finish_report JSON report + tie points GeoPackage + PNG figure
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xgeo.errors import ConfigError, RegistrationError
from xgeo.matcher import Matcher, load_matcher
from xgeo.types import MODEL_KINDS

__all__ = [
    "RegisterConfig",
    "TileResult",
    "RegistrationResult",
    "get_matcher",
    "weights_version",
    "plan_pair",
    "match_tiles",
    "fuse_tiles",
    "write_output",
    "finish_report",
    "register",
]

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class RegisterConfig:
    """Settings of one registration; validated at construction, hashed for caching."""

    matcher: str = "auto"  # "auto" (PIPELINE_DEFAULT_MATCHER) | cascade | universal | classical | ...
    matcher_options: tuple[tuple[str, Any], ...] = ()  # extra matcher kwargs, as sorted pairs
    model: str = "auto"  # "auto" | shift | affine | poly2 | poly3 | tps
    tile_size: int = 1024  # core tile size on the common grid (px)
    halo: int = 64  # context around each tile (px)
    min_valid: float = 0.2  # tiles with less valid overlap are skipped (and recorded)
    threshold: float = 3.0  # inlier gate (px) for per-tile and global robust fits
    min_inliers: int = 6  # fewer surviving tie points -> RegistrationError
    resample: bool = True  # False: shift/affine only rewrite the geotransform (no resampling)
    ref_modality: str | None = None  # None: inferred from the file
    mov_modality: str | None = None
    ref_bands: tuple[int, ...] | None = None  # 1-based bands used for matching; None: all
    mov_bands: tuple[int, ...] | None = None
    batch_size: int = 4  # tile pairs per matcher batch
    coarse: bool = False  # first fold an overview match (universal matcher, search) into mov's geotransform

    def __post_init__(self) -> None:
        if self.model != "auto" and self.model not in MODEL_KINDS:
            raise ConfigError(
                f"model={self.model!r} is not one of {('auto', *MODEL_KINDS)}. "
                "Hint: use --model auto to let held-out residuals choose"
            )
        if self.tile_size < 64:
            raise ConfigError(f"tile_size={self.tile_size} is too small (>= 64)")
        if not 0 <= self.halo <= self.tile_size:
            raise ConfigError(f"halo={self.halo} must be within [0, tile_size]")
        if not 0.0 <= self.min_valid <= 1.0:
            raise ConfigError(f"min_valid={self.min_valid} must be within [0, 1]")
        if self.threshold <= 0:
            raise ConfigError(f"threshold={self.threshold} must be > 0")
        if isinstance(self.matcher_options, dict):
            object.__setattr__(self, "matcher_options", tuple(sorted(self.matcher_options.items())))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["matcher_options"] = dict(self.matcher_options)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegisterConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"Unknown config keys {sorted(unknown)}; allowed: {sorted(known)}")
        d = dict(d)
        for k in ("ref_bands", "mov_bands"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        if isinstance(d.get("matcher_options"), dict):
            d["matcher_options"] = tuple(sorted(d["matcher_options"].items()))
        return cls(**d)

    @property
    def sha256(self) -> str:
        """Deterministic hash of the settings and of the matcher weights they resolve to."""
        payload = {"config": self.to_dict(), "weights": weights_version(self.matcher)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class TileResult:
    """Correspondences of one tile on the common grid, or why there are none.

    Attributes:
        tile: the tile selector.
        points_ref: float32 ``(N, 2)`` ref pixels (common grid).
        points_mov: float32 ``(N, 2)`` grid-mov pixels (common grid).
        confidence: float32 ``(N,)``.
        status: ``"ok"`` | ``"no_matches"`` | ``"failed"``.
        reason: empty when ok, else a short reason.
        seconds: wall time spent matching the tile.
        route: the cascade matcher's route (``"first"``: its classical matches kept;
            ``"escalated-second"`` / ``"escalated-first"``: escalated to the learned matcher,
            whose / the classical result was kept); empty for other matchers.
    """

    tile: Any
    points_ref: np.ndarray
    points_mov: np.ndarray
    confidence: np.ndarray
    status: str = "ok"
    reason: str = ""
    seconds: float = 0.0
    route: str = ""

    def __len__(self) -> int:
        return len(self.confidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tile": json.loads(self.tile.to_json()),
            "points_ref": self.points_ref.tolist(),
            "points_mov": self.points_mov.tolist(),
            "confidence": self.confidence.tolist(),
            "status": self.status,
            "reason": self.reason,
            "seconds": self.seconds,
            "route": self.route,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TileResult:
        from xgeo.tiling import Tile

        return cls(
            tile=Tile.from_json(json.dumps(d["tile"])),
            points_ref=np.asarray(d["points_ref"], np.float32).reshape(-1, 2),
            points_mov=np.asarray(d["points_mov"], np.float32).reshape(-1, 2),
            confidence=np.asarray(d["confidence"], np.float32).reshape(-1),
            status=d["status"],
            reason=d["reason"],
            seconds=float(d["seconds"]),
            route=str(d.get("route", "")),
        )


@dataclass
class RegistrationResult:
    """What ``register`` returns: the plan, the fit, outputs and the report dict."""

    plan: Any
    fit: Any
    tiles: list[TileResult]
    output: Path | None
    report: dict[str, Any]
    config: RegisterConfig
    seconds: float
    report_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def mov_file_to_ref(self, xy: np.ndarray) -> np.ndarray:
        """Recovered mapping: pixels ``(N, 2)`` of the moving input file -> ref file pixels."""
        grid = self.plan.mov_file_to_grid(np.asarray(xy, np.float64))
        return np.asarray(self.fit.model(grid), np.float64)


# --------------------------------------------------------------------------- matcher


_MATCHERS: dict[tuple[str, tuple[tuple[str, Any], ...]], Matcher] = {}


# The pipeline's default matcher: "cascade" (xgeo.matcher.cascade) runs the classical matcher on
# every tile and escalates the tiles whose classical matches do not hold together (under half of
# them, or under 8, within 3 px of one affine) to the learned universal+structural matcher,
# keeping whichever result holds together better. On the spine's real pairs, where
# georeferencing leaves small errors, it is the classical matcher tie point for tie point (its
# figures, at its cost; the demo escalates 4 of 16 tiles, same RMSE, 1.29x the time); with a few
# degrees or per cent of error its tiles escalate (README, "The pipeline's default matcher":
# OLI/TIRS with 4 deg, 3 % and (24, -17) px: classical 17.7 px, cascade 0.54 px).
PIPELINE_DEFAULT_MATCHER = "cascade"


# registered matchers that run the shipped learned weights (on every pair, or on escalation)
LEARNED_MATCHERS = ("universal", "universal+structural", "cascade")


def _resolve_matcher_name(name: str) -> str:
    return PIPELINE_DEFAULT_MATCHER if name == "auto" else name


LEARNED_MAX_SIDE = 640  # longest tile side fed to a learned matcher in the pipeline (px)
# below this share of inlier tie points the report warns: `xgeo demo --matcher universal` with
# 1152 px tiles had 11 % and a thin-plate spline 18.9 px off (fit residual 1.38 px); its good
# runs had 18-20 %, the classical matcher's well above
LOW_INLIER_RATIO = 0.15


def inlier_warning(n_tiepoints: int, n_inliers: int) -> str | None:
    """The report's warning when under ``LOW_INLIER_RATIO`` of the tie points are inliers."""
    if not n_tiepoints or n_inliers / n_tiepoints >= LOW_INLIER_RATIO:
        return None
    return (f"only {100 * n_inliers / n_tiepoints:.0f} % of {n_tiepoints} tie points are inliers: "
            "the fit may follow a chance-consistent subset. Check the figure; try --matcher "
            "classical, --tile-size 512 or --model affine")


# above this ratio of held-out to fit RMSE (and a held-out RMSE over HELDOUT_MIN_PX) the report
# warns: the spine's real pairs with a right registration read 1.05-1.29 (tests/bench/
# register_matchers.py, the demo's TPS 1.29); classical tiles that followed wrong matches read
# 2.69 (OLI/TIRS with 4 deg of error, 17.7 px off) and 1.73 (CFOG optical-SAR, 1.75 px off)
HELDOUT_RATIO = 1.5
HELDOUT_MIN_PX = 1.0


def heldout_warning(rmse_px: float | None, heldout_rmse_px: float | None) -> str | None:
    """The report's warning when the fit predicts held-out tie points much worse than it fits
    its own (spatially blocked cross-validation): it followed tie points that do not agree."""
    if not rmse_px or not heldout_rmse_px or heldout_rmse_px <= HELDOUT_MIN_PX:
        return None
    if heldout_rmse_px <= HELDOUT_RATIO * rmse_px:
        return None
    return (f"held-out tie points are predicted to {heldout_rmse_px:.2f} px against a fit RMSE "
            f"of {rmse_px:.2f} px ({heldout_rmse_px / rmse_px:.1f}x): the tie points may not "
            "agree on one geometry. Check the figure; try --matcher cascade, --coarse or "
            "--model affine")


def get_matcher(cfg: RegisterConfig) -> Matcher:
    """The matcher a config asks for, loaded once per process (i.e. once per dask worker)."""
    name = _resolve_matcher_name(cfg.matcher)
    opts = dict(cfg.matcher_options)
    if name in LEARNED_MATCHERS or name.endswith(".safetensors"):
        opts.setdefault("orientation_search", False)  # tiles are aligned by georeferencing
        opts.setdefault("scale_search", False)  # ... and share one grid
        # the network trained on 224 px crops and degrades on large inputs: `xgeo demo`'s
        # 1152 px tiles (1024 + halos) at full size gave 18.9 px check-point RMSE, downscaled to
        # 640 px 1.36 px; 640 = the spine protocol's 512 px tile + halos, where the learned
        # matchers meet every bar (and --tile-size 512 gives 0.87 px on the demo)
        opts.setdefault("max_side", min(cfg.tile_size + 2 * cfg.halo, LEARNED_MAX_SIDE))
    key = (name, tuple(sorted(opts.items())))
    if key not in _MATCHERS:
        _MATCHERS[key] = load_matcher(name, **opts)
    return _MATCHERS[key]


def weights_version(matcher: str = "auto") -> str:
    """Identity of the matcher's weights (sha256 prefix of the file) for cache keys."""
    name = _resolve_matcher_name(matcher)
    path: Path | None = None
    if name.endswith(".safetensors"):
        path = Path(name)
    elif name in LEARNED_MATCHERS:
        from xgeo.matcher.weights import shipped_weights_path

        path = shipped_weights_path()
    if path is None or not path.exists():
        return f"{name}:no-weights"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{name}:{h.hexdigest()[:16]}"


# --------------------------------------------------------------------------- stages


def plan_pair(
    ref: str | Path,
    mov: str | Path,
    workdir: str | Path,
    cfg: RegisterConfig | None = None,
    progress: Progress | None = None,
) -> Any:
    """Open and validate both scenes, put mov on the ref grid, tile both into a Zarr v3 store.

    Returns:
        the :class:`xgeo.tiling.TilePlan`; its store lives at ``workdir/tiles.zarr``.
    """
    from xgeo.scenes import open_scene
    from xgeo.tiling import prepare_pair

    cfg = cfg or RegisterConfig()
    ref_scene = open_scene(ref, modality=cfg.ref_modality, bands=cfg.ref_bands)
    mov_scene = open_scene(mov, modality=cfg.mov_modality, bands=cfg.mov_bands)
    coarse = None
    if cfg.coarse:  # far-off georeferencing: overviews matched with the orientation/scale search
        from xgeo.tiling import coarse_georef

        if progress is not None:
            progress("coarse", 0, 1)
        mov_scene, coarse = coarse_georef(ref_scene, mov_scene)
        if progress is not None:
            progress("coarse", 1, 1)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    cb = None if progress is None else (lambda d, t: progress("tile", d, t))
    return prepare_pair(
        ref_scene,
        mov_scene,
        Path(workdir) / "tiles.zarr",
        tile_size=cfg.tile_size,
        halo=cfg.halo,
        min_valid=cfg.min_valid,
        progress=cb,
        coarse=coarse,
    )


def _to_tile_result(tile: Any, data: Any, matches: Any, t0: float) -> TileResult:
    """Tile-local matches -> common-grid points kept in the tile's core window."""
    m = matches.offset((data.x0, data.y0), (data.x0, data.y0))
    # keep points whose ref position falls in the tile's core window (halos overlap)
    p = m.points0
    core = (p[:, 0] >= tile.x0 - 0.5) & (p[:, 0] < tile.x1 - 0.5)
    core &= (p[:, 1] >= tile.y0 - 0.5) & (p[:, 1] < tile.y1 - 0.5)
    m = m.subset(core)
    status = "ok" if len(m) else "no_matches"
    return TileResult(
        tile, m.points0, m.points1, m.confidence, status,
        "" if len(m) else "matcher returned no matches in the tile core", time.perf_counter() - t0,
        str(matches.info.get("cascade", "")),
    )


def match_tiles(
    plan: Any,
    tiles: Sequence[Any] | None,
    cfg: RegisterConfig | None = None,
    matcher: Matcher | None = None,
    progress: Progress | None = None,
) -> list[TileResult]:
    """Match the tile pairs of ``plan`` (all tiles when ``tiles`` is None).

    A tile whose matching raises is recorded as ``status="failed"`` with its reason; the others
    go on (failures are data, as in xdem's blockwise coregistration).
    """
    from xgeo.tiling import read_tile

    cfg = cfg or RegisterConfig()
    matcher = matcher or get_matcher(cfg)
    tiles = list(plan.tiles if tiles is None else tiles)
    out: list[TileResult] = []
    bs = max(1, cfg.batch_size)
    for start in range(0, len(tiles), bs):
        batch = tiles[start : start + bs]
        t0 = time.perf_counter()
        datas = []
        for tile in batch:
            try:
                datas.append(read_tile(plan.store, tile))
            except Exception as exc:  # noqa: BLE001 - recorded per tile
                datas.append(exc)
        ok = [(t, d) for t, d in zip(batch, datas, strict=True) if not isinstance(d, Exception)]
        results: dict[Any, TileResult] = {}
        try:
            matches = matcher.match_batch([(d.ref, d.mov) for _, d in ok])
            for (tile, d), mm in zip(ok, matches, strict=True):
                results[tile] = _to_tile_result(tile, d, mm, t0)
        except Exception:  # noqa: BLE001 - fall back to one by one to isolate the bad tile
            for tile, d in ok:
                t1 = time.perf_counter()
                try:
                    results[tile] = _to_tile_result(tile, d, matcher.match(d.ref, d.mov), t1)
                except Exception as exc:  # noqa: BLE001
                    results[tile] = _failed(tile, exc, t1)
        for tile, d in zip(batch, datas, strict=True):
            out.append(results[tile] if tile in results else _failed(tile, d, t0))
        if progress is not None:
            progress("match", len(out), len(tiles))
    return out


def _failed(tile: Any, exc: BaseException, t0: float) -> TileResult:
    z = np.zeros((0, 2), np.float32)
    return TileResult(tile, z, z, np.zeros(0, np.float32), "failed",
                      f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)


def fuse_tiles(plan: Any, results: Sequence[TileResult], cfg: RegisterConfig | None = None) -> Any:
    """Fuse all tiles' correspondences into one ``mov_to_ref`` model with QA."""
    from xgeo.geometry import fuse

    cfg = cfg or RegisterConfig()
    good = [r for r in results if len(r)]
    if not good:
        reasons = sorted({f"{r.tile.key}: {r.status} {r.reason}".strip() for r in results})
        raise RegistrationError(
            "No tie points in any tile"
            + (f" ({'; '.join(reasons[:5])})" if reasons else " (no tile had enough valid overlap)")
            + ". Hint: check that the scenes overlap and show the same area; try --matcher classical"
            " or a larger --tile-size"
        )
    src = np.concatenate([r.points_mov for r in good])
    dst = np.concatenate([r.points_ref for r in good])
    conf = np.concatenate([r.confidence for r in good])
    tile_ids = np.concatenate([np.full(len(r), r.tile.key, dtype=object) for r in good])
    return fuse(
        src, dst, conf, tile_ids, kind=cfg.model, pixel_size=float(plan.pixel_size),
        threshold=cfg.threshold, min_inliers=cfg.min_inliers,
    )


def write_output(
    plan: Any, fit: Any, out_path: str | Path, cfg: RegisterConfig | None = None,
    progress: Progress | None = None,
) -> Path:
    """Warp the moving scene onto the reference grid (or rewrite its geotransform) as a COG."""
    from xgeo.warp import warp_to_cog

    cfg = cfg or RegisterConfig()
    resample = cfg.resample or fit.model.to_matrix() is None
    cb = None if progress is None else (lambda d, t: progress("warp", d, t))
    return Path(warp_to_cog(plan, fit.model, out_path, resample=resample, progress=cb))


def mov_to_ref_pixel(plan: Any, fit: Any) -> np.ndarray | None:
    """3x3 matrix: moving *file* pixel -> reference file pixel, when the model is linear."""
    m = fit.model.to_matrix()
    if m is None:
        return None
    return np.asarray(m, np.float64) @ np.asarray(plan.mov_file_to_grid_matrix(), np.float64)


def mov_to_ref_pixel_approx(plan: Any, fit: Any, n: int = 32) -> np.ndarray:
    """Least-squares affine (3x3) of the fitted mapping, moving file pixel -> ref pixel.

    For non-linear models this is the best linear summary over the scene (the full model is in
    ``model_params``); for linear models it equals :func:`mov_to_ref_pixel`.
    """
    h, w = plan.mov.height, plan.mov.width
    gx, gy = np.meshgrid(np.linspace(0, w - 1, n), np.linspace(0, h - 1, n))
    uv = np.stack([gx.ravel(), gy.ravel()], 1)
    ref = np.asarray(fit.model(plan.mov_file_to_grid(uv)), np.float64)
    a = np.column_stack([uv, np.ones(len(uv))])
    sol, *_ = np.linalg.lstsq(a, ref, rcond=None)
    return np.vstack([sol.T, [0.0, 0.0, 1.0]])


def _store_preview(store: str | Path, name: str, step: int) -> np.ndarray:
    import zarr

    arr = zarr.open_group(str(store), mode="r")[name]
    return np.asarray(arr[::step, ::step], np.float32)


def finish_report(
    plan: Any,
    fit: Any,
    results: Sequence[TileResult],
    cfg: RegisterConfig,
    out_path: str | Path | None,
    report_path: str | Path,
    seconds: float,
    matcher: Matcher | None = None,
) -> dict[str, Any]:
    """Write the JSON report, the tie points GeoPackage and the PNG figure next to it."""
    from xgeo import report as rep

    report_path = Path(report_path)
    good = [r for r in results if len(r)]
    src = np.concatenate([r.points_mov for r in good]) if good else np.zeros((0, 2))
    dst = np.concatenate([r.points_ref for r in good]) if good else np.zeros((0, 2))
    conf = np.concatenate([r.confidence for r in good]) if good else np.zeros(0)
    tile_ids = (np.concatenate([np.full(len(r), r.tile.key, dtype=object) for r in good])
                if good else np.zeros(0, object))
    gpkg = report_path.with_suffix(".gpkg")
    png = report_path.with_suffix(".png")
    outputs: dict[str, Any] = {"cog": str(out_path) if out_path else None,
                               "tiepoints": str(gpkg), "figure": str(png)}
    matcher = matcher or get_matcher(cfg)
    tiles_info = {
        r.tile.key: {"status": r.status, "reason": r.reason, "n_matches": len(r),
                     "seconds": round(r.seconds, 3), **({"route": r.route} if r.route else {})}
        for r in results
    }
    routes = Counter(r.route for r in results if r.route)
    tiles_info.update({t.key: {"status": "skipped", "reason": why} for t, why in plan.skipped})
    report = rep.build_report(
        status="ok",
        model=fit.model,
        fit=fit,
        plan=plan,
        seconds=seconds,
        mov_to_ref_pixel=mov_to_ref_pixel(plan, fit),
        inputs={"ref": plan.ref.path, "mov": plan.mov.path, "ref_modality": plan.ref.modality,
                "mov_modality": plan.mov.modality},
        outputs=outputs,
        matcher=matcher.describe(),
        extra={"config": cfg.to_dict(), "config_sha256": cfg.sha256, "tiles": tiles_info,
               "mov_to_ref_pixel_approx": mov_to_ref_pixel_approx(plan, fit).tolist(),
               "weights_version": weights_version(cfg.matcher),
               **({"cascade_routes": dict(sorted(routes.items()))} if routes else {}),
               **({"coarse": json.loads(plan.coarse)} if plan.coarse else {})},
    )
    n_tp, n_in = int(report.get("n_tiepoints") or 0), int(report.get("n_inliers") or 0)
    report["inlier_ratio"] = n_in / n_tp if n_tp else 0.0
    for warn in (inlier_warning(n_tp, n_in),
                 heldout_warning(fit.qa.get("rmse_px"), fit.qa.get("heldout_rmse_px"))):
        if warn:
            report.setdefault("warnings", []).append(warn)
    if len(src):
        rep.write_tiepoints_gpkg(gpkg, src_grid=src, dst_ref=dst, confidence=conf,
                                 inliers=fit.inliers, residuals_px=fit.residuals_px,
                                 tile_ids=tile_ids, plan=plan)
    try:
        h, w = plan.shape
        step = max(1, int(np.ceil(max(h, w) / 1024)))
        ref_prev = _store_preview(plan.store, "ref", step)
        before = _store_preview(plan.store, "mov", step)
        after = (rep.read_preview(out_path, max_side=1024) if out_path and
                 Path(out_path).exists() and cfg.resample else before)
        after = _fit_shape(after, ref_prev.shape)
        rep.plot_report(png, ref_preview=ref_prev, mov_before=before, mov_after=after,
                        scale=1.0 / step, src_grid=src, dst_ref=dst, inliers=fit.inliers,
                        residuals_px=fit.residuals_px,
                        title=f"{Path(plan.mov.path).name} -> {Path(plan.ref.path).name}: "
                              f"{fit.model.kind}, RMSE {fit.qa['rmse_px']:.2f} px")
    except Exception as exc:  # noqa: BLE001 - a figure must never fail a registration
        report.setdefault("warnings", []).append(f"figure not written: {exc}")
        outputs["figure"] = None
    rep.write_json(report, report_path)
    return report


def _fit_shape(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if a.shape == tuple(shape):
        return a
    import cv2

    return cv2.resize(a.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- one call


def register(
    ref: str | Path,
    mov: str | Path,
    out: str | Path | None,
    cfg: RegisterConfig | None = None,
    *,
    report: str | Path | None = None,
    workdir: str | Path | None = None,
    progress: bool | Progress = False,
    matcher: Matcher | None = None,
) -> RegistrationResult:
    """Co-register ``mov`` to ``ref``: plan, match, fuse, write the COG and the report.

    Args:
        ref: reference raster (its grid is the output grid).
        mov: moving raster (any CRS overlapping ``ref``).
        out: output COG path, or None to only fit (no output raster).
        cfg: settings; defaults to :class:`RegisterConfig`.
        report: JSON report path (a ``.gpkg`` and ``.png`` are written beside it).
        workdir: where the Zarr tile store goes; a temporary folder (removed after) when None.
        progress: True for a rich progress display, or a ``(stage, done, total)`` callback.
        matcher: an already loaded matcher (else from ``cfg.matcher``).

    Raises:
        InputError subclasses for unusable inputs (named file, hint), RegistrationError when no
        trustworthy model can be fitted. Nothing is left at ``out`` on failure.
    """
    cfg = cfg or RegisterConfig()
    t0 = time.perf_counter()
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="xgeo-")
        workdir = tmp
    ctx, cb = _progress_context(progress)
    try:
        with ctx:
            plan = plan_pair(ref, mov, workdir, cfg, progress=cb)
            m = matcher or get_matcher(cfg)
            results = match_tiles(plan, None, cfg, matcher=m, progress=cb)
            fit = fuse_tiles(plan, results, cfg)
            out_path = write_output(plan, fit, out, cfg, progress=cb) if out else None
            seconds = time.perf_counter() - t0
            rep: dict[str, Any] = {}
            if report is not None:
                rep = finish_report(plan, fit, results, cfg, out_path, report, seconds, matcher=m)
            return RegistrationResult(plan, fit, results, out_path, rep, cfg,
                                      time.perf_counter() - t0,
                                      Path(report) if report else None)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class _NullCtx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def _progress_context(progress: bool | Progress) -> tuple[Any, Progress | None]:
    if callable(progress):
        return _NullCtx(), progress
    if not progress:
        return _NullCtx(), None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
    names = {"coarse": "coarse alignment (overviews)", "tile": "tiling to Zarr",
             "match": "matching tiles", "warp": "writing COG"}
    ids: dict[str, Any] = {}

    def cb(stage: str, done: int, total: int) -> None:
        if stage not in ids:
            ids[stage] = bar.add_task(names.get(stage, stage), total=total)
        bar.update(ids[stage], completed=done, total=total)

    return bar, cb
