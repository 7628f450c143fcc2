"""Tile-matching throughput on a local dask cluster: 1 vs 2 worker processes.

    python flows/bench_throughput.py [--size 1024] [--tile 256] [--matcher classical]
                                     [--workers 1 2] [--repeats 2]

Plans one generated scene pair once (Zarr store in a temp dir), then for each worker count
starts a ``LocalCluster`` of single-threaded worker processes, warms every worker (imports and
matcher loaded once per worker), and times matching all tiles through the same path the
nightly flow uses (``flows.runners.submit_batches``, one tile per dask task). Prints tiles/s per
worker count and the scaling ratio against 1 worker measured in the same run. On a shared
2-core machine the ceiling is 2x and other load lowers it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict[int, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--halo", type=int, default=32)
    ap.add_argument("--matcher", default="classical")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from distributed import LocalCluster

    from flows.runners import ClusterHandle, XgeoWorkerSetup, submit_batches
    from xgeo.pipeline import RegisterConfig, get_matcher, plan_pair
    from xgeo.synth import write_scene_pair

    cfg = RegisterConfig(matcher=args.matcher, tile_size=args.tile, halo=args.halo)
    with tempfile.TemporaryDirectory(prefix="xgeo-bench-") as tmp:
        tmpd = Path(tmp)
        write_scene_pair(tmpd / "pair", args.seed, shape=(args.size, args.size),
                         ref_modality="optical", mov_modality="sar")
        plan = plan_pair(tmpd / "pair" / "ref.tif", tmpd / "pair" / "mov.tif", tmpd / "work", cfg)
        plan_json, tiles = plan.to_json(), [t.to_json() for t in plan.tiles]
        print(f"scene {args.size}x{args.size}, {len(tiles)} tiles of {args.tile}+{args.halo} px, "
              f"matcher {args.matcher}")
        rates: dict[int, float] = {}
        for n in args.workers:
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, cluster.get_client() as client:
                client.register_plugin(XgeoWorkerSetup())
                client.run(lambda: get_matcher(cfg) and None)  # load the model once per worker
                h = ClusterHandle(client, cluster.scheduler_address, "", "local")
                # warm-up: one tile per worker (first-call costs: numba/FFT plans, Zarr open)
                submit_batches(h, [(f"warm-{n}-{i}", plan_json, [tiles[i % len(tiles)]],
                                    cfg.to_dict()) for i in range(n)])
                times = []
                for r in range(args.repeats):
                    t0 = time.perf_counter()
                    submit_batches(h, [(f"bench-{n}-{r}-{i}", plan_json, [t], cfg.to_dict())
                                       for i, t in enumerate(tiles)])
                    times.append(time.perf_counter() - t0)
                rates[n] = len(tiles) / statistics.median(times)
                print(f"{n} worker process(es): {rates[n]:.2f} tiles/s "
                      f"(median of {args.repeats}: {statistics.median(times):.2f} s)")
        base = rates.get(1)
        if base:
            for n, r in rates.items():
                if n != 1:
                    print(f"scaling {n} vs 1 workers: {r / base:.2f}x (ideal {n}x)")
    return rates


if __name__ == "__main__":
    main()
