"""flows/: cache keys, skip logic, runners, deployment, and one pair through the real flow."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from flows import tasks
from flows._prefect import is_io_error
from flows.runners import make_task_runner, match_batch_on_worker, open_cluster, submit_batches
from xgeo.errors import MissingFileError, NotARasterError, RegistrationError
from xgeo.pipeline import RegisterConfig

S2 = "bigearthnet_s1_s2/S2A_MSIL2A_20170613T101031_87_48"
SMALL = {"matcher": "classical", "tile_size": 128, "halo": 0, "min_valid": 0.1, "model": "shift",
         "matcher_options": {"window": 16, "spacing": 8}}


@pytest.fixture
def pair(real_data: Path) -> tuple[Path, Path]:
    d = real_data / S2
    return (d / "S2A_MSIL2A_20170613T101031_87_48_B08.tif",
            d / "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VV.tif")


def test_scene_cache_key_tracks_inputs_and_config(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    cfg = RegisterConfig(matcher="classical")
    k = tasks.scene_cache_key(a, b, cfg)
    assert k == tasks.scene_cache_key(a, b, cfg)
    assert k != tasks.scene_cache_key(b, a, cfg)
    assert k != tasks.scene_cache_key(a, b, RegisterConfig(matcher="classical", tile_size=512))
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert k != tasks.scene_cache_key(a, b, cfg)
    with pytest.raises(MissingFileError):
        tasks.scene_cache_key(tmp_path / "nope.tif", b, cfg)
    k1 = tasks.batch_cache_key(k, "plan", ["r0_c0", "r0_c1"])
    assert k1 != tasks.batch_cache_key(k, "plan", ["r0_c0"])
    assert k1 != tasks.batch_cache_key(k, "plan2", ["r0_c0", "r0_c1"])


def test_split_batches_and_paths(tmp_path: Path) -> None:
    assert tasks.split_batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert tasks.split_batches([], 3) == []
    p = tasks.OutputPaths.in_dir(tmp_path, "j")
    assert (p.cog.name, p.report.name, p.item.name) == ("j.tif", "j_report.json", "j.stac.json")
    q = tasks.OutputPaths.for_cog(tmp_path / "x.tif")
    assert q.report.name == "x_report.json"
    assert not tasks.outputs_done(p, "k")


def test_io_errors_retry_but_bad_inputs_do_not() -> None:
    assert is_io_error(OSError("disk hiccup"))
    assert is_io_error(TimeoutError())
    assert not is_io_error(NotARasterError("corrupt", "x.tif"))
    assert not is_io_error(MissingFileError("gone", "x.tif"))  # a FileNotFoundError, but ours
    assert not is_io_error(RegistrationError("no tie points"))
    assert not is_io_error(ValueError("bug"))


def test_tasks_fn_plan_and_worker_batch(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = RegisterConfig.from_dict(SMALL).to_dict()
    plan = tasks.plan_scene.fn(str(pair[0]), str(pair[1]), str(tmp_path / "w"), cfg)
    assert len(plan.tiles) == 1 and Path(plan.store).exists()
    res = match_batch_on_worker(plan.to_json(), [t.to_json() for t in plan.tiles], cfg)
    assert len(res) == 1 and res[0]["status"] == "ok" and len(res[0]["points_ref"]) >= 6
    fit = tasks.fuse_scene.fn(plan, res, cfg)
    assert fit.model.kind == "shift"
    with pytest.raises(NotARasterError):
        bad = tmp_path / "bad.tif"
        bad.write_bytes(b"II*\x00garbage")
        tasks.plan_scene.fn(str(pair[0]), str(bad), str(tmp_path / "w2"), cfg)


def test_open_cluster_gpu_fallback_and_submit(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = RegisterConfig.from_dict(SMALL).to_dict()
    plan = tasks.plan_scene.fn(str(pair[0]), str(pair[1]), str(tmp_path / "w"), cfg)
    # no GPU here: asking for dask-cuda falls back to a LocalCluster (NVML error caught)
    with open_cluster(use_gpu=True, processes=False, n_workers=1,
                      dashboard_address=None) as h:
        assert h.kind in ("local", "cuda")
        if h.kind == "local":
            assert not h.gpu
        (out,) = submit_batches(h, [("xgeo-match-test", plan.to_json(),
                                     [t.to_json() for t in plan.tiles], cfg)])
    assert out[0]["status"] == "ok"
    # workers advertising GPU=1 (as dask-cuda workers do): batches carry the GPU annotation
    with open_cluster(use_gpu=False, processes=False, n_workers=1, dashboard_address=None,
                      cluster_kwargs={"resources": {"GPU": 1}}) as h:
        assert h.gpu
        (out,) = submit_batches(h, [("xgeo-match-gpu", plan.to_json(),
                                     [t.to_json() for t in plan.tiles], cfg)])
        assert out[0]["status"] == "ok"


def test_make_task_runner_choices() -> None:
    r = make_task_runner("tcp://127.0.0.1:8786")
    assert r.address == "tcp://127.0.0.1:8786"
    r = make_task_runner(use_gpu=True)
    assert "LocalCUDACluster" in str(r.cluster_class)
    assert r.cluster_kwargs["resources"] == {"GPU": 1}
    r = make_task_runner(use_gpu=False, n_workers=3)
    assert r.cluster_kwargs["n_workers"] == 3


def test_deployment_builds_with_cron(tmp_path: Path) -> None:
    from flows.serve import build_deployment

    dep = build_deployment(tmp_path / "cat" / "catalog.json", tmp_path / "out", "30 3 * * *",
                           batch_size=2)
    assert dep.name == "xgeo-nightly"
    (sched,) = dep.schedules
    assert sched.schedule.cron == "30 3 * * *"
    assert dep.parameters["batch_size"] == 2
    assert dep.parameters["out_dir"] == str((tmp_path / "out").resolve())


def test_summary_table_lists_failures() -> None:
    from flows.nightly import summary_table
    from flows.register import SceneOutcome

    ok = SceneOutcome("a", status="done", n_tiles=4, model="affine", n_inliers=40, rmse_px=0.5)
    bad = SceneOutcome("b")
    bad.fail("plan", NotARasterError("cannot open", "b.tif"))
    text = summary_table([ok, bad])
    assert "affine" in text and "failed (plan)" in text and "NotARasterError" in text


def test_coregister_pair_flow(pair: tuple[Path, Path], tmp_path: Path,
                              prefect_harness: None) -> None:
    from rio_cogeo.cogeo import cog_validate

    from flows.register import coregister_pair
    from xgeo.catalog import validate_output_item

    out = tmp_path / "o" / "pair.tif"
    t0 = time.perf_counter()
    r = coregister_pair(str(pair[0]), str(pair[1]), str(out), config=SMALL, n_workers=1,
                        processes=False)
    assert r["status"] == "done", (r["stage"], r["reason"])
    assert cog_validate(out, quiet=True)[0]
    item = validate_output_item(r["item"])
    assert item.properties["xgeo:model"] == "shift"
    report = json.loads(Path(r["report"]).read_text())
    assert report["config_sha256"] == RegisterConfig.from_dict(SMALL).sha256
    # same call again: skipped from the output cache, nothing rewritten
    mtime = out.stat().st_mtime_ns
    r2 = coregister_pair(str(pair[0]), str(pair[1]), str(out), config=SMALL, n_workers=1,
                         processes=False)
    assert r2["status"] == "skipped" and r2["batches_dispatched"] == 0
    assert out.stat().st_mtime_ns == mtime
    assert time.perf_counter() - t0 < 120


def test_plan_task_runs_the_coarse_stage_and_workers_see_it(tmp_path: Path) -> None:
    """``{"coarse": true}`` in a job's settings: the plan task folds the overview match into the
    moving geotransform, and the plan JSON the workers get carries it (their tiles were written
    through it)."""
    from xgeo.cli import demo_errors
    from xgeo.matcher.weights import shipped_weights_path
    from xgeo.pipeline import RegistrationResult
    from xgeo.synth import write_scene_pair
    from xgeo.tiling import TilePlan

    if not shipped_weights_path("tiny").is_file():
        pytest.skip("no shipped universal weights")
    truth = write_scene_pair(tmp_path, 12, shape=(768, 768), ref_modality="optical",
                             mov_modality="sar", shift_px=(60.0, -45.0), rotation_deg=30.0,
                             scale=1.08, local_px=1.0)
    cfg = RegisterConfig.from_dict({"tile_size": 384, "halo": 64, "coarse": True}).to_dict()
    plan = tasks.plan_scene.fn(str(tmp_path / truth.files["ref"]), str(tmp_path / truth.files["mov"]),
                               str(tmp_path / "w"), cfg)
    assert json.loads(plan.coarse)["inliers"] >= 12
    wire = TilePlan.from_json(plan.to_json())
    from xgeo.scenes import open_scene

    on_file = open_scene(tmp_path / truth.files["mov"]).transform
    # (to_json: the SAR file's nodata is NaN, and NaN != NaN in the dataclass comparison)
    assert wire.to_json() == plan.to_json() and wire.mov.transform != on_file
    res = match_batch_on_worker(plan.to_json(), [t.to_json() for t in plan.tiles], cfg)
    fit = tasks.fuse_scene.fn(plan, res, cfg)
    out = RegistrationResult(plan, fit, [], None, {}, RegisterConfig.from_dict(cfg), 0.0, None)
    assert demo_errors(truth, out, (768, 768))["rmse_px"] < 1.5
