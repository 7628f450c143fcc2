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
