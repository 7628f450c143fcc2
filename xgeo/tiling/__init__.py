"""Tiling: the common grid, frozen :class:`Tile` selectors, the :class:`TilePlan` and the Zarr store.

Public face over ``_plan.py`` (value objects, frame mappings) and ``_prepare.py`` (streaming
resampling and Zarr v3 writing).
"""

from __future__ import annotations

from xgeo.tiling._coarse import coarse_georef
from xgeo.tiling._plan import Tile, TileData, TilePlan
from xgeo.tiling._prepare import footprint_on_grid, load_plan, prepare_pair, read_tile

__all__ = ["Tile", "TileData", "TilePlan", "prepare_pair", "read_tile", "load_plan",
           "footprint_on_grid", "coarse_georef"]
