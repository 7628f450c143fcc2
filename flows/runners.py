"""Where tile batches run: a dask cluster, chosen once per night, and the worker-side function.

Design (why Prefect does not run on the dask workers):

* Prefect orchestrates per-scene stages (plan, fuse, warp+write, report, STAC) in the flow
  process with a thread pool; the heavy part, matching tile batches, goes to a dask cluster as a
  **plain function** (:func:`match_batch_on_worker`) through a ``distributed.Client``. Workers
  never import or talk to Prefect, so process workers need no Prefect API: with
  ``DaskTaskRunner`` on process workers in Prefect's ephemeral mode every worker starts its own
  temporary server (15-25 s each), and a worker lost mid-run would lose its Prefect task run
  state. Here dask alone reschedules a lost worker's batches on the survivors.
* Pixels move through the Zarr store on a shared file system; a batch submission carries only
  the plan JSON (kilobytes), tile selectors and the config dict; results are small point lists.
* Cluster choice (:func:`open_cluster`): an existing scheduler by address; else
  ``dask_cuda.LocalCUDACluster`` (one worker per GPU, ``threads_per_worker=1``, resource
  ``GPU=1`` per worker, and batches annotated ``resources={"GPU": 1}``) when NVML sees GPUs;
  else ``distributed.LocalCluster``. The model is loaded once per worker process
  (``xgeo.pipeline.get_matcher`` caches it per process; :class:`XgeoWorkerSetup` also pins torch
  to one thread per worker).
* For deployments with a real Prefect server that want the scene-level tasks on dask too,
  :func:`make_task_runner` builds a ``prefect_dask.DaskTaskRunner`` with the same choice.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = [
    "ClusterHandle",
    "open_cluster",
    "gpu_count",
    "make_task_runner",
    "XgeoWorkerSetup",
    "match_batch_on_worker",
    "submit_batches",
    "active_handle",
]

log = logging.getLogger("xgeo.flows")
_ACTIVE: dict[str, ClusterHandle] = {}


def gpu_count() -> int:
    """Number of CUDA devices NVML sees; 0 without a GPU or without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound / DriverNotLoaded / ImportError
        return 0


@dataclass
class ClusterHandle:
    """A connected dask cluster.

    Attributes:
        client: the ``distributed.Client``.
        address: scheduler address.
        dashboard_link: the dask dashboard URL (printed when the night starts).
        kind: ``"address"`` | ``"cuda"`` | ``"local"``.
        gpu: whether batches carry ``resources={"GPU": 1}``.
        cluster: the cluster object when this handle started it (closed with the handle).
    """

    client: Any
    address: str
    dashboard_link: str
    kind: str
    gpu: bool = False
    cluster: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))


class XgeoWorkerSetup(WorkerPlugin):
    """Worker plugin: one torch thread per worker (2 threads on a shared core run slower)."""

    name = "xgeo-worker-setup"
    idempotent = True

    def __init__(self, torch_threads: int = 1) -> None:
        self.torch_threads = torch_threads

    def setup(self, worker: Any) -> None:
        os.environ.setdefault("OMP_NUM_THREADS", str(self.torch_threads))
        try:
            import torch

            torch.set_num_threads(self.torch_threads)
        except Exception:  # noqa: BLE001 - torch is optional on a CPU-only classical worker
            pass

    def teardown(self, worker: Any) -> None:
        return None


def _has_gpu_resource(client: Any) -> bool:
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return any("GPU" in (w.get("resources") or {}) for w in workers.values())


@contextlib.contextmanager
def open_cluster(
    address: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
    use_gpu: bool | None = None,
    dashboard_address: str | None = ":0",
    cluster_kwargs: Mapping[str, Any] | None = None,
) -> Iterator[ClusterHandle]:
    """Connect to (or start) the cluster that will match tile batches.

    Args:
        address: scheduler address (``tcp://host:8786``) of an existing cluster; wins when given.
        n_workers: workers of a local cluster (default: one per GPU, else 2).
        threads_per_worker: threads per local worker (1: the matcher is compute bound).
        processes: local workers as processes (True) or threads in this process.
        use_gpu: force (True) or forbid (False) ``LocalCUDACluster``; None: when NVML sees GPUs.
        dashboard_address: local cluster dashboard (``":0"`` picks a free port; None disables).
        cluster_kwargs: extra keyword arguments for the local cluster class.

    Yields:
        a :class:`ClusterHandle`; a cluster started here is closed on exit.
    """
    from distributed import Client, LocalCluster

    kwargs = dict(cluster_kwargs or {})
    cluster = None
    if address:
        client = Client(address, timeout="30s", set_as_default=False)
        kind = "address"
    else:
        want_gpu = gpu_count() > 0 if use_gpu is None else use_gpu
        if want_gpu:
            try:
                from dask_cuda import LocalCUDACluster

                cluster = LocalCUDACluster(
                    threads_per_worker=1, resources={"GPU": 1},
                    dashboard_address=dashboard_address, **kwargs,
                )
                kind = "cuda"
            except Exception as exc:  # noqa: BLE001 - pynvml.NVMLError_* without a usable GPU
                log.warning("LocalCUDACluster unavailable (%s); using LocalCluster", exc)
                cluster = None
        if cluster is None:
            cluster = LocalCluster(
                n_workers=n_workers or 2, threads_per_worker=threads_per_worker,
                processes=processes, dashboard_address=dashboard_address, **kwargs,
            )
            kind = "local"
        client = Client(cluster, set_as_default=False)
    try:
        try:
            client.register_plugin(XgeoWorkerSetup())
        except Exception as exc:  # noqa: BLE001 - e.g. workers that cannot import flows/
            log.warning("worker setup plugin not registered: %s", exc)
        handle = ClusterHandle(
            client=client, address=client.scheduler.address,
            dashboard_link=str(client.dashboard_link or ""), kind=kind,
            gpu=_has_gpu_resource(client), cluster=cluster,
        )
        _ACTIVE[handle.address] = handle
        yield handle
    finally:
        _ACTIVE.pop(str(client.scheduler.address), None)
        client.close()
        if cluster is not None:
            cluster.close()


def active_handle(address: str) -> ClusterHandle:
    """The open cluster of this process with that scheduler address (tasks pass addresses)."""
    try:
        return _ACTIVE[address]
    except KeyError:
        from xgeo.errors import ConfigError

        raise ConfigError(
            f"no open dask cluster at {address}; open one with flows.runners.open_cluster()"
        ) from None


def make_task_runner(
    address: str | None = None,
    *,
    use_gpu: bool | None = None,
    n_workers: int | None = None,
) -> Any:
    """A ``prefect_dask.DaskTaskRunner`` with the same cluster choice as :func:`open_cluster`.

    Use it when a real Prefect server is running (``PREFECT_API_URL`` set): Prefect tasks then
    run on the dask workers, which must reach that server.

    Args:
        address: existing scheduler; else a ``LocalCUDACluster`` (GPUs) or ``LocalCluster``.
        use_gpu: as in :func:`open_cluster`.
        n_workers: local workers (CPU case).
    """
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    want_gpu = gpu_count() > 0 if use_gpu is None else use_gpu
    if want_gpu:
        return DaskTaskRunner(
            cluster_class="dask_cuda.LocalCUDACluster",
            cluster_kwargs={"threads_per_worker": 1, "resources": {"GPU": 1}},
        )
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": n_workers or 2, "threads_per_worker": 1},
    )


# --------------------------------------------------------------------------- worker side


def match_batch_on_worker(
    plan_json: str, tile_jsons: Sequence[str], cfg: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Match one batch of tiles on a dask worker (plain function: no Prefect on workers).

    Args:
        plan_json: ``TilePlan.to_json()``; the pixels are read from its Zarr store.
        tile_jsons: ``Tile.to_json()`` of the batch.
        cfg: ``RegisterConfig.to_dict()``.

    Returns:
        ``TileResult.to_dict()`` per tile, in order.
    """
    from xgeo.pipeline import RegisterConfig, match_tiles
    from xgeo.tiling import Tile, TilePlan

    plan = TilePlan.from_json(plan_json)
    tiles = [Tile.from_json(t) for t in tile_jsons]
    config = RegisterConfig.from_dict(dict(cfg))
    return [r.to_dict() for r in match_tiles(plan, tiles, config)]


def submit_batches(
    handle: ClusterHandle,
    batches: Sequence[tuple[str, str, Sequence[str], Mapping[str, Any]]],
) -> list[list[dict[str, Any]]]:
    """Run batches on the cluster and wait for all of them.

    Args:
        handle: the cluster.
        batches: ``(dask_key, plan_json, tile_jsons, cfg_dict)`` per batch.

    Returns:
        per batch, the list of ``TileResult`` dicts. A worker lost mid-batch is handled by dask
        (the batch reruns on another worker, up to ``distributed.scheduler.allowed-failures``).
    """
    import dask

    resources = {"GPU": 1} if handle.gpu else None
    futures = []
    with dask.annotate(resources=resources) if resources else contextlib.nullcontext():
        for key, plan_json, tiles, cfg in batches:
            futures.append(handle.client.submit(
                match_batch_on_worker, plan_json, list(tiles), dict(cfg), key=key, pure=False,
                resources=resources, retries=1,
            ))
    return handle.client.gather(futures)
