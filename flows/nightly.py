"""The ``nightly`` flow: every job of a STAC job catalog, one summary per night.

Outputs of night ``N`` go to ``<out_dir>/<N>/``::

    <job>/<job>.tif  <job>_report.json (+ .gpkg, .png)  <job>.stac.json
    catalog.json     STAC catalog of the night's output items
    summary.json     run summary (machine-readable), summary.txt (the table printed at the end)
    _work/           Zarr stores (removed per finished scene) and Prefect's persisted batch results

Run it again for the same night and finished scenes are skipped (no matching, no rewrite).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows import tasks
from flows.register import SceneOutcome, run_scenes
from flows.runners import open_cluster

__all__ = ["nightly", "summary_table", "write_night_catalog", "main"]


def summary_table(outcomes: Sequence[SceneOutcome], title: str = "xgeo night") -> str:
    """The run summary as a text table (rich), one row per scene."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("scene", "status", "tiles", "batches run/cached", "model", "inliers", "RMSE px",
                "s", "reason"):
        table.add_column(col)
    for o in outcomes:
        table.add_row(
            o.job_id, o.status if not o.stage else f"{o.status} ({o.stage})", str(o.n_tiles),
            f"{o.batches_dispatched}/{o.batches_cached}", str(o.model or ""),
            "" if o.n_inliers is None else str(o.n_inliers),
            "" if o.rmse_px is None else f"{o.rmse_px:.2f}", f"{o.seconds:.1f}",
            o.reason[:120],
        )
    console = Console(record=True, width=160, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def write_night_catalog(night_dir: Path, outcomes: Sequence[SceneOutcome], night: str) -> Path:
    """A STAC catalog linking the night's output items (deterministic; rewritten only on change)."""
    links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    for o in sorted(outcomes, key=lambda o: o.job_id):
        if o.status in ("done", "skipped") and o.item:
            links.append({"rel": "item", "href": "./" + os.path.relpath(o.item, night_dir),
                          "type": "application/geo+json", "title": o.job_id})
    d = {"type": "Catalog", "stac_version": "1.1.0", "id": f"xgeo-night-{night}",
         "description": f"xgeo co-registered outputs of night {night}", "links": links}
    path = night_dir / "catalog.json"
    text = json.dumps(d, indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


@flow(name="xgeo-nightly", task_runner=ThreadPoolTaskRunner(max_workers=16), log_prints=True)
def nightly(
    catalog: str,
    out_dir: str,
    night: str | None = None,
    address: str | None = None,
    config: dict[str, Any] | None = None,
    batch_size: int | None = None,
    scene_concurrency: int = 2,
    n_workers: int | None = None,
    keep_work: bool = False,
) -> dict[str, Any]:
    """Co-register every job of a STAC job catalog; never stops for one bad scene.

    Args:
        catalog: job catalog (``catalog.json`` or its folder), see :mod:`xgeo.catalog`.
        out_dir: root of the nightly outputs; this night's go to ``<out_dir>/<night>``.
        night: night label (default: today's date, ISO).
        address: existing dask scheduler (``tcp://host:8786``); else a local cluster is started
            (``LocalCUDACluster`` when GPUs are present).
        config: RegisterConfig overrides for every job (job settings win).
        batch_size: tiles per dask task (default: the config's ``batch_size``).
        scene_concurrency: scenes planned / written at the same time in the flow process.
        n_workers: workers of a local cluster.
        keep_work: keep Zarr stores of finished scenes.

    Returns:
        the run summary (also written to ``summary.json`` / ``summary.txt``).
    """
    from xgeo.catalog import read_jobs

    t0 = time.perf_counter()
    night = night or dt.date.today().isoformat()
    night_dir = Path(out_dir).resolve() / night
    night_dir.mkdir(parents=True, exist_ok=True)
    jobs = read_jobs(catalog)
    paths = {j.id: tasks.OutputPaths.in_dir(night_dir / j.id, j.id) for j in jobs}
    with open_cluster(address, n_workers=n_workers) as handle:
        n = handle.n_workers()
        print(f"dask dashboard: {handle.dashboard_link or 'n/a'} "
              f"(scheduler {handle.address}, {n} workers, {handle.kind})")
        outcomes = run_scenes(jobs, paths, night_dir / "_work", handle, config=config,
                              batch_size=batch_size, scene_concurrency=scene_concurrency,
                              keep_work=keep_work)
        cluster = {"address": handle.address, "dashboard": handle.dashboard_link,
                   "kind": handle.kind, "n_workers": n, "gpu": handle.gpu}
    counts = {k: sum(o.status == k for o in outcomes) for k in ("done", "skipped", "failed")}
    summary = {
        "night": night, "catalog": str(Path(catalog).resolve()), "out_dir": str(night_dir),
        "cluster": cluster, "counts": counts, "n_scenes": len(outcomes),
        "batches_dispatched": sum(o.batches_dispatched for o in outcomes),
        "batches_cached": sum(o.batches_cached for o in outcomes),
        "seconds": round(time.perf_counter() - t0, 3),
        "scenes": [o.to_dict() for o in outcomes],
    }
    write_night_catalog(night_dir, outcomes, night)
    (night_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = summary_table(outcomes, title=f"xgeo night {night}: {counts}")
    (night_dir / "summary.txt").write_text(text)
    print(text)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m flows.nightly CATALOG OUT_DIR [--night N] [--address A] [--matcher M]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m flows.nightly", description=nightly.__doc__)
    ap.add_argument("catalog")
    ap.add_argument("out_dir")
    ap.add_argument("--night", default=None)
    ap.add_argument("--address", default=os.environ.get("XGEO_DASK_ADDRESS"))
    ap.add_argument("--matcher", default=None, help="e.g. classical (default: auto)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="local cluster workers")
    args = ap.parse_args(argv)
    summary = nightly(catalog=args.catalog, out_dir=args.out_dir, night=args.night,
                      address=args.address, n_workers=args.workers, batch_size=args.batch_size,
                      config={"matcher": args.matcher} if args.matcher else None)
    raise SystemExit(1 if summary["counts"]["failed"] else 0)


if __name__ == "__main__":
    main()
