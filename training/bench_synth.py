"""Benchmark of the synthetic engine on one core: pairs/s at training sizes, world timings.

    python -m training.bench_synth [--n 40] [--sizes 320 512] [--big]

Prints CPU-time rates (``time.process_time``, robust to other processes on a shared machine)
and wall-clock rates, for consecutive seeds (the intended use: ``PAIRS_PER_WORLD`` pairs share
a cached world) and for scattered seeds (every pair builds its own world), plus the ratio of
the two. ``--big`` also times ``generate_world`` at 4096 x 4096 and reports its peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _rate(seeds: list[int], size: int) -> tuple[float, float]:
    from xgeo.synth import make_pair
    from xgeo.synth.pairs import _cached_world

    _cached_world.cache_clear()
    c0, w0 = time.process_time(), time.perf_counter()
    for s in seeds:
        make_pair(s, size=size)
    c1, w1 = time.process_time(), time.perf_counter()
    return len(seeds) / (c1 - c0), len(seeds) / (w1 - w0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=40, help="pairs per measurement")
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 512])
    ap.add_argument("--big", action="store_true", help="time a 4096 x 4096 world too")
    a = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    from xgeo.synth import ENGINE_VERSION, make_pair
    from xgeo.synth.pairs import PAIRS_PER_WORLD

    make_pair(0, size=64)  # imports, caches
    print(f"xgeo.synth {ENGINE_VERSION}: one core (OpenCV 1 thread, OMP 1), "
          f"{PAIRS_PER_WORLD} pairs per cached world")
    print(f"{'size':>5} {'seeds':>10} {'pairs/s cpu':>12} {'pairs/s wall':>13} {'ms/pair cpu':>12}")
    for size in a.sizes:
        n = a.n if size <= 320 else max(8, a.n // 2)
        n = max(PAIRS_PER_WORLD, n - n % PAIRS_PER_WORLD)
        consec = list(range(1000, 1000 + n))
        scattered = [1000 + 7919 * PAIRS_PER_WORLD * k for k in range(n)]
        rc, rw = _rate(consec, size)
        sc, sw = _rate(scattered, size)
        print(f"{size:>5} {'consecutive':>10} {rc:>12.1f} {rw:>13.1f} {1000 / rc:>12.1f}")
        print(f"{size:>5} {'scattered':>10} {sc:>12.1f} {sw:>13.1f} {1000 / sc:>12.1f}")
        print(f"{size:>5} speed-up of world re-use (cpu): {rc / sc:.2f}x")
    if a.big:
        from xgeo.synth import generate_world, render

        c0, w0 = time.process_time(), time.perf_counter()
        world = generate_world(1, (4096, 4096))
        c1, w1 = time.process_time(), time.perf_counter()
        print(f"generate_world 4096^2: {c1 - c0:.1f} s cpu, {w1 - w0:.1f} s wall")
        for m in ("optical", "sar", "map"):
            c0 = time.process_time()
            render(world, m, 1)
            print(f"render {m} 4096^2: {time.process_time() - c0:.1f} s cpu")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
