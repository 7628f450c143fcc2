"""Put a moving scene on the reference grid and write both, normalised, to one Zarr v3 store.

Memory does not grow with scene size: the reference is read window by window, the moving scene
is resampled window by window through a ``WarpedVRT`` (GDAL's warper, bilinear, by its own
georeferencing: any CRS, other UTM zones), and each tile is written to its own Zarr chunk.
GDAL's block cache is capped while a pair is prepared.

Store layout (Zarr v3 group): arrays ``ref`` and ``mov`` float32 ``(y, x)`` chunked
``(tile_size, tile_size)`` with NaN for invalid pixels (fill value NaN, chunks never written
where a side has no valid pixel), 1-D coordinate arrays ``x`` and ``y`` (map coordinates of
pixel centres, common-grid CRS) so ``xarray.open_zarr`` opens it, and group attributes
``xgeo_plan`` (the :class:`TilePlan` as JSON), ``crs_wkt`` and ``transform``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import zarr
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from xgeo.errors import AllNodataError, ConfigError, InputError, NoOverlapError
from xgeo.modalities import NormStats, compute_stats, normalise
from xgeo.scenes import Scene, open_scene
from xgeo.scenes._scene import _read_valid
from xgeo.tiling._plan import Tile, TileData, TilePlan, mov_file_to_grid

__all__ = ["prepare_pair", "read_tile", "load_plan", "footprint_on_grid"]

#: GDAL block cache while preparing a pair, in MB (GDAL's default is 5 % of RAM).
GDAL_CACHE_MB = 32
_OUTSIDE = "outside the moving scene footprint"


def footprint_on_grid(ref: Scene, mov: Scene, n: int = 64) -> tuple[float, float, float, float]:
    """Bounding box of the moving file's outline on the common grid.

    Args:
        ref, mov: the scenes.
        n: points per edge of the densified outline.

    Returns:
        ``(xmin, ymin, xmax, ymax)`` in grid pixel coordinates (pixel-centre convention);
        NaNs if no outline point can be transformed.
    """
    t = np.linspace(0.0, 1.0, n)
    w, h = float(mov.width), float(mov.height)
    edges = np.concatenate([
        np.stack([t * w, np.zeros(n)], 1), np.stack([t * w, np.full(n, h)], 1),
        np.stack([np.zeros(n), t * h], 1), np.stack([np.full(n, w), t * h], 1),
    ]) - 0.5  # pixel corners expressed in the pixel-centre convention
    g = mov_file_to_grid(ref, mov, edges)
    g = g[np.all(np.isfinite(g), axis=1)]
    if len(g) == 0:
        return (math.nan, math.nan, math.nan, math.nan)
    return (float(g[:, 0].min()), float(g[:, 1].min()), float(g[:, 0].max()),
            float(g[:, 1].max()))


def _check_overlap(ref: Scene, mov: Scene) -> tuple[float, float, float, float]:
    box = footprint_on_grid(ref, mov)
    xmin, ymin, xmax, ymax = box
    inside = (np.isfinite(xmin) and xmax > -0.5 and xmin < ref.width - 0.5
              and ymax > -0.5 and ymin < ref.height - 0.5)
    if not inside:
        raise NoOverlapError(
            f"the moving scene {mov.path} does not overlap the reference on the ground",
            ref.path,
            f"check that both cover the same area (reference bounds {_fmt(ref.bounds)}, moving "
            f"bounds {_fmt(mov.bounds)} in their own CRSs) and that their CRSs are right")
    return box


def _fmt(b: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in b) + ")"


def _make_tiles(shape: tuple[int, int], tile_size: int, halo: int) -> list[Tile]:
    h, w = shape
    return [Tile(row=r, col=c, y0=r * tile_size, y1=min(h, (r + 1) * tile_size),
                 x0=c * tile_size, x1=min(w, (c + 1) * tile_size), halo=halo)
            for r in range(math.ceil(h / tile_size)) for c in range(math.ceil(w / tile_size))]


def _warped_vrt(src: Any, ref: Scene, mov: Scene) -> WarpedVRT:
    src_nodata = mov.nodata
    if src_nodata is None and np.dtype(mov.dtype).kind == "f":
        src_nodata = float("nan")
    kw: dict[str, Any] = {}
    if src_nodata is not None:
        kw["src_nodata"] = src_nodata
    # the Scene's geotransform, not the file's: a coarse correction (xgeo.tiling.coarse_georef)
    # lives only in the Scene
    kw.update(src_transform=mov.affine, src_crs=mov.crs)
    return WarpedVRT(src, crs=ref.crs, transform=ref.affine, width=ref.width, height=ref.height,
                     resampling=Resampling.bilinear, add_alpha=True, dtype="float32", **kw)


def _read_warped(vrt: WarpedVRT, mov: Scene, win: Window) -> np.ndarray:
    """float32 ``(C, h, w)`` of the moving scene on the grid, NaN where the warper's alpha is 0."""
    idx = [*mov.bands, vrt.count]  # alpha is the last band of the VRT
    data = vrt.read(idx, window=win, out_dtype="float32")
    alpha = data[-1]
    out = data[:-1]
    out[:, alpha < 128] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def _validate(tile_size: int, halo: int, min_valid: float) -> None:
    if int(tile_size) < 16:
        raise ConfigError(f"tile_size must be >= 16, got {tile_size}")
    if int(halo) < 0:
        raise ConfigError(f"halo must be >= 0, got {halo}")
    if not 0.0 <= float(min_valid) <= 1.0:
        raise ConfigError(f"min_valid must be in [0, 1], got {min_valid}")


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished temporary store to ``final``, replacing an older Zarr store there."""
    trash = None
    if final.exists():
        if not (final / "zarr.json").exists():
            raise InputError("exists and is not a Zarr store; refusing to overwrite it", final,
                             "remove it or choose another store path")
        trash = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, trash)
    os.replace(tmp, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def prepare_pair(ref: Scene | str | Path, mov: Scene | str | Path, store: str | Path, *,
                 tile_size: int = 1024, halo: int = 64, min_valid: float = 0.2,
                 progress: Callable[[int, int], None] | None = None,
                 coarse: dict[str, Any] | None = None) -> TilePlan:
    """Resample ``mov`` onto ``ref``'s grid, normalise both and write them to a Zarr v3 store.

    Args:
        ref: reference scene (its grid is the common grid) or a path.
        mov: moving scene or a path.
        store: path of the Zarr v3 store to write (replaced if it is an older store). It is
            written under a temporary name and renamed when complete.
        tile_size: tile side and Zarr chunk side in pixels.
        halo: extra pixels around each tile returned by :func:`read_tile`.
        min_valid: minimum fraction of core pixels valid on *both* sides for a tile to be
            kept; other tiles are recorded in ``TilePlan.skipped`` with the reason.
        progress: called as ``progress(done, total)`` after each tile.
        coarse: the ``info`` of a :func:`~xgeo.tiling.coarse_georef` correction already folded
            into ``mov``'s geotransform, kept in the plan (and so in the report).

    Returns:
        The :class:`TilePlan` (also stored in the store's attributes).

    Raises:
        NoOverlapError: the footprints do not intersect (checked before any pixel is read).
        AllNodataError: a scene, or the overlap on one side, has no valid pixel.
        ConfigError: bad ``tile_size``, ``halo`` or ``min_valid``.
    """
    _validate(tile_size, halo, min_valid)
    ref_s = ref if isinstance(ref, Scene) else open_scene(ref)
    mov_s = mov if isinstance(mov, Scene) else open_scene(mov)
    xmin, ymin, xmax, ymax = _check_overlap(ref_s, mov_s)
    final = Path(store)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        # rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax: it is in bytes
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20):
            ref_stats = compute_stats(ref_s)
            mov_stats = compute_stats(mov_s)
            plan = _write_tiles(ref_s, mov_s, ref_stats, mov_stats, tmp, str(final), tile_size,
                                halo, min_valid, (xmin - 2, ymin - 2, xmax + 2, ymax + 2),
                                progress, json.dumps(coarse, sort_keys=True) if coarse else "")
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return plan


def _write_tiles(ref: Scene, mov: Scene, ref_stats: NormStats, mov_stats: NormStats, tmp: Path,
                 store: str, tile_size: int, halo: int, min_valid: float,
                 box: tuple[float, float, float, float],
                 progress: Callable[[int, int], None] | None, coarse: str = "") -> TilePlan:
    shape = (ref.height, ref.width)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    arrays = {name: root.create_array(name, shape=shape, chunks=(tile_size, tile_size),
                                      dtype="float32", fill_value=np.nan,
                                      dimension_names=("y", "x"))
              for name in ("ref", "mov")}
    aff = ref.affine
    xs = root.create_array("x", shape=(ref.width,), dtype="float64", dimension_names=("x",))
    xs[:] = aff.c + aff.a * (np.arange(ref.width) + 0.5)
    ys = root.create_array("y", shape=(ref.height,), dtype="float64", dimension_names=("y",))
    ys[:] = aff.f + aff.e * (np.arange(ref.height) + 0.5)

    all_tiles = _make_tiles(shape, tile_size, halo)
    kept: list[Tile] = []
    skipped: list[tuple[Tile, str]] = []
    n_ref = n_mov = 0
    bx0, by0, bx1, by1 = box
    with rasterio.open(ref.path) as rds, rasterio.open(mov.path) as mds, \
            _warped_vrt(mds, ref, mov) as vrt:
        for i, tile in enumerate(all_tiles):
            if tile.x1 - 1 < bx0 or tile.x0 > bx1 or tile.y1 - 1 < by0 or tile.y0 > by1:
                skipped.append((tile, _OUTSIDE))
            else:
                win = Window(tile.x0, tile.y0, tile.x1 - tile.x0, tile.y1 - tile.y0)
                r = normalise(_read_valid(rds, list(ref.bands), win), ref_stats)
                m = normalise(_read_warped(vrt, mov, win), mov_stats)
                vr, vm = np.isfinite(r), np.isfinite(m)
                cr, cm = int(vr.sum()), int(vm.sum())
                n_ref += cr
                n_mov += cm
                sl = (slice(tile.y0, tile.y1), slice(tile.x0, tile.x1))
                if cr:
                    arrays["ref"][sl] = r
                if cm:
                    arrays["mov"][sl] = m
                frac = float((vr & vm).mean())
                if cm == 0:
                    skipped.append((tile, _OUTSIDE if cr else "no valid pixel on either side"))
                elif frac >= min_valid and frac > 0:
                    kept.append(tile)
                else:
                    skipped.append((tile, f"valid fraction {frac:.3f} < min_valid {min_valid} "
                                          f"(ref {vr.mean():.3f}, mov {vm.mean():.3f})"))
            if progress is not None:
                progress(i + 1, len(all_tiles))
    if n_ref == 0:
        raise AllNodataError(f"no valid reference pixel inside the overlap with {mov.path}",
                             ref.path, "check the nodata value and masks, and the footprints")
    if n_mov == 0:
        raise AllNodataError(f"no valid pixel inside the overlap with the reference {ref.path}",
                             mov.path, "check the nodata value and masks, and the footprints")
    plan = TilePlan(ref=ref, mov=mov, shape=shape, tile_size=int(tile_size), halo=int(halo),
                    tiles=tuple(kept), skipped=tuple(skipped), store=store,
                    ref_stats=ref_stats, mov_stats=mov_stats, coarse=coarse)
    root.attrs.update({"xgeo_plan": plan.to_dict(), "crs_wkt": ref.crs,
                       "transform": list(ref.transform)})
    return plan


def load_plan(store: str | Path) -> TilePlan:
    """Read the :class:`TilePlan` saved in a store by :func:`prepare_pair`.

    Raises:
        MissingFileError: no store at that path.
        InputError: not a store written by :func:`prepare_pair`.
    """
    root = _open(store)
    if "xgeo_plan" not in root.attrs:
        raise InputError("Zarr store has no xgeo_plan attribute", store,
                         "it was not written by xgeo.tiling.prepare_pair")
    return TilePlan.from_json(dict(root.attrs["xgeo_plan"]))


def _open(store: str | Path) -> Any:
    from xgeo.errors import MissingFileError

    if not Path(store).exists():
        raise MissingFileError("Zarr store not found", store, "run prepare_pair first")
    return zarr.open_group(str(store), mode="r", zarr_format=3)


def read_tile(store: str | Path, tile: Tile) -> TileData:
    """Read one tile with its halo from a prepared store.

    Args:
        store: the store path (``TilePlan.store``).
        tile: the tile selector.

    Returns:
        :class:`TileData` with ``ref``/``mov`` float32 ``(h, w)`` (NaN invalid) and the halo
        window origin ``(x0, y0)`` on the common grid.
    """
    root = _open(store)
    ref = root["ref"]
    y0, y1, x0, x1 = tile.halo_window(tuple(ref.shape))
    sl = (slice(y0, y1), slice(x0, x1))
    return TileData(ref=np.asarray(ref[sl], np.float32),
                    mov=np.asarray(root["mov"][sl], np.float32), x0=x0, y0=y0)
