"""Weights of the universal matcher: safetensors only, with a JSON model card beside them.

``universal_<preset>.safetensors`` holds the (un-fused, training-form) state dict;
``universal_<preset>.json`` is the model card: ``preset``, ``config`` (architecture),
``n_parameters``, ``data_engine_version``, ``train_config_sha256``, ``steps``, ``hardware``,
``metrics``. Anything that is not a ``.safetensors`` file is refused: pickle-based formats
(``.pt``, ``.pth``, ``.ckpt``, ``.bin``, ``.pkl``) can execute code when loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from xgeo.errors import WeightsError
from xgeo.matcher.config import MatcherConfig, get_config

__all__ = [
    "WEIGHTS_DIR",
    "shipped_weights_path",
    "card_path",
    "save_weights",
    "load_state",
    "read_card",
    "build_model",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_TRAIN_HINT = "train them with `python -m training.train --config training/configs/{p}.yaml` then `python -m training.export`"


def shipped_weights_path(preset: str = "tiny") -> Path:
    """Path of the weights shipped in the package for ``preset`` (may not exist)."""
    return WEIGHTS_DIR / f"universal_{preset}.safetensors"


def card_path(weights: str | Path) -> Path:
    """The model card that belongs to a weights file (same stem, ``.json``)."""
    return Path(weights).with_suffix(".json")


def _check_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix != ".safetensors":
        raise WeightsError(
            f"{p}: only .safetensors weights are accepted (got {p.suffix or 'no suffix'!r}); "
            "pickle formats (.pt/.pth/.ckpt/.bin/.pkl) are refused. Hint: export with "
            "`python -m training.export --ckpt CKPT --out DIR`"
        )
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found. Hint: {_TRAIN_HINT.format(p='tiny')}")
    with p.open("rb") as fh:  # safetensors: 8-byte little-endian header length, then JSON
        head = fh.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        raise WeightsError(f"{p}: not a safetensors file (bad header)")
    return p


def save_weights(model: torch.nn.Module, path: str | Path, card: dict[str, Any],
                 dtype: torch.dtype | None = None) -> Path:
    """Write ``model``'s state dict as safetensors and ``card`` as JSON beside it.

    Args:
        model: a :class:`~xgeo.matcher.model.UniversalMatcherNet` (not fused).
        path: target ``.safetensors`` path.
        card: model card; ``config`` and ``n_parameters`` are filled in if missing.
        dtype: store floating-point tensors in this dtype (``torch.float16`` halves the file;
            loading casts back to the model's float32); None keeps them as they are. Recorded
            in the card as ``storage_dtype``.

    Returns:
        the weights path.
    """
    from safetensors.torch import save_file

    p = Path(path)
    if p.suffix != ".safetensors":
        raise WeightsError(f"{p}: weights must be saved as .safetensors")
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    cfg: MatcherConfig = model.cfg  # type: ignore[assignment]
    meta = {"preset": cfg.preset, "config": json.dumps(cfg.to_dict())}
    tmp = p.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(p)
    card = dict(card)
    card.setdefault("preset", cfg.preset)
    card.setdefault("config", cfg.to_dict())
    card.setdefault("n_parameters", int(sum(v.numel() for v in model.parameters())))
    card["storage_dtype"] = str(dtype or torch.float32).removeprefix("torch.")
    card_path(p).write_text(json.dumps(_finite(card), indent=2, sort_keys=True, allow_nan=False) + "\n")
    return p


def _finite(x: Any) -> Any:
    """Replace NaN / inf floats by None so the card is strict JSON."""
    if isinstance(x, float):
        return x if x == x and abs(x) != float("inf") else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], MatcherConfig]:
    """Read a safetensors weights file.

    Returns:
        ``(state_dict, config)``; the config comes from the file's metadata.

    Raises:
        WeightsError: wrong format, missing file, or no config in the metadata.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = _check_path(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{p}: cannot read safetensors ({exc})") from exc
    if "config" not in meta:
        raise WeightsError(f"{p}: no 'config' in safetensors metadata. Hint: re-export the weights")
    return state, MatcherConfig.from_dict(json.loads(meta["config"]))


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card of a weights file, or ``{}`` when it has none."""
    c = card_path(path)
    return json.loads(c.read_text()) if c.is_file() else {}


def build_model(path: str | Path | None = None, preset: str = "tiny") -> torch.nn.Module:
    """Build a :class:`~xgeo.matcher.model.UniversalMatcherNet` and load weights into it.

    Args:
        path: a ``.safetensors`` file; ``None`` = the shipped weights of ``preset``.
        preset: used only when ``path`` is None.

    Raises:
        WeightsError: missing / non-safetensors file or state that does not fit.
    """
    from xgeo.matcher.model import UniversalMatcherNet

    if path is None:
        path = shipped_weights_path(preset)
        if not path.is_file():
            get_config(preset)  # unknown preset -> ConfigError
            raise WeightsError(
                f"{path}: no shipped weights for preset {preset!r}. Hint: "
                + _TRAIN_HINT.format(p=preset)
            )
    state, cfg = load_state(path)
    net = UniversalMatcherNet(cfg)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the model ({exc})") from exc
    return net
