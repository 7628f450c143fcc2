"""Acceptance: the nightly flow on a real multi-process dask cluster on loopback.

One night over >= 6 pairs (generated + real) and one corrupt scene, with one worker process
killed while it is matching; then the same night again (nothing matched, nothing rewritten).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from xgeo.catalog import SceneSpec, write_job_catalog

pytestmark = pytest.mark.integration

GEN = (("gen-optical-sar", 21, (512, 512), "optical", "sar", {"tile_size": 256, "halo": 32}),
       ("gen-optical-thermal", 22, (512, 512), "optical", "thermal",
        {"tile_size": 256, "halo": 32}))
# classical matcher settings for the 120 px Sentinel patches (denser small windows)
S2S1 = {"tile_size": 128, "halo": 0, "min_valid": 0.1, "model": "shift",
        "matcher_options": {"window": 16, "spacing": 8}}


def _load_build() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "catalogs" / "build.py"
    spec = importlib.util.spec_from_file_location("xgeo_catalogs_build", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def build_test_catalog(dest: Path, real_root: Path) -> tuple[Path, list[str], str]:
    """Catalog with generated pairs, real pairs and one corrupt moving scene."""
    build = _load_build()
    try:
        from xgeo.synth import write_scene_pair  # noqa: F401
    except ImportError:
        pytest.skip("xgeo.synth.write_scene_pair is not available yet")
    scenes, jobs = build.generated_specs(dest / "data", GEN)
    real = [p for p in build.REAL_PAIRS if p[0] != "s2s1-36-85"]
    real = [(*p[:5], S2S1) if p[0].startswith("s2s1") else p for p in real]
    rs, rj = build.real_specs(real_root, real)
    scenes += rs
    jobs += rj
    bad = dest / "data" / "corrupt_mov.tif"
    bad.write_bytes(b"II*\x00" + os.urandom(4096))  # TIFF magic, garbage after it
    scenes.append(SceneSpec("corrupt-mov", str(bad), "sar"))
    jobs.append(("corrupt-pair", scenes[0].id, "corrupt-mov", {}))
    cat = write_job_catalog(dest / "catalog", scenes, jobs, catalog_id="xgeo-test-night")
    good = sorted(j[0] for j in jobs if j[0] != "corrupt-pair")
    return cat, good, "corrupt-pair"


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _kill_when_busy(address: str, cluster: Any, done: threading.Event, out: dict) -> None:
    """Kill (SIGKILL) a worker process as soon as it is running a matching batch."""
    from distributed import Client

    with Client(address, timeout="10s", set_as_default=False) as c:
        while not done.is_set():
            info = c.scheduler_info(n_workers=-1)["workers"]
            names = {addr: w.get("name") for addr, w in info.items()}
            for addr, keys in c.processing().items():
                if any(str(k).startswith("xgeo-match") for k in keys):
                    name = names.get(addr)
                    proc = cluster.workers.get(name)
                    if proc is not None and proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                        out.update(name=name, keys=[str(k) for k in keys],
                                   t=time.monotonic())
                        return
            time.sleep(0.05)


def test_nightly_loopback_cluster_kill_rerun_corrupt(
    tmp_path: Path, real_data: Path, loopback_cluster: Any, prefect_harness: None
) -> None:
    from distributed import Client
    from rio_cogeo.cogeo import cog_validate

    from flows.nightly import nightly
    from xgeo.catalog import validate_output_item

    catalog, good, bad = build_test_catalog(tmp_path / "in", real_data)
    assert len(good) >= 6
    out = tmp_path / "out"
    params = dict(catalog=str(catalog), out_dir=str(out), night="2024-01-02",
                  address=loopback_cluster.address, config={"matcher": "classical"},
                  batch_size=1)

    # ---- night 1, one worker killed while matching
    done, killed = threading.Event(), {}
    killer = threading.Thread(target=_kill_when_busy,
                              args=(loopback_cluster.address, loopback_cluster, done, killed))
    killer.start()
    t0 = time.perf_counter()
    try:
        s1 = nightly(**params)
    finally:
        done.set()
        killer.join(timeout=30)
    print(f"night 1: {time.perf_counter() - t0:.1f} s wall, flow {s1['seconds']} s, killed {killed}")
    assert killed, "no worker was caught matching (nothing was dispatched?)"
    with Client(loopback_cluster.address, timeout="10s", set_as_default=False) as c:
        assert len(c.scheduler_info(n_workers=-1)["workers"]) == 1
    rows = {r["job_id"]: r for r in s1["scenes"]}
    assert s1["counts"] == {"done": len(good), "skipped": 0, "failed": 1}, s1["counts"]
    assert rows[bad]["status"] == "failed" and rows[bad]["stage"] == "plan"
    assert "corrupt_mov.tif" in rows[bad]["reason"], rows[bad]["reason"]
    assert s1["batches_dispatched"] > 0 and s1["cluster"]["address"] == loopback_cluster.address
    night = out / "2024-01-02"
    for job in good:
        r = rows[job]
        assert r["status"] == "done", (job, r["stage"], r["reason"])
        valid, errors, _ = cog_validate(r["cog"], quiet=True)
        assert valid, (job, errors)
        item = validate_output_item(r["item"])
        assert item.properties["proj:code"].startswith("EPSG:")
        assert item.properties["xgeo:cache_key"] == r["cache_key"]
        assert json.loads(Path(r["report"]).read_text())["status"] == "ok"
    summary = json.loads((night / "summary.json").read_text())
    assert summary["counts"] == s1["counts"]
    assert bad in (night / "summary.txt").read_text()
    cat = json.loads((night / "catalog.json").read_text())
    assert sorted(lk["title"] for lk in cat["links"] if lk["rel"] == "item") == good

    # ---- night 1 again: nothing dispatched to the cluster, outputs byte-identical
    before = {job: _hashes(night / job) for job in good}
    with Client(loopback_cluster.address, timeout="10s", set_as_default=False) as c:
        t_before = c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    t0 = time.perf_counter()
    s2 = nightly(**params)
    print(f"night 1 again: {time.perf_counter() - t0:.1f} s wall, flow {s2['seconds']} s")
    with Client(loopback_cluster.address, timeout="10s", set_as_default=False) as c:
        t_after = c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    assert t_after == t_before, "the rerun sent work to the cluster"
    assert s2["batches_dispatched"] == 0
    assert s2["counts"] == {"done": 0, "skipped": len(good), "failed": 1}
    assert {job: _hashes(night / job) for job in good} == before


@pytest.mark.slow
def test_nightly_full_catalogs_local_cluster(tmp_path: Path, real_data: Path,
                                             prefect_harness: None) -> None:
    """Longer variant: every real pair + 1024 px generated pairs, default local cluster."""
    from flows.nightly import nightly
    from xgeo.catalog import validate_output_item

    build = _load_build()
    gen = tuple((p[0], p[1], (1024, 1024), *p[3:]) for p in build.GENERATED_PAIRS)
    scenes, jobs = build.generated_specs(tmp_path / "data", gen)
    rs, rj = build.real_specs(real_data)
    cat = write_job_catalog(tmp_path / "cat", scenes + rs, jobs + rj)
    s = nightly(catalog=str(cat), out_dir=str(tmp_path / "out"), night="full",
                config={"matcher": "classical"}, n_workers=2)
    assert s["n_scenes"] == len(jobs) + len(rj)
    for r in s["scenes"]:
        if r["status"] == "done":
            validate_output_item(r["item"])
        else:  # a scene may fail on science grounds, never without a stage and a reason
            assert r["status"] == "failed" and r["stage"] and r["reason"]
    assert s["counts"]["done"] >= len(jobs) + 2
