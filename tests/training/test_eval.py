"""The MatchAnything-protocol metrics of training.eval behave on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from training.eval import auc, corner_error, evaluate, fit_affine, markdown_table, synthetic_suite
from xgeo.errors import ConfigError, MissingFileError


def test_corner_error_fit_and_auc() -> None:
    h = np.array([[0.98, -0.17, 12.0], [0.17, 0.98, -5.0], [0.0, 0.0, 1.0]])
    p0 = np.random.default_rng(0).uniform(0, 300, (40, 2))
    p1 = p0 @ h[:2, :2].T + h[:2, 2]
    assert corner_error(fit_affine(p0, p1), h, (320, 320)) < 1e-4
    shifted = fit_affine(p0, p1 + [3.0, 4.0])
    assert corner_error(shifted, h, (320, 320)) == pytest.approx(5.0, abs=1e-4)
    assert corner_error(None, h, (320, 320)) == float("inf")
    assert fit_affine(p0[:2], p1[:2]) is None
    assert auc([0.0, 0.0], 5) == pytest.approx(1.0) and auc([np.inf], 5) == 0.0
    assert auc([1.0, 4.0], 5) > auc([2.0, 4.5], 5) > 0.0


def test_evaluate_scores_a_perfect_and_a_blind_method() -> None:
    pairs = synthetic_suite(1, size=96, modalities=["optical", "sar"])
    assert len(pairs) == 4

    def perfect(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pr = next(p for p in pairs if p.img0 is a or np.array_equal(p.img0, a))
        p0 = np.random.default_rng(1).uniform(0, 95, (30, 2))
        q = np.c_[p0, np.ones(30)] @ pr.H_0to1.T
        return p0, q[:, :2] / q[:, 2:]

    def blind(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        g = np.random.default_rng(2)  # a method may also report diagnostics of its own search
        return g.uniform(0, 95, (30, 2)), g.uniform(0, 95, (30, 2)), {
            "support": [12.0, 11.0], "verify": {"0@1.00": 7.5, "90@0.71": 9.0, "45@1.00": 3.0},
            "contrast": {"kept": "clahe", "none": 3.1, "clahe": 178.0}}

    res = evaluate({"perfect": perfect, "blind": blind}, pairs, progress=False)
    assert res["overall"]["perfect"]["sr5"] == 1.0
    assert res["overall"]["blind"]["sr10"] < 0.5
    assert set(res["per_type"]) == {"optical-optical", "optical-sar", "sar-optical", "sar-sar"}
    assert "| ALL | perfect | 4 |" in markdown_table(res)
    assert len(res["pairs"]) == 4 and res["pairs"][0]["errors"]["perfect"] < 1e-6
    q, h = res["pairs"][0], pairs[0].H_0to1
    assert q["matches"] == {"perfect": 30, "blind": 30}
    assert q["diagnostics"]["blind"]["support"] == [12.0, 11.0]
    assert abs(q["truth"]["rotation_deg"] - np.degrees(np.arctan2(h[1, 0], h[0, 0]))) < 0.1
    from training.eval import pair_table

    assert pair_table(res, "perfect").count("\n") == 1  # header only: no failure
    rows = pair_table(res, "blind").splitlines()[2:]
    assert len(rows) == sum(p["errors"]["blind"] is None or p["errors"]["blind"] >= 10
                            for p in res["pairs"]) and all("12.0 / 11.0" in r for r in rows)
    # the two best verification scores, then the contrast kept and both results' scores
    assert all(r.endswith("| 9.0 / 7.5 | clahe (3.1 / 178) |") for r in rows)
    from training.eval import _diagnostics

    d = _diagnostics({"rotation_deg": 90, "scale_view": 2**-0.5,
                      "orientation_scores": {0: 20.0, 90: 24.5, "90@0.71": 26.0},
                      "verify_scores": {"90@0.71": 131.04, "90@1.00": 8.0},
                      "equalized": "clahe", "equalize_scores": {"none": 3.07, "clahe": 177.9}})
    assert d == {"picked_deg": 90, "picked_scale": 0.707, "support": [26.0, 24.5],
                 "verify": {"90@0.71": 131.0, "90@1.00": 8.0},
                 "contrast": {"kept": "clahe", "none": 3.1, "clahe": 177.9}}


def test_saved_result_reprints_and_plots_success_curves(tmp_path, capsys) -> None:
    """``--load`` prints an earlier run's tables without running, ``--plot`` draws one panel per
    pair type; a missing file or a result without per-pair errors is a clear error."""
    import json

    from training.eval import main, plot_curves

    pairs = synthetic_suite(1, size=96, modalities=["optical", "sar"])

    def shifted(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pr = next(p for p in pairs if np.array_equal(p.img0, a))
        p0 = np.random.default_rng(1).uniform(0, 95, (30, 2))
        q = np.c_[p0, np.ones(30)] @ pr.H_0to1.T
        return p0, q[:, :2] / q[:, 2:] + 6.0  # every corner 8.5 px off: within 10, not within 5

    res = {"methods": ["shifted"], "synthetic": evaluate({"shifted": shifted}, pairs, progress=False),
           "seconds": 1.0}
    assert res["synthetic"]["overall"]["shifted"]["sr10"] == 1.0
    assert res["synthetic"]["overall"]["shifted"]["sr5"] == 0.0
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(res))
    png = tmp_path / "fig" / "curves.png"
    main(["--load", str(saved), "--plot", str(png)])
    out = capsys.readouterr().out
    assert "| ALL | shifted | 4 | 0% | 100% | 100% |" in out and str(png) in out
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 300
    with pytest.raises(ConfigError, match="nothing to plot"):
        plot_curves({"methods": []}, tmp_path / "x.png")
    with pytest.raises(MissingFileError, match="evaluation result not found"):
        main(["--load", str(tmp_path / "absent.json")])


def test_common_valid_share_and_sr_by_overlap(tmp_path, capsys) -> None:
    """The shared ground counts pixels valid in image 0 whose true place in image 1 is inside
    it and valid; the by-overlap table pools runs and bins each pair by it."""
    import json

    from training.eval import common_valid_share, main, overlap_table

    a = np.ones((40, 40), np.float32)
    b = a.copy()
    b[:, :10] = np.nan  # image 1's left quarter invalid
    assert common_valid_share(a, b, np.eye(3)) == pytest.approx(0.75)
    a2 = a.copy()
    a2[:20] = np.nan  # and image 0's top half
    assert common_valid_share(a2, b, np.eye(3)) == pytest.approx(0.375)
    shift = np.array([[1.0, 0, 20], [0, 1, 0], [0, 0, 1]])  # image 0's right half leaves image 1
    assert common_valid_share(a, a, shift) == pytest.approx(0.5)
    assert common_valid_share(a, b, shift) == pytest.approx(0.5)  # x+20 never lands left of 10
    half = np.array([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]])  # image 1 shrunk: all inside
    assert common_valid_share(a, a, half) == pytest.approx(1.0)

    def run(errs: list[float | None], overlaps: list[float]) -> dict:
        return {"pairs": [{"type": "t", "truth": {"overlap": o}, "errors": {"m": e}}
                          for e, o in zip(errs, overlaps, strict=True)]}

    r1 = run([2.0, None, 30.0], [0.05, 0.07, 0.5])
    r2 = run([1.0, 3.0], [0.05, 0.9])
    tab = overlap_table([r1, r2]).splitlines()
    assert tab[0].startswith("| pair type | method | 0-6 % | 6-8 % |")
    assert tab[2] == "| t | m | 100% (2) | 0% (1) | - | - | - | 50% (2) |"
    with pytest.raises(ConfigError, match="rerun the evaluation"):
        overlap_table([{"pairs": [{"type": "t", "truth": {}, "errors": {"m": 1.0}}]}])
    # the CLI pools every --load for the by-overlap table
    pairs = synthetic_suite(1, size=96, modalities=["optical"])

    def exact(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pr = next(p for p in pairs if np.array_equal(p.img0, a))
        p0 = np.random.default_rng(1).uniform(0, 95, (30, 2))
        q = np.c_[p0, np.ones(30)] @ pr.H_0to1.T
        return p0, q[:, :2] / q[:, 2:]

    res = evaluate({"exact": exact}, pairs, progress=False)
    ov = res["pairs"][0]["truth"]["overlap"]
    assert 0.0 < ov <= 1.0 and ov == pytest.approx(
        common_valid_share(pairs[0].img0, pairs[0].img1, pairs[0].H_0to1), abs=1e-3)
    for k in (1, 2):
        (tmp_path / f"r{k}.json").write_text(json.dumps({"methods": ["exact"], "synthetic": res}))
    main(["--load", str(tmp_path / "r1.json"), "--load", str(tmp_path / "r2.json"), "--by-overlap"])
    out = capsys.readouterr().out
    assert "SR@10 by the share of image 0 valid in both images (2 runs)" in out
    tail = out.split("valid in both images")[1].splitlines()
    row = next(r for r in tail if r.startswith("| optical-optical | exact |"))
    assert "100% (2)" in row  # one pair per run, pooled


def _mtl(path) -> None:
    path.write_text("""GROUP = L1_METADATA_FILE
    SUN_ELEVATION = 64.74360932
    RADIANCE_MULT_BAND_10 = 3.3420E-04
    RADIANCE_ADD_BAND_10 = 0.10000
    REFLECTANCE_MULT_BAND_4 = 2.0000E-05
    REFLECTANCE_ADD_BAND_4 = -0.100000
    K1_CONSTANT_BAND_10 = 774.8853
    K2_CONSTANT_BAND_10 = 1321.0789
    SPACECRAFT_ID = "LANDSAT_8"
END
""")


def test_landsat_cloud_mask_takes_thin_cloud_and_keeps_warm_ground(tmp_path) -> None:
    from training.eval import landsat_cloud_mask

    _mtl(tmp_path / "MTL.txt")
    red = np.full((200, 200), 8000.0)  # ground: TOA reflectance (0.16 - 0.1) / 0.904 = 0.066
    tir = np.full((200, 200), 30000.0)  # ~ 297 K: warm ground
    red[40:60, 40:60], tir[40:60, 40:60] = 20000.0, 22000.0  # thick cloud: bright and cold
    tir[40:60, 140:160] = 22000.0  # thin cloud (cirrus): the ground's red, but cold
    red[140:160, 40:60] = 20000.0  # town or sand: bright but warm
    m = landsat_cloud_mask(red, tir, tmp_path / "MTL.txt", parallax_px=10)
    assert m[50, 50] and m[50, 35] and not m[50, 25]  # cloud, widened by the parallax margin
    assert m[50, 150] and m[50, 165] and not m[50, 175]
    assert not m[150, 50] and not m[150, 150]


def test_real_thermal_ground_registers_at_the_identity(real_data) -> None:
    # the suite's truth for OLI/TIRS is the identity; it must hold on every part of the ground the
    # mask keeps. A mask that kept thin cloud (as the first one did: the top strip) fails here,
    # because that strip registers at the cloud parallax, about (+5, -11) px.
    from training.eval import _read, landsat_cloud_mask
    from xgeo.vectors._estimate import _quantise, mutual_information

    l8 = real_data / "landsat8_oli_tirs"
    red, tir = _read(l8 / "l8_B4.tif")[0], _read(l8 / "l8_B10.tif")[0]
    kept = ~landsat_cloud_mask(red, tir, l8 / "l8_MTL.txt")
    assert 0.08 < kept.mean() < 0.5

    def labels(a: np.ndarray) -> np.ndarray:
        return _quantise(a, np.ones(a.shape, bool), 32)

    r = 14
    h, w = red.shape
    bands = 0
    for y0 in range(r, h - r - 40, 40):  # 40-row bands with enough kept ground
        ys, xs = np.nonzero(kept[y0 : y0 + 40, r : w - r])
        if len(ys) < 4000:
            continue
        ys, xs = ys + y0, xs + r
        qa = labels(red[ys, xs])
        scores = {(dx, dy): mutual_information(qa, labels(tir[ys + dy, xs + dx]), 32, 32)
                  for dy in range(-r, r + 1, 2) for dx in range(-r, r + 1, 2)}
        best = max(scores, key=scores.get)
        assert best == (0, 0), (y0, best, scores[best], scores[(0, 0)])
        bands += 1
    assert bands >= 2


def test_real_suite_thermal_pairs_are_ground_only(real_data) -> None:
    # the OLI/TIRS identity holds on the ground: image 0 has no cloud, image 1 keeps its own
    from training.eval import real_suite

    pairs = [p for p in real_suite(real_data, 3) if "thermal" in p.pair_type]
    assert len(pairs) == 3
    for p in pairs:
        v0, v1 = np.isfinite(p.img0).mean(), np.isfinite(p.img1).mean()
        assert 0.15 < v0 < 0.95 and v1 > v0, (v0, v1)


def test_synthetic_suite_truth_is_affine() -> None:
    # the protocol fits an affine: a perspective truth would cap every method's corner error
    pairs = synthetic_suite(1, size=96, modalities=["optical"])
    h = pairs[0].H_0to1 / pairs[0].H_0to1[2, 2]
    assert np.allclose(h[2, :2], 0.0)
    p0 = np.random.default_rng(0).uniform(0, 95, (50, 2))
    p1 = p0 @ h[:2, :2].T + h[:2, 2]
    assert corner_error(fit_affine(p0, p1), pairs[0].H_0to1, (96, 96)) < 1e-3


def test_real_suite_geometry_options(real_data) -> None:
    # --max-rotation / --scale-range / --crop: an upright suite draws translations only, and a
    # larger crop keeps each image's own size where it is smaller
    from training.eval import real_suite

    pairs = real_suite(real_data, 1, max_rotation_deg=0.0, scale_range=(1.0, 1.0), crop=700)
    for p in pairs:
        h = p.H_0to1 / p.H_0to1[2, 2]
        assert np.allclose(h[:2, :2], np.eye(2)), (p.pair_type, h)
        assert p.img0.shape[0] == p.img0.shape[1] <= 700
    sides = {p.pair_type: p.img0.shape[0] for p in pairs}
    # the 120 px Sentinel patches enter the suite upsampled 3x (real_sources)
    assert sides["optical-infrared (CFOG)"] == 700 and sides["optical-SAR (S2 B08 / S1 VV)"] == 360


@pytest.mark.parametrize("args", [["--scale-range", "2"], ["--scale-range", "1.2,0.8"],
                                  ["--max-rotation", "200"], ["--crop", "10"]])
def test_cli_rejects_bad_suite_geometry(args, capsys) -> None:
    from training.eval import main

    with pytest.raises(SystemExit) as e:
        main(["--suite", "real", *args])
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err
