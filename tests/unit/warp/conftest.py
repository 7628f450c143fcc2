"""Fixtures for warp tests (fakes live in ``warp_fakes.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from warp_fakes import FakePlan, smooth_field, write_tif


@pytest.fixture
def float_pair(tmp_path: Path) -> tuple[FakePlan, np.ndarray]:
    """1-band float32 160x200 smooth scene; ref and mov on the same grid."""
    data = smooth_field(160, 200).astype(np.float32)
    mov = write_tif(tmp_path / "mov.tif", data)
    ref = write_tif(tmp_path / "ref.tif", np.zeros_like(data))
    return FakePlan(ref=ref, mov=mov), data


@pytest.fixture
def uint16_pair(tmp_path: Path) -> tuple[FakePlan, np.ndarray]:
    """3-band uint16 150x170 scene with nodata=0 and a nodata hole, plus band descriptions."""
    base = smooth_field(150, 170, seed=3)
    data = np.stack([1000 + 3000 * base * (1 + 0.2 * b) for b in range(3)]).astype(np.uint16)
    data[:, 60:70, 80:95] = 0
    mov = write_tif(tmp_path / "mov.tif", data, nodata=0, descriptions=("red", "green", "blue"))
    ref = write_tif(tmp_path / "ref.tif", np.zeros((150, 170), np.uint16))
    return FakePlan(ref=ref, mov=mov), data
