"""Analyst cube: registered scenes in a Zarr v3 store (time, band, y, x) with per-scene QA.

Public face::

    from xgeo.cube import append_to_cube, open_cube, cube_stac_collection
    append_to_cube("aoi.zarr", "scene_reg.tif", time="2024-05-01", qa=report, scene_id="S2_0501")
    ds = open_cube("aoi.zarr")          # lazy xarray.Dataset, ds.rio.crs, ds.data
    coll = cube_stac_collection("aoi.zarr")
"""

from __future__ import annotations

from xgeo.cube._stac import cube_stac_collection
from xgeo.cube._store import CubeError, append_to_cube, cube_grid, open_cube

__all__ = ["CubeError", "append_to_cube", "cube_grid", "cube_stac_collection", "open_cube"]
