"""The matcher contract: :class:`Matches`, :class:`Matcher` and the registry.

Pixel convention: points are ``(x, y) = (column, row)``, 0-based, integer values at pixel
centres. ``points0`` lie in ``img0``, ``points1`` in ``img1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xgeo.errors import ConfigError, ShapeError

__all__ = ["Matches", "Matcher", "register_matcher", "available_matchers", "load_matcher"]


@dataclass(frozen=True)
class Matches:
    """Correspondences between two images.

    Attributes:
        points0: float32 ``(N, 2)`` ``(x, y)`` in image 0 pixels.
        points1: float32 ``(N, 2)`` ``(x, y)`` in image 1 pixels.
        confidence: float32 ``(N,)`` in ``[0, 1]``.
        info: free-form diagnostics (timings, rotation tried, ...); never needed to use the result.
    """

    points0: np.ndarray
    points1: np.ndarray
    confidence: np.ndarray
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        p0 = np.asarray(self.points0, dtype=np.float32).reshape(-1, 2)
        p1 = np.asarray(self.points1, dtype=np.float32).reshape(-1, 2)
        c = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        if not (len(p0) == len(p1) == len(c)):
            raise ShapeError("Matches", "points0 (N,2), points1 (N,2), confidence (N,)",
                             (len(p0), len(p1), len(c)))
        object.__setattr__(self, "points0", p0)
        object.__setattr__(self, "points1", p1)
        object.__setattr__(self, "confidence", np.clip(c, 0.0, 1.0))

    def __len__(self) -> int:
        return len(self.confidence)

    @classmethod
    def empty(cls, **info: Any) -> Matches:
        z = np.zeros((0, 2), np.float32)
        return cls(z, z, np.zeros((0,), np.float32), dict(info))

    def subset(self, mask: np.ndarray) -> Matches:
        """Return the matches selected by a boolean mask or index array."""
        return Matches(self.points0[mask], self.points1[mask], self.confidence[mask], self.info)

    def offset(self, d0: Sequence[float] = (0, 0), d1: Sequence[float] = (0, 0)) -> Matches:
        """Return matches with ``d0``/``d1`` (x, y) added, e.g. a tile's origin."""
        return Matches(self.points0 + np.float32(d0), self.points1 + np.float32(d1),
                       self.confidence, self.info)

    def swap(self) -> Matches:
        return Matches(self.points1, self.points0, self.confidence, self.info)


def as_gray(img: np.ndarray) -> np.ndarray:
    """Any-dtype ``HxW`` / ``HxWxC`` / ``CxHxW`` (C<=4) image -> float32 ``HxW`` in [0, 1].

    NaN marks invalid pixels and is kept as NaN. Scaling is a robust 1-99 % stretch of the valid
    pixels, so uint8, uint16, float dB and reflectance all arrive in the same range.
    """
    a = np.asarray(img)
    if a.ndim == 3:
        if a.shape[0] <= 4 and a.shape[2] > 4:  # CxHxW
            a = np.moveaxis(a, 0, -1)
        a = a.astype(np.float32)
        a = a[..., :3].mean(axis=-1) if a.shape[-1] >= 3 else a[..., 0]
    elif a.ndim != 2:
        raise ShapeError("image", "(H, W) or (H, W, C)", a.shape)
    a = a.astype(np.float32, copy=False)
    valid = np.isfinite(a)
    if not valid.any():
        return np.full(a.shape, np.nan, np.float32)
    v = a[valid]
    if v.size > 200_000:
        v = v[:: v.size // 200_000 + 1]
    lo, hi = np.percentile(v, [1.0, 99.0])
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    return out.astype(np.float32)


class Matcher:
    """Base class of every matcher. Subclasses implement :meth:`_match_gray`.

    ``match`` accepts numpy ``HxW`` or ``HxWxC`` of any dtype and size; ``match_batch`` serves
    the pipeline's tile batches (default: a loop; the learned matcher batches on the device).
    """

    name: str = "base"

    def match(self, img0: np.ndarray, img1: np.ndarray) -> Matches:
        return self._match_gray(as_gray(img0), as_gray(img1))

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Matches]:
        return [self.match(a, b) for a, b in pairs]

    def _match_gray(self, img0: np.ndarray, img1: np.ndarray) -> Matches:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Small JSON-able identity, used in reports and cache keys."""
        return {"name": self.name}


_REGISTRY: dict[str, Callable[..., Matcher]] = {}


def register_matcher(name: str) -> Callable[[Callable[..., Matcher]], Callable[..., Matcher]]:
    """Decorator: make a matcher factory available to :func:`load_matcher` under ``name``."""

    def deco(factory: Callable[..., Matcher]) -> Callable[..., Matcher]:
        _REGISTRY[name] = factory
        return factory

    return deco


def _ensure_builtin() -> None:
    # Importing the modules registers them; kept lazy so `import xgeo` stays light.
    import xgeo.matcher.cascade  # noqa: F401
    import xgeo.matcher.classical  # noqa: F401
    import xgeo.matcher.refined  # noqa: F401
    try:
        import xgeo.matcher.inference  # noqa: F401
    except ImportError:  # torch missing: the learned matcher is unavailable
        pass


def available_matchers() -> list[str]:
    _ensure_builtin()
    return sorted(_REGISTRY)


def load_matcher(name: str | Path | None = None, **options: Any) -> Matcher:
    """Return a ready matcher.

    Args:
        name: ``None`` or ``"universal"`` for the shipped learned matcher, ``"classical"`` for the
            weight-free structural baseline, another registered name, or a path to a
            ``.safetensors`` weights file of the universal matcher.
        **options: matcher-specific options (e.g. ``device="cpu"``); unknown keys raise
            :class:`~xgeo.errors.ConfigError`.
    """
    _ensure_builtin()
    if name is None:
        name = "universal" if "universal" in _REGISTRY else "classical"
    if isinstance(name, Path) or str(name).endswith(".safetensors"):
        return _REGISTRY["universal"](weights=str(name), **options)
    if name not in _REGISTRY:
        raise ConfigError(
            f"Unknown matcher {name!r}: not in {sorted(_REGISTRY)}. "
            "Hint: pass a registered name or a path to a .safetensors weights file"
        )
    return _REGISTRY[name](**options)
