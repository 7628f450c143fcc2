"""Peak memory of ``xgeo.tiling.prepare_pair`` against scene size (should stay roughly flat).

For each size N (default 2048, 8192, 16384) a fresh subprocess writes two generated N x N uint16
GeoTIFFs block by block (tiled, deflate; generation never holds a whole scene): the reference,
and the moving scene (a different band of the same synthetic ground, its geotransform shifted by
(+3.5, -2.25) px). Another fresh subprocess runs ``prepare_pair`` on them and reports its peak RSS
(``ru_maxrss``), its RSS after imports, and the wall time. The table gives ratios against the
first (2048^2) run of the same invocation.

Usage::

    python tests/bench/bench_memory.py [--sizes 2048 8192 16384] [--tile-size 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_STRIP = 512


def _field(y0: int, n_rows: int, width: int, band: int) -> np.ndarray:
    """Synthetic ground rows ``[y0, y0 + n_rows)`` of one band as uint16 ``(n_rows, width)``."""
    y = np.arange(y0, y0 + n_rows, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    base = np.sin(x / 37.0) * np.cos(y / 23.0) + 0.5 * np.sin((x + y) / 101.0)
    if band == 2:
        base = -base + 0.3 * np.cos(x / 11.0)
    rng = np.random.default_rng(y0 * 7 + band)
    noise = rng.standard_normal((n_rows, width), dtype=np.float32) * 0.05
    return np.clip(20000 + 8000 * (base + noise), 1, 65535).astype(np.uint16)


def generate(n: int, out: Path) -> None:
    """Write ``ref.tif`` and ``mov.tif`` (N x N, uint16, tiled 512, deflate) block-wise."""
    import rasterio
    from affine import Affine

    ref_t = Affine(10, 0, 400000, 0, -10, 5000000)
    for name, band, t in (("ref.tif", 1, ref_t),
                          ("mov.tif", 2, ref_t @ Affine.translation(3.5, -2.25))):
        profile = {"driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "uint16",
                   "crs": "EPSG:32633", "transform": t, "tiled": True, "blockxsize": 512,
                   "blockysize": 512, "compress": "deflate", "zlevel": 1, "nodata": 0}
        with rasterio.open(out / name, "w", **profile) as ds:
            for y0 in range(0, n, _STRIP):
                rows = min(_STRIP, n - y0)
                ds.write(_field(y0, rows, n, band), 1,
                         window=rasterio.windows.Window(0, y0, n, rows))


def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(folder: Path, tile_size: int) -> dict[str, float]:
    """Run prepare_pair once in this process; return peak RSS and timing."""
    from xgeo.tiling import prepare_pair

    rss_imports = _rss_now_mb()
    t0 = time.perf_counter()
    plan = prepare_pair(folder / "ref.tif", folder / "mov.tif", folder / "pair.zarr",
                        tile_size=tile_size, halo=64)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_rss_mb": peak, "rss_after_imports_mb": rss_imports, "seconds": seconds,
            "tiles": len(plan.tiles), "skipped": len(plan.skipped)}


def _run(args: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"subprocess {args} failed:\n{res.stderr}")
    return res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192, 16384])
    ap.add_argument("--tile-size", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--_generate", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_folder", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._generate is not None:
        generate(a._generate, a._folder)
        return
    if a._measure:
        print(json.dumps(measure(a._folder, a.tile_size)))
        return

    root = Path(tempfile.mkdtemp(prefix="xgeo-bench-mem-", dir=a.dir))
    rows = []
    try:
        for n in a.sizes:
            folder = root / f"n{n}"
            folder.mkdir()
            t0 = time.perf_counter()
            _run(["--_generate", str(n), "--_folder", str(folder)])
            gen_s = time.perf_counter() - t0
            r = json.loads(_run(["--_measure", "--_folder", str(folder),
                                 "--tile-size", str(a.tile_size)]).strip().splitlines()[-1])
            r.update(n=n, gen_s=gen_s)
            rows.append(r)
            print(f"done {n}^2: peak {r['peak_rss_mb']:.0f} MB in {r['seconds']:.1f} s "
                  f"(generation {gen_s:.1f} s)", flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = rows[0]
    print(f"\nprepare_pair peak RSS vs scene size (tile {a.tile_size}, halo 64, uint16 inputs, "
          f"ratios vs {base['n']}^2)")
    print("| scene | raw MB per input | tiles kept/skipped | peak RSS MB | ratio | "
          "RSS after imports MB | seconds | Mpx/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        n = r["n"]
        print(f"| {n}^2 | {n * n * 2 / 2**20:.0f} | {r['tiles']}/{r['skipped']} | "
              f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] / base['peak_rss_mb']:.2f} | "
              f"{r['rss_after_imports_mb']:.0f} | {r['seconds']:.1f} | "
              f"{n * n / 1e6 / r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
