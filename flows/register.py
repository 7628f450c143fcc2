"""The ``coregister_pair`` flow and the scene engine the nightly flow shares.

:func:`run_scenes` mirrors :func:`xgeo.pipeline.register` stage by stage over many scenes at
once: all plans, then every scene's tile batches on the dask cluster together (so the cluster
stays busy across scenes), then fuse / write / report / STAC item. Each stage collects failures
per scene: a scene that fails leaves the night with its stage and reason, the others go on.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows import tasks
from flows._prefect import result_storage
from flows.runners import ClusterHandle, open_cluster

__all__ = ["SceneOutcome", "run_scenes", "coregister_pair"]


@dataclass
class SceneOutcome:
    """What happened to one scene in a run (one row of the night's summary)."""

    job_id: str
    status: str = "pending"  # done | skipped | failed
    stage: str = ""  # where it failed
    reason: str = ""
    n_tiles: int = 0
    n_batches: int = 0
    batches_cached: int = 0
    batches_dispatched: int = 0
    tiles_failed: int = 0
    model: str | None = None
    n_inliers: int | None = None
    rmse_px: float | None = None
    seconds: float = 0.0
    cog: str | None = None
    report: str | None = None
    item: str | None = None
    cache_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fail(self, stage: str, exc: BaseException) -> None:
        self.status, self.stage = "failed", stage
        self.reason = f"{type(exc).__name__}: {exc}".strip()


@dataclass
class _Scene:
    job: Any
    paths: tasks.OutputPaths
    outcome: SceneOutcome
    cfg: Any = None
    key: str = ""
    plan: Any = None
    results: list[dict[str, Any]] = field(default_factory=list)
    fit: Any = None
    report: dict[str, Any] | None = None
    t0: float = 0.0


def _stage(
    name: str,
    scenes: Sequence[_Scene],
    submit: Callable[[_Scene], Any],
    on_result: Callable[[_Scene, Any], None],
    limit: int,
) -> list[_Scene]:
    """Run one stage for every live scene, at most ``limit`` at a time; isolate failures."""
    live = [s for s in scenes if s.outcome.status == "pending"]
    t0 = time.perf_counter()
    for i in range(0, len(live), max(1, limit)):
        wave = live[i:i + max(1, limit)]
        futures = []
        for s in wave:
            try:
                futures.append((s, submit(s)))
            except Exception as exc:  # noqa: BLE001 - per-scene isolation
                s.outcome.fail(name, exc)
        for s, fut in futures:
            try:
                on_result(s, fut.result())
            except Exception as exc:  # noqa: BLE001 - per-scene isolation
                s.outcome.fail(name, exc)
    for s in live:
        s.outcome.extra.setdefault("stage_seconds", {})[name] = round(time.perf_counter() - t0, 3)
    return [s for s in scenes if s.outcome.status == "pending"]


def run_scenes(
    jobs: Sequence[Any],
    paths: Mapping[str, tasks.OutputPaths],
    workdir: str | Path,
    handle: ClusterHandle,
    *,
    config: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    scene_concurrency: int = 2,
    keep_work: bool = False,
) -> list[SceneOutcome]:
    """Register every job; must be called inside a Prefect flow.

    Args:
        jobs: :class:`xgeo.catalog.Job` objects.
        paths: output paths per job id.
        workdir: Zarr stores (``<workdir>/<job id>/tiles.zarr``) and Prefect results.
        handle: the dask cluster that matches tile batches.
        config: RegisterConfig overrides for all jobs (a job's own settings win).
        batch_size: tiles per dask task (default: the config's ``batch_size``).
        scene_concurrency: scenes planned / finished at the same time in this process.
        keep_work: keep each finished scene's Zarr store.

    Returns:
        one :class:`SceneOutcome` per job, in order.
    """
    from xgeo.pipeline import RegisterConfig

    workdir = Path(workdir).resolve()
    storage = result_storage(workdir / "prefect-results")
    match = tasks.match_batch.with_options(result_storage=storage)
    scenes = [_Scene(job, paths[job.id], SceneOutcome(job.id)) for job in jobs]
    for s in scenes:
        s.t0 = time.perf_counter()
        s.outcome.cog, s.outcome.report, s.outcome.item = (
            str(s.paths.cog), str(s.paths.report), str(s.paths.item))
        try:
            s.cfg = RegisterConfig.from_dict({**dict(config or {}), **s.job.config_overrides()})
        except Exception as exc:  # noqa: BLE001
            s.outcome.fail("config", exc)
            continue
        try:
            s.key = s.outcome.cache_key = tasks.scene_cache_key(s.job.ref, s.job.mov, s.cfg)
        except Exception as exc:  # noqa: BLE001
            s.outcome.fail("inputs", exc)
            continue
        if tasks.outputs_done(s.paths, s.key):
            s.outcome.status = "skipped"
            s.outcome.reason = "outputs exist with the same inputs, config and weights"
            _fill_from_report(s.outcome, s.paths.report)

    def plan_done(s: _Scene, plan: Any) -> None:
        s.plan = plan
        s.outcome.n_tiles = len(plan.tiles)

    live = _stage("plan", scenes, lambda s: tasks.plan_scene.submit(
        str(s.job.ref), str(s.job.mov), str(workdir / s.job.id), s.cfg.to_dict()),
        plan_done, scene_concurrency)

    # every scene's batches go to the cluster together
    submitted: list[tuple[_Scene, list[Any]]] = []
    for s in live:
        try:
            plan_json = s.plan.to_json()
            futs = []
            for batch in tasks.split_batches(s.plan.tiles, batch_size or s.cfg.batch_size):
                key = tasks.batch_cache_key(s.key, s.plan.sha256, [t.key for t in batch])
                futs.append(match.submit(quote(plan_json), quote([t.to_json() for t in batch]),
                                         s.cfg.to_dict(), handle.address, key))
            submitted.append((s, futs))
            s.outcome.n_batches = len(futs)
        except Exception as exc:  # noqa: BLE001
            s.outcome.fail("match", exc)
    t_match = time.perf_counter()
    for s, futs in submitted:
        try:
            for fut in futs:
                s.results.extend(fut.result())
                if fut.state.name == "Cached":
                    s.outcome.batches_cached += 1
                else:
                    s.outcome.batches_dispatched += 1
            s.outcome.tiles_failed = sum(r["status"] == "failed" for r in s.results)
        except Exception as exc:  # noqa: BLE001
            s.outcome.fail("match", exc)
        s.outcome.extra.setdefault("stage_seconds", {})["match"] = round(
            time.perf_counter() - t_match, 3)

    def set_attr(attr: str) -> Callable[[_Scene, Any], None]:
        return lambda s, v: setattr(s, attr, v)

    live = _stage("fuse", scenes, lambda s: tasks.fuse_scene.submit(
        quote(s.plan), quote(s.results), s.cfg.to_dict()), set_attr("fit"), scene_concurrency)
    for s in live:
        s.paths.cog.parent.mkdir(parents=True, exist_ok=True)
        s.paths.report.parent.mkdir(parents=True, exist_ok=True)
    live = _stage("write", scenes, lambda s: tasks.write_scene.submit(
        quote(s.plan), quote(s.fit), str(s.paths.cog), s.cfg.to_dict()), lambda s, v: None, scene_concurrency)
    live = _stage("report", scenes, lambda s: tasks.report_scene.submit(
        quote(s.plan), quote(s.fit), quote(s.results), s.cfg.to_dict(), str(s.paths.cog), str(s.paths.report),
        time.perf_counter() - s.t0), set_attr("report"), scene_concurrency)

    def item_done(s: _Scene, _: Any) -> None:
        s.outcome.status = "done"
        _fill_from_report(s.outcome, s.paths.report)

    _stage("stac", scenes, lambda s: tasks.catalog_scene.submit(
        quote(s.job), quote(s.paths), quote(s.report or {}), s.key), item_done, scene_concurrency)
    for s in scenes:
        s.outcome.seconds = round(time.perf_counter() - s.t0, 3)
        if s.outcome.status == "done" and not keep_work:
            shutil.rmtree(workdir / s.job.id / "tiles.zarr", ignore_errors=True)
    return [s.outcome for s in scenes]


def _fill_from_report(outcome: SceneOutcome, report_path: Path) -> None:
    import json

    try:
        rep = json.loads(Path(report_path).read_text())
    except (OSError, ValueError):
        return
    model = rep.get("model")
    outcome.model = model.get("kind") if isinstance(model, dict) else model
    outcome.n_inliers = rep.get("n_inliers")
    outcome.rmse_px = rep.get("rmse_px")


@flow(name="xgeo-coregister-pair", task_runner=ThreadPoolTaskRunner(max_workers=8),
      log_prints=True)
def coregister_pair(
    ref: str,
    mov: str,
    out: str,
    report: str | None = None,
    config: dict[str, Any] | None = None,
    address: str | None = None,
    workdir: str | None = None,
    batch_size: int | None = None,
    n_workers: int | None = None,
    processes: bool = True,
) -> dict[str, Any]:
    """Co-register one pair through Prefect + dask: same stages as ``xgeo.pipeline.register``.

    Args:
        ref: reference raster.
        mov: moving raster.
        out: output COG path (report ``<stem>_report.json`` and item ``<stem>.stac.json`` beside
            it unless ``report`` is given).
        report: report JSON path.
        config: RegisterConfig overrides.
        address: existing dask scheduler; else a local (or CUDA) cluster is started.
        workdir: Zarr store and Prefect results (default ``<out dir>/_work``).
        batch_size: tiles per dask task.
        n_workers: workers of a local cluster.
        processes: local workers as processes (False: threads of this process).

    Returns:
        the scene's :class:`SceneOutcome` as a dict.
    """
    from xgeo.catalog import Job

    out_p = Path(out).resolve()
    job = Job(id=out_p.stem, ref=Path(ref).resolve(), mov=Path(mov).resolve(),
              settings=dict(config or {}))
    paths = {job.id: tasks.OutputPaths.for_cog(out_p, report)}
    with open_cluster(address, n_workers=n_workers, processes=processes) as handle:
        print(f"dask dashboard: {handle.dashboard_link or 'n/a'} (scheduler {handle.address})")
        (outcome,) = run_scenes([job], paths, Path(workdir) if workdir else out_p.parent / "_work",
                                handle, batch_size=batch_size)
    print(f"{outcome.job_id}: {outcome.status} {outcome.stage} {outcome.reason}".strip())
    return outcome.to_dict()
