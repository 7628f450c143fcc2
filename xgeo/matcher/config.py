"""Configuration of the universal matcher: one frozen dataclass and named size presets.

``tiny`` trains and runs on 2 CPU cores; ``base`` is the GPU preset. A config is a value: it is
hashable, JSON-able (:meth:`MatcherConfig.to_dict`) and stored in every weights file's model card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from xgeo.errors import ConfigError

__all__ = ["MatcherConfig", "PRESETS", "get_config"]


@dataclass(frozen=True)
class MatcherConfig:
    """Architecture of the matcher (everything needed to rebuild the network from weights).

    Attributes:
        preset: name of the preset this config came from.
        backbone_dims: channels of the backbone at 1/2, 1/4 and 1/8 resolution.
        backbone_depths: number of RepVGG blocks per stage (1/2, 1/4, 1/8).
        d_model: width of the coarse tokens (must equal ``backbone_dims[2]``).
        nhead: attention heads.
        layer_names: interleaved attention layers, each ``"self"`` or ``"cross"``.
        agg: aggregation stride of queries and keys/values in attention (1 = full attention).
        fine_dim: channels of the 1/2-resolution fine features.
        fine_window: side of the fine search window, in 1/2-resolution pixels (even).
        temperature: dual-softmax temperature.
        rope_base: base wavelength of the rotary position encoding (in 1/8 cells).
    """

    preset: str = "tiny"
    backbone_dims: tuple[int, int, int] = (32, 64, 128)
    backbone_depths: tuple[int, int, int] = (1, 2, 3)
    d_model: int = 128
    nhead: int = 4
    layer_names: tuple[str, ...] = ("self", "cross", "self", "cross")
    agg: int = 2
    fine_dim: int = 32
    fine_window: int = 8
    temperature: float = 0.1
    rope_base: float = 100.0

    def __post_init__(self) -> None:
        if self.d_model != self.backbone_dims[2]:
            raise ConfigError(
                f"d_model={self.d_model} must equal backbone_dims[2]={self.backbone_dims[2]}. "
                "Hint: change both together"
            )
        if self.d_model % (self.nhead * 4) != 0:
            raise ConfigError(
                f"d_model={self.d_model} must be divisible by 4*nhead={4 * self.nhead} "
                "(2-D rotary encoding). Hint: use nhead in {1, 2, 4, 8}"
            )
        bad = [n for n in self.layer_names if n not in ("self", "cross")]
        if bad:
            raise ConfigError(f"layer_names: {bad} not in {{'self', 'cross'}}")
        if self.fine_window % 2 or self.fine_window < 4:
            raise ConfigError(f"fine_window={self.fine_window} must be even and >= 4")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MatcherConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"Unknown matcher config keys {unknown}; allowed: {sorted(names)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    def sha256(self) -> str:
        """Deterministic hash of the architecture."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


PRESETS: dict[str, MatcherConfig] = {
    "tiny": MatcherConfig(),
    "base": MatcherConfig(
        preset="base",
        backbone_dims=(64, 128, 256),
        backbone_depths=(2, 4, 8),
        d_model=256,
        nhead=8,
        layer_names=("self", "cross") * 4,
        agg=2,
        fine_dim=64,
    ),
}


def get_config(preset: str = "tiny", **overrides: Any) -> MatcherConfig:
    """Return a preset, optionally with some fields replaced.

    Raises:
        ConfigError: unknown preset or unknown override key.
    """
    if preset not in PRESETS:
        raise ConfigError(f"Unknown preset {preset!r}: not in {sorted(PRESETS)}")
    names = {f.name for f in fields(MatcherConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"Unknown matcher config keys {unknown}; allowed: {sorted(names)}")
    return replace(PRESETS[preset], **overrides)
