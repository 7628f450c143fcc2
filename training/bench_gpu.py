"""GPU throughput of the universal matcher at 512 x 512: batched pairs/s and peak GPU memory.

    python -m training.bench_gpu [--presets tiny,base] [--batches 1,8,32,64,128]
        [--weights PRESET=FILE ...] [--repeats 10] [--json OUT]

For each preset, two measurements on the same 8 synthetic optical-SAR pairs (repeated to fill a
batch), all in one run:

* **network**: images already on the GPU, ``UniversalMatcherNet.match`` (backbone, transformer,
  dual-softmax mutual matching, fine refinement) in the matcher's precision (bf16 autocast where
  supported) at each batch size, with ``float32`` at batch 1 as the baseline the ratios are
  taken against;
* **end to end**: ``UniversalMatcher.match_batch`` (host arrays in, :class:`Matches` out: the
  pipeline's call for a batch of tiles, one pass, no search) at batch sizes 8 and 64, the
  latter also with the per-pair host work on one thread (``host_threads=1``) instead of the
  CUDA default.

Peak memory is ``torch.cuda.max_memory_allocated`` of each configuration. Weights: the shipped
ones of the preset, else ``--weights``, else random initialisation (reported: a random network
finds few coarse matches, so its fine stage costs less than a trained one's).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xgeo.errors import ConfigError


def _pairs(n: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The CPU benchmark's pairs (:mod:`training.bench_matcher`), invalid pixels set to 0 for
    the bare network."""
    from training.bench_matcher import _pairs as bench_pairs

    return [(np.nan_to_num(a), np.nan_to_num(b)) for a, b in bench_pairs(n, size)]


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``fn`` with the GPU synchronised after each call (the CPU bench's
    timer, :func:`training.bench_matcher._time`, which warms up once first)."""
    from training.bench_matcher import _time

    def synced() -> None:
        fn()
        torch.cuda.synchronize()

    return _time(synced, repeats)


def _network(preset: str, weights: str | None) -> tuple[torch.nn.Module, str]:
    from xgeo.matcher.config import get_config
    from xgeo.matcher.model import UniversalMatcherNet
    from xgeo.matcher.weights import build_model, shipped_weights_path

    if weights:
        return build_model(weights), Path(weights).name
    if shipped_weights_path(preset).is_file():
        return build_model(None, preset), shipped_weights_path(preset).name
    torch.manual_seed(0)
    return UniversalMatcherNet(get_config(preset)), "random init (no weights)"


def bench_preset(preset: str, batches: list[int], repeats: int, size: int = 512,
                 weights: str | None = None) -> dict[str, Any]:
    """Throughput and peak memory of one preset on the current CUDA device."""
    import xgeo
    from xgeo.matcher.inference import _autocast_for

    dev = torch.device("cuda")
    net, source = _network(preset, weights)
    net = net.eval().fuse().to(dev)
    use_ac, dtype = _autocast_for(dev, True)
    pairs = _pairs(8, size)
    a = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    b = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
    from xgeo.matcher.weights import read_card, shipped_weights_path

    card = read_card(weights or shipped_weights_path(preset)) if not source.startswith("random") else {}
    threshold = float(card.get("inference", {}).get("threshold", 0.2))  # as the matcher runs it
    fine_local = int(card.get("inference", {}).get("fine_local", 0))
    rows: list[dict[str, Any]] = []

    def run(bs: int, autocast: bool) -> dict[str, Any]:
        reps = -(-bs // 8)
        x0 = a.repeat(reps, 1, 1, 1)[:bs].to(dev)
        x1 = b.repeat(reps, 1, 1, 1)[:bs].to(dev)
        n_matches: list[int] = []

        def once() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=autocast):
                r = net.match(x0, x1, threshold, fine_local=fine_local)
            n_matches.append(int(r.b_ids.numel()))

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        sec = _timed(once, repeats)
        return {"batch": bs, "precision": str(dtype).removeprefix("torch.") if autocast else "float32",
                "pairs_per_s": bs / sec, "ms_per_batch": 1e3 * sec,
                "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                "matches_per_pair": n_matches[-1] / bs}

    base = run(1, False)
    rows.append(base)
    for bs in batches:
        try:
            rows.append(run(bs, use_ac))
        except torch.OutOfMemoryError:
            rows.append({"batch": bs, "error": "out of GPU memory"})
            torch.cuda.empty_cache()
    for r in rows:
        if "pairs_per_s" in r:
            r["x_vs_fp32_batch1"] = r["pairs_per_s"] / base["pairs_per_s"]
    e2e = []
    for bs, host in ((8, None), (64, 1), (64, None)):
        opts: dict[str, Any] = {"weights": weights} if weights else {}
        if source.startswith("random"):
            break  # the matcher API loads trained weights only
        m = xgeo.load_matcher("universal", orientation_search=False, scale_search=False,
                              two_pass=False, equalize="none", batch_size=bs, preset=preset,
                              host_threads=host, **opts)
        many = [pairs[k % 8] for k in range(bs)]
        torch.cuda.reset_peak_memory_stats()
        sec = _timed(lambda m=m, many=many: m.match_batch(many), max(3, repeats // 3))
        e2e.append({"batch": bs, "host_threads": m._host_threads, "pairs_per_s": bs / sec,
                    "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30})
    n_par = sum(p.numel() for p in net.parameters())
    return {"preset": preset, "weights": source, "parameters": n_par, "threshold": threshold,
            "network": rows,
            "match_batch": e2e}


def _classical_baseline(size: int, repeats: int) -> float:
    """Pairs/s of the classical matcher on this machine's CPU (same pairs): a host reference."""
    import xgeo

    cls = xgeo.load_matcher("classical")
    x, y = _pairs(1, size)[0]
    cls.match(x, y)
    t = time.perf_counter()
    for _ in range(repeats):
        cls.match(x, y)
    return repeats / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,base")
    ap.add_argument("--batches", default="1,8,32,64,128")
    ap.add_argument("--weights", action="append", default=[], metavar="PRESET=FILE")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device here; the CPU benchmark is "
                         "python -m training.bench_matcher")
    weights = {}
    for w in a.weights:
        if "=" not in w:
            raise ConfigError(f"--weights {w!r}: expected PRESET=FILE")
        k, v = w.split("=", 1)
        weights[k] = v
    batches = [int(x) for x in a.batches.split(",")]
    gpu = torch.cuda.get_device_name(0)
    res: dict[str, Any] = {"device": gpu, "size": 512, "torch": torch.__version__,
                           "classical_cpu_pairs_per_s": _classical_baseline(512, 5), "presets": []}
    print(f"pairs/s at 512x512 on {gpu} (torch {torch.__version__}); "
          f"classical matcher on the host CPU: {res['classical_cpu_pairs_per_s']:.2f} pairs/s")
    for preset in a.presets.split(","):
        r = bench_preset(preset, batches, a.repeats, weights=weights.get(preset))
        res["presets"].append(r)
        print(f"{preset} ({r['parameters'] / 1e6:.2f} M parameters, {r['weights']}): network")
        for row in r["network"]:
            if "error" in row:
                print(f"  batch {row['batch']:4d}: {row['error']}")
                continue
            print(f"  batch {row['batch']:4d} {row['precision']:9s} {row['pairs_per_s']:9.1f} pairs/s"
                  f"  x{row['x_vs_fp32_batch1']:6.2f} vs fp32 batch 1   peak {row['peak_mem_gib']:6.2f} GiB"
                  f"  {row['matches_per_pair']:7.0f} matches/pair")
        for row in r["match_batch"]:
            print(f"  match_batch({row['batch']}), {row['host_threads']} host threads, end to end:"
                  f" {row['pairs_per_s']:9.1f} pairs/s"
                  f"   peak {row['peak_mem_gib']:6.2f} GiB")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
