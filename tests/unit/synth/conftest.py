"""Small shared worlds for the synth tests (generated once per session)."""

from __future__ import annotations

import pytest

from xgeo.synth import World, generate_world


@pytest.fixture(scope="session")
def world() -> World:
    """A 256 x 256 world at 10 m with a city, roads, fields and water."""
    return generate_world(7, (256, 256), pixel_size=10.0)


@pytest.fixture(scope="session")
def rural_world() -> World:
    """A 256 x 256 world at 20 m without a town: fields, forest, water, rural roads."""
    return generate_world(4, (256, 256), pixel_size=20.0)
