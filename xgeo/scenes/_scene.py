"""The :class:`Scene` value object and lazy readers over any GDAL raster."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from xgeo.errors import ConfigError, MissingCRSError, MissingFileError, NotARasterError
from xgeo.scenes._infer import infer_modality, tokens_of
from xgeo.types import MODALITIES

__all__ = ["Scene", "open_scene", "open_dataarray", "read_window", "default_bands"]

_RGB_NAMES = {"RED": 0, "R": 0, "B04": 0, "B4": 0, "GREEN": 1, "G": 1, "B03": 1, "B3": 1,
              "BLUE": 2, "B": 2, "B02": 2, "B2": 2}


@dataclass(frozen=True)
class Scene:
    """A raster on disk, described but not read (hashable, JSON-able).

    Attributes:
        path: file path or GDAL path (``/vsi...``, URLs).
        modality: one of :data:`xgeo.types.MODALITIES`.
        crs: coordinate reference system as WKT.
        transform: geotransform ``(a, b, c, d, e, f)`` of ``rasterio.Affine`` (pixel corner ->
            map); the pixel centre of ``(x, y)`` lies at ``affine * (x + 0.5, y + 0.5)``.
        width, height: size in pixels.
        count: number of bands in the file.
        dtype: numpy dtype name of band 1.
        nodata: nodata value or ``None`` (masks and alpha bands are honoured as well).
        band_names: one name per band of the file (description, or ``"band<i>"``).
        bands: 1-based bands used for matching (the selection fed to normalisation).
    """

    path: str
    modality: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    band_names: tuple[str, ...]
    bands: tuple[int, ...]

    @property
    def affine(self) -> Affine:
        """The geotransform as a ``rasterio.Affine``."""
        return Affine(*self.transform)

    @property
    def res(self) -> float:
        """Pixel size in CRS units (geometric mean of the two axes, rotation-safe)."""
        a, b, _, d, e, _ = self.transform
        return float(math.sqrt(abs(a * e - b * d)))

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the four corners in the scene CRS."""
        a, b, c, d, e, f = self.transform
        corners = ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height))
        xs = [a * col + b * row + c for col, row in corners]
        ys = [d * col + e * row + f for col, row in corners]
        return (min(xs), min(ys), max(xs), max(ys))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (round-trips through :meth:`from_dict`)."""
        d = asdict(self)
        d["transform"] = list(self.transform)
        d["band_names"] = list(self.band_names)
        d["bands"] = list(self.bands)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        """Inverse of :meth:`to_dict`."""
        return cls(
            path=str(d["path"]), modality=str(d["modality"]), crs=str(d["crs"]),
            transform=tuple(float(v) for v in d["transform"]),  # type: ignore[arg-type]
            width=int(d["width"]), height=int(d["height"]), count=int(d["count"]),
            dtype=str(d["dtype"]), nodata=None if d["nodata"] is None else float(d["nodata"]),
            band_names=tuple(str(v) for v in d["band_names"]),
            bands=tuple(int(v) for v in d["bands"]),
        )


def _is_gdal_path(path: str) -> bool:
    driver_prefix = ":" in path and re.fullmatch(r"[A-Z][A-Z0-9_]+", path.split(":", 1)[0])
    return path.startswith("/vsi") or "://" in path or bool(driver_prefix)


def default_bands(modality: str, count: int, band_names: Sequence[str],
                  colorinterp: Sequence[ColorInterp] | None = None) -> tuple[int, ...]:
    """Default 1-based band selection for matching.

    Alpha bands are never selected. Optical / map scenes with three or more bands use red,
    green and blue (found by band name, else the first three bands) for luminance; everything
    else uses the first band (VV for a dual-pol SAR stack that lists it first).

    Args:
        modality: the scene modality.
        count: bands in the file.
        band_names: one name per band.
        colorinterp: GDAL colour interpretation per band (alpha bands are skipped).

    Returns:
        1-based band indices.
    """
    usable = [i + 1 for i in range(count)
              if colorinterp is None or colorinterp[i] != ColorInterp.alpha]
    if not usable:
        usable = [1]
    if modality in ("optical", "map") and len(usable) >= 3:
        found: dict[int, int] = {}
        for b in usable:
            for tok in tokens_of(band_names[b - 1]):
                if tok in _RGB_NAMES and _RGB_NAMES[tok] not in found:
                    found[_RGB_NAMES[tok]] = b
                    break
        if len(found) == 3:
            return (found[0], found[1], found[2])
        return tuple(usable[:3])
    return (usable[0],)


def open_scene(path: str | Path, modality: str | None = None,
               bands: Sequence[int] | None = None) -> Scene:
    """Open and validate a raster lazily (metadata only).

    Args:
        path: any GDAL-readable raster (GeoTIFF, COG, VRT, ...).
        modality: one of :data:`xgeo.types.MODALITIES`; inferred by
            :func:`xgeo.scenes.infer_modality` when ``None``.
        bands: 1-based bands to use for matching; default :func:`default_bands`.

    Returns:
        The :class:`Scene`.

    Raises:
        MissingFileError: the path does not exist.
        NotARasterError: GDAL cannot read it as a raster.
        MissingCRSError: it has no CRS or no geotransform.
        ConfigError: unknown modality or band out of range.
    """
    spath = str(path)
    if not _is_gdal_path(spath) and not os.path.exists(spath):
        raise MissingFileError("file not found", spath,
                               "check the path (relative paths are resolved from the "
                               f"working directory {os.getcwd()})")
    if modality is not None and modality not in MODALITIES:
        raise ConfigError(f"{spath}: unknown modality {modality!r}; expected one of {MODALITIES}")
    try:
        ds = rasterio.open(spath)
    except (RasterioIOError, OSError) as exc:
        raise NotARasterError(f"GDAL cannot open it as a raster ({exc})", spath,
                              "give a GeoTIFF/COG or any GDAL raster; vector maps go through "
                              "xgeo.vectors") from exc
    with ds:
        if ds.count < 1 or ds.width < 1 or ds.height < 1:
            raise NotARasterError("the dataset has no raster bands", spath,
                                  "give a GeoTIFF/COG or any GDAL raster")
        if ds.crs is None or ds.transform == Affine.identity():
            extra = " (it has GCPs: orthorectify with gdalwarp first)" if ds.gcps[0] else ""
            raise MissingCRSError(f"the raster has no CRS or geotransform{extra}", spath,
                                  "assign one, e.g. `gdal_edit.py -a_srs EPSG:32633 FILE` or "
                                  "`rio edit-info --crs EPSG:32633 FILE`")
        band_names = tuple(d if d else f"band{i + 1}" for i, d in enumerate(ds.descriptions))
        mod = modality if modality is not None else infer_modality(spath, ds)
        if bands is None:
            sel = default_bands(mod, ds.count, band_names, ds.colorinterp)
        else:
            sel = tuple(int(b) for b in bands)
            bad = [b for b in sel if not 1 <= b <= ds.count]
            if not sel or bad:
                raise ConfigError(f"{spath}: bands {bad or '[]'} out of range; the file has "
                                  f"bands 1..{ds.count}")
        nodata = ds.nodata
        return Scene(
            path=spath, modality=mod, crs=ds.crs.to_wkt(), transform=tuple(ds.transform)[:6],
            width=ds.width, height=ds.height, count=ds.count, dtype=str(ds.dtypes[0]),
            nodata=None if nodata is None else float(nodata), band_names=band_names, bands=sel,
        )


def read_window(scene: Scene, window: Window | tuple[int, int, int, int],
                bands: Sequence[int] | None = None, ds: Any | None = None) -> np.ndarray:
    """Read a window of the file as float32 with NaN where invalid (nodata, mask, alpha, NaN).

    Args:
        scene: the scene.
        window: a rasterio ``Window`` or ``(y0, y1, x0, x1)``; clipped to the raster.
        bands: 1-based bands, default ``scene.bands``.
        ds: an already open rasterio dataset for ``scene`` (saves re-opening in loops).

    Returns:
        float32 ``(C, h, w)``.
    """
    if not isinstance(window, Window):
        y0, y1, x0, x1 = window
        window = Window(x0, y0, x1 - x0, y1 - y0)
    window = window.intersection(Window(0, 0, scene.width, scene.height))
    idx = list(bands if bands is not None else scene.bands)
    if ds is None:
        with rasterio.open(scene.path) as src:
            return _read_valid(src, idx, window)
    return _read_valid(ds, idx, window)


def _read_valid(ds: Any, idx: list[int], window: Window | None,
                out_shape: tuple[int, int] | None = None,
                resampling: Resampling | None = None) -> np.ndarray:
    """float32 ``(C, h, w)`` with NaN where any GDAL mask says invalid or the value is not finite.
    ``resampling`` (with ``out_shape``) applies to the values; masks are read nearest."""
    kw: dict[str, Any] = {"window": window}
    if out_shape is not None:
        kw["out_shape"] = (len(idx), *out_shape)
    data = ds.read(idx, out_dtype="float32", **kw,
                   **({"resampling": resampling} if resampling is not None else {}))
    masks = ds.read_masks(idx, **kw)
    data[masks == 0] = np.nan
    data[~np.isfinite(data)] = np.nan
    return data


def open_dataarray(scene: Scene, chunks: int | dict[str, int] | str | None = 1024) -> Any:
    """Open the scene's selected bands lazily as an ``xarray.DataArray`` (rioxarray, masked).

    Args:
        scene: the scene.
        chunks: dask chunks passed to ``rioxarray.open_rasterio``.

    Returns:
        ``DataArray`` ``(band, y, x)`` float with NaN for nodata, carrying CRS and transform.
    """
    import rioxarray

    da = rioxarray.open_rasterio(scene.path, chunks=chunks, masked=True)
    return da.sel(band=list(scene.bands))
