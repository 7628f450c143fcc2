"""Serve the nightly flow as a Prefect deployment with a cron schedule.

Cron schedules need a real Prefect server (ephemeral mode refuses them)::

    export PREFECT_HOME=~/.xgeo/prefect PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
    prefect server start --host 127.0.0.1 &          # healthy in ~15 s, UI on :4200
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m flows.serve catalogs/example/catalog.json /data/xgeo --cron "0 2 * * *" \\
        [--address tcp://scheduler:8786]      # or the CLI's `xgeo serve`

The process then polls the server and runs ``nightly`` at each scheduled time (and on demand:
``prefect deployment run 'xgeo-nightly/xgeo-nightly'``). Everything stays on the machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from flows.nightly import nightly

__all__ = ["build_deployment", "serve", "main"]


def build_deployment(
    catalog: str | Path,
    out_dir: str | Path,
    cron: str = "0 2 * * *",
    *,
    name: str = "xgeo-nightly",
    timezone: str | None = None,
    address: str | None = None,
    config: dict[str, Any] | None = None,
    **params: Any,
) -> Any:
    """The nightly deployment (a Prefect ``RunnerDeployment``) with a cron schedule.

    Args:
        catalog: job catalog.
        out_dir: nightly output root.
        cron: cron expression (default 02:00 every night).
        name: deployment name.
        timezone: IANA time zone of the schedule (default UTC).
        address: dask scheduler to use (else each run starts a local cluster).
        config: RegisterConfig overrides.
        **params: other ``nightly`` parameters (batch_size, scene_concurrency, ...).
    """
    from prefect.schedules import Cron

    parameters: dict[str, Any] = {"catalog": str(Path(catalog).resolve()),
                                  "out_dir": str(Path(out_dir).resolve()), **params}
    if address:
        parameters["address"] = address
    if config:
        parameters["config"] = dict(config)
    schedule = Cron(cron, timezone=timezone) if timezone else Cron(cron)
    return nightly.to_deployment(name=name, schedules=[schedule], parameters=parameters,
                                 description="xgeo nightly co-registration of a STAC job catalog")


def serve(
    catalog: str | Path,
    out_dir: str | Path,
    cron: str = "0 2 * * *",
    **kwargs: Any,
) -> None:
    """Serve the nightly deployment until interrupted (needs ``PREFECT_API_URL``; see module doc)."""
    from prefect import serve as prefect_serve

    prefect_serve(build_deployment(catalog, out_dir, cron, **kwargs))


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.serve CATALOG OUT_DIR [--cron ...] [--address ...] [--name ...]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m flows.serve", description=serve.__doc__)
    ap.add_argument("catalog")
    ap.add_argument("out_dir")
    ap.add_argument("--cron", default="0 2 * * *")
    ap.add_argument("--timezone", default=None)
    ap.add_argument("--address", default=os.environ.get("XGEO_DASK_ADDRESS"),
                    help="dask scheduler (default: $XGEO_DASK_ADDRESS, else a local cluster)")
    ap.add_argument("--name", default="xgeo-nightly")
    args = ap.parse_args(argv)
    serve(args.catalog, args.out_dir, args.cron, name=args.name, timezone=args.timezone,
          address=args.address)


if __name__ == "__main__":
    main(sys.argv[1:])
