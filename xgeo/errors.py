"""One exception hierarchy for xgeo.

Every error a user can cause names the file involved and says what to do next.
The CLI maps :class:`XgeoError` subclasses to non-zero exit codes.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "XgeoError",
    "InputError",
    "MissingFileError",
    "NotARasterError",
    "MissingCRSError",
    "NoOverlapError",
    "AllNodataError",
    "VectorError",
    "ConfigError",
    "ShapeError",
    "WeightsError",
    "RegistrationError",
]


class XgeoError(Exception):
    """Base class of every error raised on purpose by xgeo."""

    exit_code: int = 1


class InputError(XgeoError):
    """A user-supplied input cannot be used.

    Args:
        message: what is wrong.
        path: the file concerned (named first in the message).
        hint: what the user can do about it.
    """

    exit_code = 2

    def __init__(
        self, message: str, path: str | PathLike[str] | None = None, hint: str | None = None
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        text = message if self.path is None else f"{self.path}: {message}"
        if hint:
            text = f"{text}. Hint: {hint}"
        super().__init__(text)


class MissingFileError(InputError, FileNotFoundError):
    """The input path does not exist."""


class NotARasterError(InputError):
    """GDAL cannot open the input as a raster."""


class MissingCRSError(InputError):
    """The raster or vector has no coordinate reference system."""


class NoOverlapError(InputError):
    """Reference and moving scenes do not overlap on the ground."""


class AllNodataError(InputError):
    """The input (or the overlap) holds no valid pixels."""


class VectorError(InputError):
    """A vector map is empty, unreadable, lacks a CRS or lies outside the image."""


class ConfigError(XgeoError, ValueError):
    """An option or configuration key is unknown or out of range."""

    exit_code = 2


class ShapeError(XgeoError, ValueError):
    """An array has the wrong shape; the message carries expected and actual shapes."""

    def __init__(self, name: str, expected: str, actual: tuple[int, ...]) -> None:
        self.expected = expected
        self.actual = tuple(actual)
        super().__init__(f"{name}: expected shape {expected}, got {self.actual}")


class WeightsError(XgeoError):
    """Matcher weights are missing, not safetensors, or do not fit the model."""


class RegistrationError(XgeoError):
    """Matching or fitting could not produce a trustworthy georegistration model."""

    exit_code = 3
