"""Scenes: open any GDAL raster lazily as a validated, hashable :class:`Scene`.

Public face over ``_scene.py`` (value object, readers) and ``_infer.py`` (modality rules).
"""

from __future__ import annotations

from xgeo.scenes._infer import infer_modality
from xgeo.scenes._scene import Scene, default_bands, open_dataarray, open_scene, read_window

__all__ = ["Scene", "open_scene", "infer_modality", "open_dataarray", "read_window",
           "default_bands"]
