"""Torch datasets over the synthetic engine (:mod:`xgeo.synth`): the only place torch meets it.

- :class:`SyntheticPairDataset` (map-style): item ``k`` is ``make_pair(base_seed + k)``.
- :class:`SyntheticPairStream` (iterable): endless, seeds split across DataLoader workers in
  blocks of ``PAIRS_PER_WORLD`` consecutive seeds, so each worker re-uses its cached world.
- :class:`TranslatedImagePairs` (map-style): real images a user provides, each side turned
  into another modality by a weight-free translator, one side warped with exact truth.

Every item is a dict of tensors: ``img0``/``img1`` ``(1, S, S)`` float32 in [0, 1],
``flow`` ``(S, S, 2)`` float32 (img0 pixel -> img1 position), ``valid0``/``valid1`` ``(S, S)``
bool, ``H_0to1`` ``(3, 3)`` float32, ``mod0``/``mod1`` int64 (index in ``MODALITY_IDS``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from xgeo.errors import ConfigError
from xgeo.synth import PAIR_MODALITIES, Pair, make_pair, random_warp, translate
from xgeo.synth.pairs import PAIRS_PER_WORLD
from xgeo.synth.translate import TRANSLATORS

__all__ = ["SyntheticPairDataset", "SyntheticPairStream", "TranslatedImagePairs",
           "MODALITY_IDS", "pair_to_item", "photometric", "collate"]

#: Integer id of every modality in items (translated real images get ``"translated"``).
MODALITY_IDS: tuple[str, ...] = (*PAIR_MODALITIES, "translated")


def photometric(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Mild photometric augmentation (gamma, contrast, offset, blur, noise), float32 [0, 1].

    Geometry is untouched; ``strength=0`` returns the input.
    """
    if strength <= 0:
        return img
    import cv2

    a = np.clip(img, 0.0, 1.0).astype(np.float32)
    a = a ** np.float32(np.exp(rng.normal(0.0, 0.25 * strength)))
    a = (a - 0.5) * np.float32(np.exp(rng.normal(0.0, 0.2 * strength))) + 0.5 \
        + np.float32(rng.normal(0.0, 0.05 * strength))
    if rng.random() < 0.3 * strength:
        a = cv2.GaussianBlur(a, (0, 0), float(rng.uniform(0.3, 1.2)))
    a = a + np.float32(rng.uniform(0.0, 0.03 * strength)) * rng.standard_normal(a.shape,
                                                                               dtype=np.float32)
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def pair_to_item(p: Pair, augment: float = 0.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Convert a :class:`~xgeo.synth.Pair` to the item dict (see module docstring)."""
    rng = np.random.default_rng([int(seed), 0xA06])
    img0 = photometric(p.img0, rng, augment)
    img1 = photometric(p.img1, rng, augment)
    img1 = np.where(p.valid1, img1, 0.0).astype(np.float32)
    return {
        "img0": torch.from_numpy(np.ascontiguousarray(img0))[None],
        "img1": torch.from_numpy(np.ascontiguousarray(img1))[None],
        "flow": torch.from_numpy(np.ascontiguousarray(p.flow_0to1, dtype=np.float32)),
        "valid0": torch.from_numpy(np.ascontiguousarray(p.valid0)),
        "valid1": torch.from_numpy(np.ascontiguousarray(p.valid1)),
        "H_0to1": torch.from_numpy(p.H_0to1.astype(np.float32)),
        "mod0": torch.tensor(MODALITY_IDS.index(p.mod0) if p.mod0 in MODALITY_IDS else -1),
        "mod1": torch.tensor(MODALITY_IDS.index(p.mod1) if p.mod1 in MODALITY_IDS else -1),
    }


def collate(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack item dicts into a batch (``torch.utils.data.default_collate`` does the same)."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def _make(seed: int, size: int, modalities: Sequence[str] | None, min_valid: float,
          pair_kw: dict[str, Any]) -> Pair:
    rng = np.random.default_rng([int(seed), 0xD5])
    p: Pair | None = None
    for attempt in range(4):
        m0 = m1 = None
        if modalities:
            m0, m1 = (str(rng.choice(list(modalities))) for _ in range(2))
        # retries use far-away seeds (another world block): still deterministic
        s = int(seed) + attempt * 1_000_003 * PAIRS_PER_WORLD
        p = make_pair(s, size=size, mod0=m0, mod1=m1, **pair_kw)
        if p.valid0.mean() >= min_valid:
            break
    return p  # type: ignore[return-value]


class SyntheticPairDataset(torch.utils.data.Dataset):
    """Map-style dataset: item ``k`` is the pair of seed ``base_seed + k`` (deterministic).

    Args:
        length: number of items.
        size: pair side in pixels.
        base_seed: first seed (keep training, validation and test ranges apart).
        modalities: draw both sides from these (default: every modality).
        min_valid: retry (other seeds) while the co-visible fraction of img0 is below this.
        augment: photometric augmentation strength (0 = off).
        **pair_kw: passed to :func:`xgeo.synth.make_pair` (``max_rotation_deg``,
            ``scale_range``, ``local_distortion``, ``world_factor``, ``pixel_size``).
    """

    def __init__(self, length: int, size: int = 320, base_seed: int = 0,
                 modalities: Sequence[str] | None = None, min_valid: float = 0.2,
                 augment: float = 0.0, **pair_kw: Any) -> None:
        if length < 1:
            raise ConfigError(f"SyntheticPairDataset: length must be >= 1, got {length}")
        bad = sorted(set(modalities or ()) - set(PAIR_MODALITIES))
        if bad:
            raise ConfigError(f"SyntheticPairDataset: unknown modalities {bad}: not in "
                              f"{PAIR_MODALITIES}")
        self.length, self.size, self.base_seed = int(length), int(size), int(base_seed)
        self.modalities = tuple(modalities) if modalities else None
        self.min_valid, self.augment, self.pair_kw = float(min_valid), float(augment), pair_kw

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not 0 <= k < self.length:
            raise IndexError(k)
        seed = self.base_seed + int(k)
        p = _make(seed, self.size, self.modalities, self.min_valid, self.pair_kw)
        return pair_to_item(p, self.augment, seed)


class SyntheticPairStream(torch.utils.data.IterableDataset):
    """Endless stream of pairs; DataLoader workers get disjoint seed blocks.

    Worker ``w`` of ``n`` takes world blocks ``b = w, w + n, w + 2n, ...`` and yields the
    ``PAIRS_PER_WORLD`` consecutive seeds of each block, so the world of a block is generated
    once. The stream is deterministic for a given ``(base_seed, num_workers)``.

    Args: as :class:`SyntheticPairDataset` (no ``length``).
    """

    def __init__(self, size: int = 320, base_seed: int = 0,
                 modalities: Sequence[str] | None = None, min_valid: float = 0.2,
                 augment: float = 0.0, **pair_kw: Any) -> None:
        self.inner = SyntheticPairDataset(1, size, base_seed, modalities, min_valid, augment,
                                          **pair_kw)
        if base_seed % PAIRS_PER_WORLD:
            raise ConfigError(f"SyntheticPairStream: base_seed must be a multiple of "
                              f"{PAIRS_PER_WORLD} so that blocks align with cached worlds")

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        d = self.inner
        block = wid
        while True:
            for j in range(PAIRS_PER_WORLD):
                seed = d.base_seed + block * PAIRS_PER_WORLD + j
                p = _make(seed, d.size, d.modalities, d.min_valid, d.pair_kw)
                yield pair_to_item(p, d.augment, seed)
            block += nw


class TranslatedImagePairs(torch.utils.data.Dataset):
    """Pairs from real images: each side translated into another appearance, one warped.

    For real structure under cross-modal appearance; use images you are allowed to train on.

    Args:
        images: sequence of ``(H, W)`` / ``(H, W, C)`` / ``(C, H, W)`` arrays (any dtype), each
            at least ``size`` on both sides.
        length: number of items (image ``k % len(images)``, random crop).
        size: pair side.
        kinds: translators to draw from (default: all; ``"identity"`` keeps the image).
        base_seed: seed of item 0.
        **warp_kw: passed to :func:`xgeo.synth.random_warp`.
    """

    def __init__(self, images: Sequence[np.ndarray], length: int, size: int = 320,
                 kinds: Sequence[str] | None = None, base_seed: int = 0,
                 **warp_kw: Any) -> None:
        if not images:
            raise ConfigError("TranslatedImagePairs: no images given")
        self.kinds = tuple(kinds) if kinds else (*TRANSLATORS, "identity")
        bad = sorted(set(self.kinds) - set(TRANSLATORS) - {"identity"})
        if bad:
            raise ConfigError(f"TranslatedImagePairs: unknown kinds {bad}: not in {TRANSLATORS}")
        self.images, self.length, self.size = list(images), int(length), int(size)
        self.base_seed, self.warp_kw = int(base_seed), warp_kw

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        from xgeo.synth.translate import as_float_image
        from xgeo.synth.warp import _remap

        seed = self.base_seed + int(k)
        rng = np.random.default_rng([seed, 0x7A1])
        gray, rgb = as_float_image(self.images[k % len(self.images)])
        src = rgb if rgb is not None else gray
        h, w = gray.shape
        s = self.size
        # a canvas 1.5x the pair (when the image allows) so the warp keeps coverage
        c = min(h, w, int(s * 1.5))
        if c < s:
            raise ConfigError(f"TranslatedImagePairs: image {k % len(self.images)} of shape "
                              f"{gray.shape} is smaller than size {s}")
        y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        crop = src[y0:y0 + c, x0:x0 + c]
        sides = []
        for _ in range(2):
            kind = str(rng.choice(self.kinds))
            sides.append(as_float_image(crop)[0] if kind == "identity"
                         else translate(crop, kind, int(rng.integers(2**31 - 1))))
        o = (c - s) // 2
        warp = random_warp(int(rng.integers(2**31 - 1)), (s, s), **self.warp_kw)
        inv = warp.inverse_map()
        inv += np.float32(o)
        img1 = np.clip(_remap(sides[1], inv, 0.0, 1), 0, 1)
        valid1 = (inv[..., 0] >= 0) & (inv[..., 0] <= c - 1) & (inv[..., 1] >= 0) \
            & (inv[..., 1] <= c - 1)
        flow = warp.flow
        valid0 = (flow[..., 0] >= 0) & (flow[..., 0] <= s - 1) & (flow[..., 1] >= 0) \
            & (flow[..., 1] <= s - 1)
        p = Pair(img0=np.ascontiguousarray(sides[0][o:o + s, o:o + s]),
                 img1=np.where(valid1, img1, 0).astype(np.float32), flow_0to1=flow,
                 valid0=valid0, valid1=valid1, H_0to1=warp.H_0to1, mod0="translated",
                 mod1="translated", seed=seed, warp=warp)
        return pair_to_item(p, 0.0, seed)
