"""``--coarse``: a moving scene far off its reference (rotated, scaled, shifted by hundreds of
pixels) is first aligned by matching overviews with the universal matcher's orientation/scale
search; the tile stage then registers it as usual."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from xgeo.cli import app
from xgeo.errors import RegistrationError, XgeoError
from xgeo.matcher.weights import shipped_weights_path
from xgeo.pipeline import RegisterConfig, register
from xgeo.synth import write_scene_pair
from xgeo.tiling import TilePlan, load_plan

needs_weights = pytest.mark.skipif(not shipped_weights_path("tiny").is_file(),
                                   reason="no shipped universal weights")
SIZE = 768


@pytest.fixture(scope="module")
def far_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    d = tmp_path_factory.mktemp("far")
    # seed 12: a world the matcher finds at this rotation (the synthetic suite's SR@10 at up to
    # 180 deg is about 40 %; seed 11's overviews give too few consistent matches and are refused)
    truth = write_scene_pair(d, 12, shape=(SIZE, SIZE), ref_modality="optical", mov_modality="sar",
                             shift_px=(60.0, -45.0), rotation_deg=30.0, scale=1.08, local_px=1.0)
    return d / truth.files["ref"], d / truth.files["mov"], truth


@needs_weights
def test_far_off_demo_registers_with_coarse_and_not_without(tmp_path: Path) -> None:
    """``xgeo demo --rotation 30 --scale 1.08 --shift 60,-45 --coarse``: the demo's own
    check-point RMSE must stay under its 1.5 px bar (else it exits 1); without the coarse stage
    no tie points agree and the error points to ``--coarse``."""
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--size", str(SIZE), "--seed", "12", "--rotation", "30",
                                   "--scale", "1.08", "--shift", "60,-45", "--coarse",
                                   "--out-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "check-point error" in res.output
    c = json.loads((out / "report.json").read_text())["coarse"]
    # the overview match finds the moving scene's rotation and scale (its correction maps
    # moving-file pixels where the truth does, here onto the shared grid)
    assert abs(c["rotation_deg"] - 30.0) < 1.0 and abs(c["scale"] - 1.08) < 0.02, c
    assert c["inliers"] >= 12 and c["transform_before"] != c["transform_after"]
    # the plan in the Zarr store carries the correction
    plan = load_plan(out / "work" / "tiles.zarr")
    assert json.loads(plan.coarse)["inliers"] == c["inliers"]
    assert TilePlan.from_json(plan.to_json()).to_json() == plan.to_json()
    with pytest.raises(RegistrationError, match="--coarse"):
        register(out / "ref.tif", out / "mov.tif", None, RegisterConfig(tile_size=384, halo=64))
    bad = CliRunner().invoke(app, ["demo", "--size", "256", "--shift", "3", "--out-dir",
                                   str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--shift" in bad.output


@needs_weights
def test_coarse_refuses_scenes_that_do_not_match(far_pair, tmp_path: Path) -> None:
    """Noise against a scene: too few consistent overview matches -> RegistrationError naming
    the file, nothing guessed."""

    ref, _, _ = far_pair
    with rasterio.open(ref) as ds:
        prof = ds.profile | {"count": 1, "dtype": "float32", "nodata": None}
    noise = tmp_path / "noise.tif"
    with rasterio.open(noise, "w", **prof) as d:
        d.write(np.full((1, SIZE, SIZE), 0.5, np.float32)
                + np.random.default_rng(0).normal(0, 0.01, (1, SIZE, SIZE)).astype(np.float32))
    # through the CLI: a typed error naming the file, exit code 3, no output left behind
    out = tmp_path / "out.tif"
    res = CliRunner().invoke(app, ["register", str(ref), str(noise), "-o", str(out),
                                   "--mov-modality", "sar", "--coarse"])
    assert res.exit_code == 3 and "coarse alignment" in res.output and "noise.tif" in res.output
    assert not out.exists()


def test_plans_without_a_coarse_stage_keep_their_json() -> None:
    from xgeo.modalities import NormStats
    from xgeo.scenes import Scene

    sc = Scene(path="a.tif", modality="optical", crs="EPSG:32633", transform=(10, 0, 0, 0, -10, 0),
               width=8, height=8, count=1, dtype="float32", nodata=None, bands=(1,),
               band_names=("b1",))
    st = NormStats(modality="optical", lo=0.0, hi=1.0, bands=(1,), db=False, weights=(1.0,), log=False)
    plan = TilePlan(ref=sc, mov=sc, shape=(8, 8), tile_size=8, halo=0, tiles=(), skipped=(),
                    store="s", ref_stats=st, mov_stats=st)
    assert "coarse" not in plan.to_dict()
    with_c = TilePlan.from_json({**plan.to_dict(), "coarse": {"inliers": 40}})
    assert json.loads(with_c.coarse) == {"inliers": 40} and with_c.sha256 != plan.sha256


@needs_weights
@pytest.mark.parametrize("name,rot,scale,shift", [
    ("optical-sar", -35.0, 0.9, 80.0),  # CFOG optical vs SAR, 3.5 m
    ("visible-infrared", 20.0, 1.1, 120.0),  # CFOG visible vs infrared, 30 m
])
def test_real_pair_with_a_wrong_geotransform_is_recovered(real_data: Path, tmp_path: Path, name: str,
                                                          rot: float, scale: float, shift: float) -> None:
    """The moving file's pixels stay, its geotransform is rotated, scaled and shifted about the
    centre: with ``coarse`` the recovered moving-file -> reference mapping is the untouched
    pair's (within 0.5 px on a check grid); without, classical tiles cannot bridge the error.
    (The default cascade escalates those tiles to the learned matcher, which bridged both cases
    here: 0.91 and 0.07 px; README, "Far-off georeferencing".)"""
    from xgeo.testing import check_grid, rmse, similarity_matrix

    files = {"optical-sar": ("optical-sar_utm33/visible2_ref.tif", "optical-sar_utm33/SAR2_sen.tif"),
             "visible-infrared": ("visible-infrared_utm49/test6_ref.tif",
                                  "visible-infrared_utm49/test6_sen.tif")}[name]
    ref, mov = (real_data / "cfog_geotiff" / f for f in files)
    with rasterio.open(mov) as ds:
        prof, data, t, w, h = ds.profile, ds.read(), ds.transform, ds.width, ds.height
    half = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    wc = half @ similarity_matrix(rot, scale, (shift, -0.6 * shift), ((w - 1) / 2, (h - 1) / 2)) \
        @ np.linalg.inv(half)
    tm = np.array([[t.a, t.b, t.c], [t.d, t.e, t.f], [0, 0, 1.0]]) @ wc
    bad = tmp_path / f"wrong_georef_{mov.name}"
    with rasterio.open(bad, "w", **(prof | {"transform": rasterio.Affine(*tm[:2].ravel())})) as d:
        d.write(data)
    cfg = RegisterConfig(tile_size=512, halo=64)
    g = check_grid(w, h)
    untouched = register(ref, mov, None, cfg).mov_file_to_ref(g)
    try:
        classical = RegisterConfig(tile_size=512, halo=64, matcher="classical")
        plain = register(ref, bad, None, classical).mov_file_to_ref(g)
        assert rmse(plain, untouched) > 20.0
    except XgeoError:
        pass
    fixed = register(ref, bad, None, RegisterConfig(tile_size=512, halo=64, coarse=True))
    assert rmse(fixed.mov_file_to_ref(g), untouched) < 0.5


@needs_weights
def test_small_scene_inside_a_large_one_is_found_and_refined(real_data: Path, tmp_path: Path) -> None:
    """A third of the CFOG infrared scene, its geotransform rotated by 20 degrees and shifted:
    the first pass reads the reference around the crop's footprint, the second pass (windows
    around the corrected footprint) refines it; the tiles finish the job."""
    from rasterio.windows import Window

    from xgeo.testing import check_grid, rmse, similarity_matrix

    d = real_data / "cfog_geotiff" / "visible-infrared_utm49"
    with rasterio.open(d / "test6_sen.tif") as ds:
        win = Window(int(ds.width * 0.35), int(ds.height * 0.3), int(ds.width * 0.35),
                     int(ds.height * 0.35))
        prof = ds.profile | {"width": int(win.width), "height": int(win.height)}
        data, t = ds.read(window=win), ds.window_transform(win)
    w, h = prof["width"], prof["height"]
    half = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    wc = half @ similarity_matrix(20.0, 1.0, (40.0, -25.0), ((w - 1) / 2, (h - 1) / 2)) \
        @ np.linalg.inv(half)
    tm = np.array([[t.a, t.b, t.c], [t.d, t.e, t.f], [0, 0, 1.0]]) @ wc
    crop = tmp_path / "crop.tif"
    with rasterio.open(crop, "w", **(prof | {"transform": rasterio.Affine(*tm[:2].ravel())})) as dst:
        dst.write(data)
    res = register(d / "test6_ref.tif", crop, None,
                   RegisterConfig(tile_size=256, halo=64, coarse=True))
    passes = res.plan.coarse and json.loads(res.plan.coarse)["passes"]
    assert len(passes) == 2 and all("inliers" in p for p in passes), passes
    ref_win = passes[0]["ref_window"]  # around the crop, not the whole 1074 x 1080 reference
    assert ref_win[2] < 1074 or ref_win[3] < 1080
    assert passes[1]["ref_window"][2] < ref_win[2]
    g = check_grid(w, h)
    truth = g + np.array([win.col_off, win.row_off])  # the pair shares one grid
    assert rmse(res.mov_file_to_ref(g), truth) < 1.0
