"""training.bench_matcher measures every configuration it names, on small pairs."""

from __future__ import annotations

import pytest

from xgeo.matcher.weights import shipped_weights_path


@pytest.mark.skipif(not shipped_weights_path("tiny").is_file(), reason="no shipped weights")
def test_bench_reports_every_configuration() -> None:
    from training.bench_matcher import bench

    res = bench(threads=1, repeats=1, size=128)
    assert {"classical", "sift", "universal (one pass)",
            "universal (two passes, the pipeline's setting)",
            "universal+orientation_search (4, quarter turns)",
            "universal+orientation_search (8, default)",
            "universal+orientation_search (8, early_exit)",
            "universal+orientation_search (8, searched at full size)",
            "universal+orientation_search (8, without verification)",
            "universal+orientation_search (8, without the CLAHE rerun)",
            "universal (one pass, the 8 pairs one by one)",
            "universal.match_batch(8) (one pass)"} <= set(res)
    assert all(v > 0 for v in res.values())


def test_gpu_bench_names_the_cpu_bench_where_there_is_no_cuda(monkeypatch) -> None:
    import torch

    from training import bench_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="training.bench_matcher"):
        bench_gpu.main([])
    pairs = bench_gpu._pairs(2, 64)  # the CPU bench's pairs, NaN-free for the bare network
    assert len(pairs) == 2 and all(a.shape == (64, 64) for pair in pairs for a in pair)
    assert all(bool((a == a).all()) for pair in pairs for a in pair)
