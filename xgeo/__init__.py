"""xgeo: co-register optical, thermal, SAR, DEM and map data across sensors, at scale.

Public API::

    import xgeo
    m = xgeo.load_matcher()              # shipped universal matcher (offline)
    r = m.match(img0, img1)              # -> Matches(points0, points1, confidence)
    res = xgeo.register("ref.tif", "mov.tif", "out.tif", report="out.json")
"""

from __future__ import annotations

from typing import Any

from xgeo.errors import (
    AllNodataError,
    ConfigError,
    InputError,
    MissingCRSError,
    MissingFileError,
    NoOverlapError,
    NotARasterError,
    RegistrationError,
    ShapeError,
    VectorError,
    WeightsError,
    XgeoError,
)
from xgeo.matcher import Matcher, Matches, available_matchers, load_matcher

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AllNodataError",
    "ConfigError",
    "InputError",
    "Matcher",
    "Matches",
    "MissingCRSError",
    "MissingFileError",
    "NoOverlapError",
    "NotARasterError",
    "RegistrationError",
    "ShapeError",
    "VectorError",
    "WeightsError",
    "XgeoError",
    "available_matchers",
    "load_matcher",
    "register",
    "open_cube",
]


def register(*args: Any, **kwargs: Any) -> Any:
    """Co-register a moving scene to a reference scene; see :func:`xgeo.pipeline.register`."""
    from xgeo.pipeline import register as _register

    return _register(*args, **kwargs)


def open_cube(*args: Any, **kwargs: Any) -> Any:
    """Open an analyst cube lazily; see :func:`xgeo.cube.open_cube`."""
    from xgeo.cube import open_cube as _open_cube

    return _open_cube(*args, **kwargs)
