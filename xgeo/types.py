"""Small typing vocabulary: array aliases and modality names."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

NDArrayf = npt.NDArray[np.floating]
NDArrayf32 = npt.NDArray[np.float32]
NDArrayb = npt.NDArray[np.bool_]

Modality = Literal["optical", "thermal", "sar", "map", "dem", "night"]
MODALITIES: tuple[str, ...] = ("optical", "thermal", "sar", "map", "dem", "night")

ModelKind = Literal["shift", "affine", "poly2", "poly3", "tps", "auto"]
MODEL_KINDS: tuple[str, ...] = ("shift", "affine", "poly2", "poly3", "tps")
