"""Apply a georegistration model and write Cloud-Optimised GeoTIFFs.

Public face over private modules: ``_warp`` (block-wise resampling onto the common grid, or
geotransform-only rewrite), ``_resample`` (coordinate fields, window reads, OpenCV remap) and
``_cog`` (GDAL COG driver, validation, atomic rename).
"""

from xgeo.warp._cog import atomic_target, validate_cog, write_cog
from xgeo.warp._resample import RESAMPLINGS
from xgeo.warp._warp import default_nodata, geotransform_only_transform, warp_to_cog

__all__ = [
    "RESAMPLINGS",
    "atomic_target",
    "default_nodata",
    "geotransform_only_transform",
    "validate_cog",
    "warp_to_cog",
    "write_cog",
]
