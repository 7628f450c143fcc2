"""Georeferenced scene pairs with a known misregistration (demo, tests, benchmarks).

``write_scene_pair`` renders two modalities of one world on the same grid, resamples the
moving one through a known ``mov_to_ref`` (similarity about the image centre + shift + smooth
local distortion) and writes ``ref.tif`` / ``mov.tif`` with identical geotransforms, so the
georeferencing does not explain the misregistration and the truth is exactly known.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xgeo.errors import ConfigError
from xgeo.synth.render import MODALITIES, render
from xgeo.synth.warp import Warp, _remap, similarity_warp
from xgeo.synth.world import World, generate_world

__all__ = ["SceneTruth", "write_scene_pair"]


@dataclass(frozen=True)
class SceneTruth:
    """The known misregistration of a written scene pair.

    ``mov_to_ref(q) = c + scale * R(rotation) * (D(q) - c) + shift`` with ``c`` the image
    centre and ``D`` a smooth local distortion of amplitude ``local_px`` (seeded).

    Attributes:
        seed: world / distortion seed.
        shape: ``(H, W)`` of both files.
        ref_modality, mov_modality: modalities written.
        shift_px, rotation_deg, scale, local_px: misregistration parameters.
        pixel_size, crs, transform: grid of both files (GDAL 6-tuple order of rasterio Affine
            ``a, b, c, d, e, f``).
        files: written file names by role (``ref``, ``mov``, optionally ``map_gpkg``).
        map_gpkg_frame: ``"mov"`` when the GeoPackage holds the misregistered map (moving side),
            ``"ref"`` when it holds the true vectors (reference side), else ``None``.
    """

    seed: int
    shape: tuple[int, int]
    ref_modality: str
    mov_modality: str
    shift_px: tuple[float, float]
    rotation_deg: float
    scale: float
    local_px: float
    pixel_size: float
    crs: str
    transform: tuple[float, float, float, float, float, float]
    files: dict[str, str] = field(default_factory=dict)
    map_gpkg_frame: str | None = None

    @property
    def warp(self) -> Warp:
        """The exact :class:`~xgeo.synth.warp.Warp` whose ``forward`` is ``mov_to_ref``."""
        return similarity_warp(self.shape, self.shift_px, self.rotation_deg, self.scale,
                               self.local_px, self.seed)

    def mov_to_ref(self, xy: np.ndarray) -> np.ndarray:
        """Pixel ``(N, 2)`` of mov.tif -> its true position ``(N, 2)`` in ref.tif pixels."""
        return self.warp.forward(np.asarray(xy, np.float64).reshape(-1, 2))

    def ref_to_mov(self, xy: np.ndarray) -> np.ndarray:
        """Exact inverse of :meth:`mov_to_ref`, ``(N, 2)`` -> ``(N, 2)``."""
        return self.warp.inverse(np.asarray(xy, np.float64).reshape(-1, 2))

    @property
    def mov_to_ref_matrix(self) -> np.ndarray:
        """float64 ``(3, 3)``: the global (similarity) part of :meth:`mov_to_ref`."""
        return self.warp.H_0to1.copy()

    def to_json(self) -> str:
        """JSON text with every field plus ``mov_to_ref_matrix`` (informative)."""
        d: dict[str, Any] = asdict(self)
        d["mov_to_ref_matrix"] = self.mov_to_ref_matrix.tolist()
        d["engine_version"] = _engine_version()
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> SceneTruth:
        """Rebuild from :meth:`to_json` output (the distortion is re-derived from the seed)."""
        d = json.loads(text)
        d.pop("mov_to_ref_matrix", None)
        d.pop("engine_version", None)
        d["shape"] = tuple(d["shape"])
        d["shift_px"] = tuple(d["shift_px"])
        d["transform"] = tuple(d["transform"])
        return cls(**d)


def _engine_version() -> str:
    from xgeo.synth import ENGINE_VERSION

    return ENGINE_VERSION


def _atomic_path(final: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    os.unlink(tmp)
    return Path(tmp)


def _write_tif(path: Path, data: np.ndarray, world: World, descriptions: list[str],
               nodata: float | None, modality: str | None = None) -> None:
    import rasterio

    arr = data if data.ndim == 3 else data[None]
    tmp = _atomic_path(path)
    profile = {
        "driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
        "dtype": arr.dtype.name, "crs": world.crs, "transform": world.transform,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
        "predictor": 2 if arr.dtype.kind in "ui" else 3, "BIGTIFF": "IF_SAFER",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    try:
        with rasterio.open(tmp, "w", **profile) as ds:
            if modality:
                ds.update_tags(XGEO_MODALITY=modality)  # read by xgeo.scenes.infer_modality
            for i in range(arr.shape[0]):
                ds.write(arr[i], i + 1)
                ds.set_band_description(i + 1, descriptions[i])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _encode(img: np.ndarray, modality: str) -> tuple[np.ndarray, list[str], float | None]:
    """Rendered float image -> file dtype, band names, nodata."""
    if modality == "optical":
        out = np.clip(np.round(img * 10000.0), 1, 65535).astype(np.uint16)  # 0 = nodata
        return out, ["red", "green", "blue", "nir"], 0
    if modality == "map":
        return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8), ["red", "green", "blue"], \
            None
    names = {"sar": "sigma0_db", "thermal": "brightness_temperature_k", "night": "radiance",
             "dem": "elevation_m", "depth": "height_m", "hillshade": "hillshade"}
    return img.astype(np.float32), [names.get(modality, modality)], float("nan")


def write_scene_pair(out_dir: str | os.PathLike[str], seed: int,
                     shape: tuple[int, int] = (4096, 4096), ref_modality: str = "optical",
                     mov_modality: str = "sar", shift_px: tuple[float, float] = (3.4, -2.7),
                     rotation_deg: float = 0.3, scale: float = 1.002, local_px: float = 1.5,
                     pixel_size: float = 10.0, crs: str = "EPSG:32633",
                     ref_style: dict[str, Any] | None = None,
                     mov_style: dict[str, Any] | None = None) -> SceneTruth:
    """Write ``ref.tif`` and ``mov.tif`` (and ``map.gpkg`` for a map side) plus ``truth.json``.

    Both files share the grid (CRS, geotransform, shape). ``mov.tif`` is the moving modality
    rendered from the same world and resampled so that its pixel ``q`` shows the ground at
    ref pixel ``truth.mov_to_ref(q)``. The world is generated with a margin so the moving image
    has no empty border. Optical is written as uint16 reflectance x 10000 (4 bands, nodata 0),
    map as uint8 RGB, the rest as float32.

    Args:
        out_dir: created if missing; files are written atomically (temp file + rename).
        seed: world, style and distortion seed.
        shape: ``(H, W)`` of both files.
        ref_modality, mov_modality: any of ``MODALITIES``.
        shift_px, rotation_deg, scale, local_px: the misregistration (see :class:`SceneTruth`).
        pixel_size, crs: grid.
        ref_style, mov_style: style keys passed to :func:`~xgeo.synth.render.render`
            (defaults: cloud-free optical, hillshade-free raw DEM).

    Returns:
        The :class:`SceneTruth` (also written as ``truth.json``).
    """
    for m in (ref_modality, mov_modality):
        if m not in MODALITIES:
            raise ConfigError(f"write_scene_pair: unknown modality {m!r}: not in {MODALITIES}")
    if not (0.5 < scale < 2.0):
        raise ConfigError(f"write_scene_pair: scale {scale} out of range (0.5, 2)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h, w = int(shape[0]), int(shape[1])
    truth_warp = similarity_warp((h, w), shift_px, rotation_deg, scale, local_px, seed)
    # margin: how far outside the ref grid the moving image samples
    gy, gx = np.meshgrid(np.linspace(0, h - 1, 33), np.linspace(0, w - 1, 33), indexing="ij")
    probe = np.stack([gx.ravel(), gy.ravel()], 1)
    reach = float(np.abs(truth_warp.forward(probe) - probe).max())
    margin = int(np.ceil(reach + 3 * local_px + 16))
    origin = (500000.0 - margin * pixel_size, 5300000.0 + margin * pixel_size)
    big = generate_world(seed, (h + 2 * margin, w + 2 * margin), pixel_size=pixel_size, crs=crs,
                         origin=origin)
    world = big.crop(margin, margin, w, h)
    defaults: dict[str, dict[str, Any]] = {"optical": {"cloud_cover": 0.0}}

    # reference: rendered on the ref grid itself (a window of the big world)
    ref_img = render(world, ref_modality, seed=seed * 2 + 1,
                     **{**defaults.get(ref_modality, {}), **(ref_style or {})})
    arr, names, nodata = _encode(ref_img, ref_modality)
    del ref_img
    _write_tif(out / "ref.tif", arr, world, names, nodata, ref_modality)
    del arr

    # moving: rendered on the big world, resampled once (rows in blocks to bound memory)
    mov_full = render(big, mov_modality, seed=seed * 2 + 2,
                      **{**defaults.get(mov_modality, {}), **(mov_style or {})})
    bands = mov_full if mov_full.ndim == 3 else mov_full[None]
    mov = np.empty((bands.shape[0], h, w), np.float32)
    xs = np.arange(w, dtype=np.float64)
    for y0 in range(0, h, 512):
        y1 = min(h, y0 + 512)
        grid = np.empty((y1 - y0, w, 2), np.float64)
        grid[..., 0] = xs[None, :]
        grid[..., 1] = np.arange(y0, y1, dtype=np.float64)[:, None]
        m = truth_warp.forward(grid) + margin
        mov[:, y0:y1] = _remap(bands, m.astype(np.float32), float("nan"), 1)
    del mov_full, bands
    mov_img = mov if mov.shape[0] > 1 else mov[0]
    arr, names, nodata = _encode(np.nan_to_num(mov_img, nan=0.0) if mov_modality in
                                 ("optical", "map") else mov_img, mov_modality)
    del mov, mov_img
    _write_tif(out / "mov.tif", arr, world, names, nodata, mov_modality)
    del arr

    files = {"ref": "ref.tif", "mov": "mov.tif", "truth": "truth.json"}
    frame = None
    if "map" in (ref_modality, mov_modality):
        frame = "mov" if mov_modality == "map" else "ref"
        _write_gpkg(out / "map.gpkg", world, truth_warp if frame == "mov" else None)
        files["map_gpkg"] = "map.gpkg"
    t = world.transform
    truth = SceneTruth(
        seed=int(seed), shape=(h, w), ref_modality=ref_modality, mov_modality=mov_modality,
        shift_px=(float(shift_px[0]), float(shift_px[1])), rotation_deg=float(rotation_deg),
        scale=float(scale), local_px=float(local_px), pixel_size=float(pixel_size), crs=str(crs),
        transform=(t.a, t.b, t.c, t.d, t.e, t.f), files=files, map_gpkg_frame=frame)
    tmp = _atomic_path(out / "truth.json")
    tmp.write_text(truth.to_json())
    os.replace(tmp, out / "truth.json")
    return truth


def _write_gpkg(path: Path, world: World, warp: Warp | None) -> None:
    """Write the world's vector layers; with ``warp`` they are moved ref -> mov (the
    misregistered map), i.e. every vertex ``p`` (ref pixel) goes to ``warp.inverse(p)``."""
    import shapely

    t = world.transform
    inv = ~t

    def move(coords: np.ndarray) -> np.ndarray:
        c = np.asarray(coords, np.float64)
        px = np.stack([inv.a * c[:, 0] + inv.b * c[:, 1] + inv.c,
                       inv.d * c[:, 0] + inv.e * c[:, 1] + inv.f], 1) - 0.5
        q = warp.inverse(px) + 0.5  # type: ignore[union-attr]
        return np.stack([t.a * q[:, 0] + t.b * q[:, 1] + t.c, t.d * q[:, 0] + t.e * q[:, 1] + t.f],
                        1)

    tmp = _atomic_path(path)
    try:
        for name, gdf in world.vectors.items():
            g = gdf.copy()
            if warp is not None and len(g):
                g["geometry"] = shapely.transform(g.geometry.values, move)
            if len(g):
                g.to_file(tmp, layer=name, driver="GPKG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
