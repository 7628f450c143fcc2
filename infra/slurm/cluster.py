"""Run the xgeo nightly flow on a SLURM machine with dask-jobqueue.

    pip install dask-jobqueue
    python infra/slurm/cluster.py /shared/catalogs/night/catalog.json /shared/out --jobs 4

Each SLURM job is one dask worker with one GPU (``--gres=gpu:1``, resource ``GPU=1``), so xgeo's
matching batches (annotated ``resources={"GPU": 1}``) go one per GPU and the model is loaded once
per job (SLURM's ``--gres`` sets ``CUDA_VISIBLE_DEVICES``, so a plain ``dask worker`` per job
is the dask-cuda layout). The flow itself runs here (on the login/head node), orchestrates scenes in-process and
sends tile batches to the cluster by address; the Zarr stores and outputs must be on a file
system every node mounts (``/shared``).
"""

from __future__ import annotations

import argparse


def make_cluster(jobs: int, *, queue: str = "gpu", account: str | None = None,
                 walltime: str = "04:00:00", memory: str = "32GB", cores: int = 4) -> object:
    """A ``dask_jobqueue.SLURMCluster`` of ``jobs`` single-GPU workers."""
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(
        queue=queue,
        account=account,
        cores=cores,
        processes=1,  # one worker process per job = per GPU
        memory=memory,
        walltime=walltime,
        job_extra_directives=["--gres=gpu:1"],
        job_script_prologue=["export OMP_NUM_THREADS=1", "source ~/xgeo-venv/bin/activate"],
        worker_extra_args=["--resources", "GPU=1", "--local-directory", "$TMPDIR"],
    )
    cluster.scale(jobs=jobs)
    return cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("catalog")
    ap.add_argument("out_dir")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--queue", default="gpu")
    ap.add_argument("--account", default=None)
    args = ap.parse_args()
    cluster = make_cluster(args.jobs, queue=args.queue, account=args.account)
    print(cluster.job_script())
    from flows.nightly import nightly

    try:
        nightly(catalog=args.catalog, out_dir=args.out_dir, address=cluster.scheduler_address)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
