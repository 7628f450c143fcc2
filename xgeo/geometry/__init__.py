"""Georegistration models, robust fitting and fusion of per-tile tie points.

All points are common-grid pixels ``(x, y)``; models map grid-mov -> ref (``mov_to_ref``).

Example::

    from xgeo.geometry import fuse
    res = fuse(src, dst, confidence, tile_ids, kind="auto", pixel_size=10.0)
    res.model(xy), res.model.inverse(xy), res.qa["ce90_m"]
"""

from __future__ import annotations

from xgeo.geometry.fit import FIT_KINDS, fit_model, thin_to_grid
from xgeo.geometry.fuse import FitResult, fuse, heldout_residuals, spatial_folds
from xgeo.geometry.robust import USAC_METHOD, filter_tile_matches, residual_norms, robust_fit
from xgeo.geometry.transforms import (
    AffineModel,
    GeoModel,
    PolynomialModel,
    ShiftModel,
    TPSModel,
    describe_linear,
    model_from_dict,
)

__all__ = [
    "FIT_KINDS",
    "USAC_METHOD",
    "AffineModel",
    "FitResult",
    "GeoModel",
    "PolynomialModel",
    "ShiftModel",
    "TPSModel",
    "describe_linear",
    "filter_tile_matches",
    "fit_model",
    "fuse",
    "heldout_residuals",
    "model_from_dict",
    "residual_norms",
    "robust_fit",
    "spatial_folds",
    "thin_to_grid",
]
