"""Models: evaluation, inverse, serialisation, Jacobians, linear decomposition."""

from __future__ import annotations

import json

import numpy as np
import pytest
from geometry_synth import AFFINE_TRUTH, check_grid, make_tiepoints, truth_bumps, truth_poly2

from xgeo.errors import ConfigError, RegistrationError, ShapeError
from xgeo.geometry import (
    AffineModel,
    GeoModel,
    ShiftModel,
    TPSModel,
    describe_linear,
    fit_model,
    model_from_dict,
)


@pytest.fixture(scope="module")
def models() -> dict[str, GeoModel]:
    """One fitted model of every kind, on noiseless smooth non-linear tie points."""
    tp = make_tiepoints(truth_bumps, n=3000, noise=0.0, outlier_frac=0.0, seed=3)
    out: dict[str, GeoModel] = {"shift": ShiftModel(3.4, -2.7), "affine": AffineModel(AFFINE_TRUTH)}
    tp2 = make_tiepoints(truth_poly2, n=2000, noise=0.0, outlier_frac=0.0, seed=4)
    out["poly2"] = fit_model(tp2.src, tp2.dst, "poly2")
    out["poly3"] = fit_model(tp.src, tp.dst, "poly3")
    out["tps"] = fit_model(tp.src, tp.dst, "tps")
    return out


KINDS = ["shift", "affine", "poly2", "poly3", "tps"]


@pytest.mark.parametrize("kind", KINDS)
def test_protocol_and_kind(models: dict[str, GeoModel], kind: str) -> None:
    m = models[kind]
    assert isinstance(m, GeoModel)
    assert m.kind == kind
    out = m(check_grid())
    assert out.shape == (625, 2) and out.dtype == np.float64
    assert m.n_params >= 2


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_roundtrip(models: dict[str, GeoModel], kind: str) -> None:
    m = models[kind]
    g = check_grid(margin=50.0, n=40)
    err = np.abs(m.inverse(m(g)) - g).max()
    assert err < 0.01, f"{kind}: inverse round trip {err:.2e} px"
    err2 = np.abs(m(m.inverse(g)) - g).max()
    assert err2 < 0.01


def test_tps_lattice_paths_large_batches(models: dict[str, GeoModel]) -> None:
    """Batches over 20k points use an interpolated lattice; it must match the exact spline."""
    m = models["tps"]
    assert isinstance(m, TPSModel)
    rng = np.random.default_rng(0)
    q = rng.uniform(0, 4000, (30000, 2))
    fast = m(q)
    exact = m.evaluate_exact(q[:3000])
    assert np.abs(fast[:3000] - exact).max() < 1e-3
    back = m.inverse(fast)
    assert np.abs(back - q).max() < 0.01


@pytest.mark.parametrize("kind", ["poly3", "tps"])
def test_analytic_jacobian_matches_finite_differences(models: dict[str, GeoModel], kind: str) -> None:
    m = models[kind]
    x = check_grid(n=5)
    _, jac = m._eval(x, True)  # type: ignore[attr-defined]
    h = 1e-3
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        fd = (m(x + e) - m(x - e)) / (2 * h)
        np.testing.assert_allclose(jac[:, :, a], fd, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_to_dict_roundtrip(models: dict[str, GeoModel], kind: str) -> None:
    m = models[kind]
    d = json.loads(json.dumps(m.to_dict()))
    m2 = model_from_dict(d)
    assert m2 == m and m2.kind == m.kind
    g = check_grid()
    np.testing.assert_array_equal(m2(g), m(g))


def test_to_matrix() -> None:
    np.testing.assert_allclose(ShiftModel(1.5, -2).to_matrix(), [[1, 0, 1.5], [0, 1, -2], [0, 0, 1]])
    a = AffineModel(AFFINE_TRUTH)
    mat = a.to_matrix()
    assert mat.shape == (3, 3)
    p = np.array([[10.0, 20.0]])
    np.testing.assert_allclose((mat @ [10, 20, 1])[:2], a(p)[0])


@pytest.mark.parametrize("kind", ["poly2", "poly3", "tps"])
def test_nonlinear_to_matrix_is_none(models: dict[str, GeoModel], kind: str) -> None:
    assert models[kind].to_matrix() is None


def test_describe_linear__synthetic() -> None:
    d = describe_linear(AffineModel(AFFINE_TRUTH))
    assert d["rotation_deg"] == pytest.approx(0.5, abs=1e-9)
    assert d["scale_x"] == pytest.approx(1.003, abs=1e-9)
    assert d["scale_y"] == pytest.approx(1.003, abs=1e-9)
    assert d["shear"] == pytest.approx(0.0, abs=1e-9)
    s = describe_linear(ShiftModel(3.4, -2.7))
    assert (s["shift_x"], s["shift_y"], s["rotation_deg"]) == (3.4, -2.7, 0.0)
    sh = describe_linear(np.array([[2.0, 0.6, 0], [0, 3.0, 0]]))
    assert (sh["scale_x"], sh["scale_y"], sh["shear"]) == pytest.approx((2.0, 3.0, 0.2))


def test_errors(models: dict[str, GeoModel]) -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        model_from_dict({"kind": "homography"})
    with pytest.raises(ConfigError, match="lacks key"):
        model_from_dict({"kind": "shift", "dx": 1})
    with pytest.raises(ShapeError):
        models["affine"](np.zeros((4, 3)))
    with pytest.raises(RegistrationError, match="singular"):
        AffineModel(np.zeros((2, 3)))
    with pytest.raises(ConfigError):
        describe_linear(models["tps"])
