"""Modality inference from names, band descriptions, tags and dtype (no pixel is read).

Rules, first match wins:

1. A dataset tag ``XGEO_MODALITY`` (or ``MODALITY``) naming one of :data:`xgeo.types.MODALITIES`.
2. Tokens of the file stem (split on non-alphanumerics, upper-cased), checked in the order
   sar, thermal, night, dem, map:

   - **sar**: ``VV VH HH HV SAR* SIGMA0 GAMMA0 BETA0 GRD GRDH GRDM SLC S1A S1B S1C SENTINEL1``
   - **thermal**: ``B10 B11`` (Landsat-8/9 TIRS; *not* when the name is Sentinel-2, where B10/B11
     are SWIR), ``B6``/``B6_VCID_*`` of Landsat 4/5/7 (stem starts ``LT4 LT5 LE7 LT04 LT05 LE07``),
     ``TIR* LWIR MWIR THERMAL INFRARED IR LST BT``
   - **night**: ``NIGHT* VIIRS DNB NTL VNP46* BLACKMARBLE DMSP``
   - **dem**: ``DEM DSM DTM Z ELEV ELEVATION HEIGHT SRTM COP30 COP90 ASTGTM``
   - **map**: ``MAP OSM OPENSTREETMAP BASEMAP TOPO``
3. The same token rules on band descriptions and on the values of the tags ``SENSOR``,
   ``PLATFORM``, ``SATELLITE``, ``INSTRUMENT``, ``PRODUCT_TYPE`` and ``DESCRIPTION``.
4. A colour table on band 1 -> map; a complex dtype -> sar.
5. Otherwise optical.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from xgeo.types import MODALITIES

__all__ = ["infer_modality", "tokens_of"]

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("sar", re.compile(
        r"^(VV|VH|HH|HV|SAR\d*|SIGMA0|SIGMA|GAMMA0|BETA0|GRD|GRDH|GRDM|SLC|S1A|S1B|S1C|SENTINEL1)$")),
    ("thermal", re.compile(r"^(B10|B11|TIR\w*|LWIR|MWIR|THERMAL|INFRARED|IR|LST|BT)$")),
    ("night", re.compile(r"^(NIGHT\w*|VIIRS|DNB|NTL|VNP46\w*|BLACKMARBLE|DMSP)$")),
    ("dem", re.compile(r"^(DEM|DSM|DTM|Z|ELEV|ELEVATION|HEIGHT|SRTM|COP30|COP90|ASTGTM\w*)$")),
    ("map", re.compile(r"^(MAP|OSM|OPENSTREETMAP|BASEMAP|TOPO)$")),
)
_SENTINEL2 = re.compile(r"^(S2A|S2B|S2C|MSI|MSIL1C|MSIL2A|SENTINEL2)$")
_OLD_LANDSAT = re.compile(r"^(LT4|LT5|LE7|LT04|LT05|LE07)")
_TAG_KEYS = ("SENSOR", "PLATFORM", "SATELLITE", "INSTRUMENT", "PRODUCT_TYPE", "DESCRIPTION")


def tokens_of(text: str) -> list[str]:
    """Split ``text`` on non-alphanumerics into upper-case tokens (``"l8_B10"`` -> L8, B10)."""
    return [t for t in re.split(r"[^0-9A-Za-z]+", text.upper()) if t]


def _match_tokens(tokens: list[str]) -> str | None:
    s2 = any(_SENTINEL2.match(t) for t in tokens)
    old_landsat = bool(tokens) and bool(_OLD_LANDSAT.match(tokens[0]))
    for modality, pattern in _RULES:
        for t in tokens:
            if not pattern.match(t):
                continue
            if modality == "thermal" and t in ("B10", "B11") and s2:
                continue
            return modality
    if old_landsat and "B6" in tokens:
        return "thermal"
    return None


def infer_modality(path: str | Path, ds: Any | None = None) -> str:
    """Guess the modality of a raster from its name and metadata (see the module rules).

    Args:
        path: file path (only the stem is used).
        ds: optional open ``rasterio`` dataset for descriptions, tags, colour table and dtype.

    Returns:
        One of ``optical, thermal, sar, map, dem, night``.
    """
    tags: dict[str, str] = {}
    if ds is not None:
        tags = {str(k).upper(): str(v) for k, v in ds.tags().items()}
        for key in ("XGEO_MODALITY", "MODALITY"):
            value = tags.get(key, "").strip().lower()
            if value in MODALITIES:
                return value
    found = _match_tokens(tokens_of(Path(str(path)).stem))
    if found:
        return found
    if ds is not None:
        text = " ".join(d for d in ds.descriptions if d)
        text += " " + " ".join(tags.get(k, "") for k in _TAG_KEYS)
        found = _match_tokens(tokens_of(text))
        if found:
            return found
        try:
            ds.colormap(1)
            return "map"
        except ValueError:
            pass
        if any(str(d).startswith("complex") for d in ds.dtypes):
            return "sar"
    return "optical"
