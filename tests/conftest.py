"""Shared fixtures: real data location, seeds, CPU-friendly threading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = (REPO / ".." / "shared" / "data" / "real").resolve()

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of real cross-modal pairs (../shared/data/real beside the checkout)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data folder {REAL_DATA} is absent (it sits beside the checkout as "
                    "../shared/data/real on developer and CI machines)")
    return REAL_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
