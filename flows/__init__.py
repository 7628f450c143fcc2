"""Prefect flows over :mod:`xgeo` (wiring only, no science).

* :func:`flows.register.coregister_pair` - one pair, same stages as ``xgeo.pipeline.register``.
* :func:`flows.nightly.nightly` - every job of a STAC job catalog, with caching, retries,
  per-scene failure isolation and a run summary.
* :func:`flows.serve.serve` - serve the nightly deployment on a cron schedule.
* :mod:`flows.runners` - dask cluster choice (address, dask-cuda, local) and the worker-side
  batch function.

Importing this package sets Prefect's offline defaults (telemetry off, longer ephemeral-server
start-up timeout) unless the environment already sets them.
"""

from __future__ import annotations

from typing import Any

from flows._prefect import offline_defaults

offline_defaults()

__all__ = ["coregister_pair", "nightly", "serve"]


def __getattr__(name: str) -> Any:
    if name == "coregister_pair":
        from flows.register import coregister_pair

        return coregister_pair
    if name == "nightly":
        from flows.nightly import nightly

        return nightly
    if name == "serve":
        from flows.serve import serve

        return serve
    raise AttributeError(f"module 'flows' has no attribute {name!r}")
