"""Tiling: common grid across CRSs, Zarr round trips, skipped tiles, typed errors, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer

from xgeo.errors import AllNodataError, ConfigError, NoOverlapError
from xgeo.modalities import normalise
from xgeo.scenes import read_window
from xgeo.scenes._testing import write_raster
from xgeo.tiling import Tile, TilePlan, load_plan, prepare_pair, read_tile

T = Affine(10, 0, 500000, 0, -10, 5000000)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = 1000 + 300 * np.sin(x / 7.0) * np.cos(y / 5.0) + rng.normal(0, 20, (h, w))
    return a.astype(np.float32)


def test_tile_json_and_halo_window() -> None:
    t = Tile(row=1, col=2, y0=32, y1=64, x0=64, x1=80, halo=8)
    assert t.key == "r1_c2" and Tile.from_json(t.to_json()) == t and hash(t) == hash(Tile.from_json(t.to_json()))
    assert t.halo_window((70, 80)) == (24, 70, 56, 80)
    assert Tile(0, 0, 0, 32, 0, 32, 8).halo_window((100, 100)) == (0, 40, 0, 40)


def test_same_crs_shift_round_trip(tmp_path: Path) -> None:
    big = _texture(120, 120)
    ref = write_raster(tmp_path / "ref.tif", big[10:106, 10:90], transform=T)  # 96 x 80
    # moving file: shifted by (+5 px, -3 px) on the ground, same content -> integer resampling
    mov_t = T @ Affine.translation(5, -3)
    mov = write_raster(tmp_path / "mov.tif", big[7:103, 15:95], transform=mov_t)
    calls: list[tuple[int, int]] = []
    plan = prepare_pair(ref, mov, tmp_path / "pair.zarr", tile_size=32, halo=8, min_valid=0.2,
                        progress=lambda i, n: calls.append((i, n)))
    assert plan.shape == (96, 80) and len(plan.tiles) + len(plan.skipped) == 9
    assert calls[-1] == (9, 9)
    m = plan.mov_file_to_grid_matrix()
    np.testing.assert_allclose(m, [[1, 0, 5], [0, 1, -3], [0, 0, 1]], atol=1e-9)
    np.testing.assert_allclose(plan.grid_to_mov_file([[5, -3], [10.5, 20.25]]),
                               [[0, 0], [5.5, 23.25]], atol=1e-9)
    for tile in plan.tiles:
        td = read_tile(plan.store, tile)
        y0, y1, x0, x1 = tile.halo_window(plan.shape)
        assert (td.x0, td.y0) == (x0, y0) and td.ref.shape == (y1 - y0, x1 - x0)
        exp_ref = normalise(read_window(plan.ref, (y0, y1, x0, x1)), plan.ref_stats)
        np.testing.assert_array_equal(td.ref, exp_ref)
        # grid pixel (x, y) is moving-file pixel (x - 5, y + 3)
        exp_mov = np.full_like(td.mov, np.nan)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        mx, my = xs - 5, ys + 3
        inside = (mx >= 0) & (mx < 80) & (my >= 0) & (my < 96)
        raw = read_window(plan.mov, (0, 96, 0, 80))
        exp_mov[inside] = normalise(raw, plan.mov_stats)[my[inside], mx[inside]]
        np.testing.assert_allclose(td.mov, exp_mov, atol=1e-5)
    assert load_plan(plan.store) == plan
    assert TilePlan.from_json(plan.to_json()) == plan


def test_neighbouring_utm_zone(tmp_path: Path) -> None:
    to33 = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)
    to34 = Transformer.from_crs("EPSG:4326", "EPSG:32634", always_xy=True)
    from34to33 = Transformer.from_crs("EPSG:32634", "EPSG:32633", always_xy=True)
    lon, lat = 17.99, 45.0  # zone 33 ends at 18 E
    e33, n33 = to33.transform(lon, lat)
    e34, n34 = to34.transform(lon, lat)
    blob = (e33 + 123.0, n33 - 77.0)  # feature position, zone 33 metres

    def field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d2 = (x - blob[0]) ** 2 + (y - blob[1]) ** 2
        return (100 + 900 * np.exp(-d2 / (2 * 40.0**2)) + 50 * np.sin(x / 90) * np.cos(y / 70))

    ref_t = Affine(10, 0, round(e33) - 1000, 0, -10, round(n33) + 1000)
    ys, xs = np.mgrid[0:200, 0:200]
    rx, ry = ref_t.c + 10 * (xs + 0.5), ref_t.f - 10 * (ys + 0.5)
    ref = write_raster(tmp_path / "ref33.tif", field(rx, ry).astype(np.float32),
                       crs="EPSG:32633", transform=ref_t)
    mov_t = Affine(12, 0, round(e34) - 1300, 0, -12, round(n34) + 1300)
    ys, xs = np.mgrid[0:216, 0:216]
    mx, my = mov_t.c + 12 * (xs + 0.5), mov_t.f - 12 * (ys + 0.5)
    gx, gy = from34to33.transform(mx, my)
    mov = write_raster(tmp_path / "mov34.tif", field(gx, gy).astype(np.float32),
                       crs="EPSG:32634", transform=mov_t)
    plan = prepare_pair(ref, mov, tmp_path / "utm.zarr", tile_size=64, halo=16)
    assert not plan.skipped and len(plan.tiles) == 16

    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 199, (200, 2))
    back = plan.mov_file_to_grid(plan.grid_to_mov_file(pts))
    assert np.abs(back - pts).max() < 0.01
    # the feature's grid pixel maps to the feature's position in the moving file
    bx, by = (blob[0] - ref_t.c) / 10 - 0.5, (ref_t.f - blob[1]) / 10 - 0.5
    b34 = Transformer.from_crs("EPSG:32633", "EPSG:32634", always_xy=True).transform(*blob)
    exp_mov = ((b34[0] - mov_t.c) / 12 - 0.5, (mov_t.f - b34[1]) / 12 - 0.5)
    np.testing.assert_allclose(plan.grid_to_mov_file([[bx, by]])[0], exp_mov, atol=0.01)
    # the feature lands on the same grid pixel on both sides
    import zarr

    root = zarr.open_group(plan.store, mode="r")
    r, m = np.asarray(root["ref"][:]), np.asarray(root["mov"][:])
    assert np.isfinite(m).mean() > 0.99
    assert np.unravel_index(np.nanargmax(r), r.shape) == np.unravel_index(np.nanargmax(m), m.shape)

    def centroid(a: np.ndarray) -> np.ndarray:
        w = np.nan_to_num(np.clip(a - 0.6, 0, None))
        yy, xx = np.mgrid[0:a.shape[0], 0:a.shape[1]]
        return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()

    assert np.abs(centroid(r) - centroid(m)).max() < 0.25
    # LSQ affine of the exact mapping is close to it across the moving file
    a = plan.mov_file_to_grid_matrix()
    q = rng.uniform(0, 215, (100, 2))
    lin = (a[:2, :2] @ q.T).T + a[:2, 2]
    assert np.abs(lin - plan.mov_file_to_grid(q)).max() < 0.05


def test_skipped_tiles_and_nodata(tmp_path: Path) -> None:
    ref_data = _texture(128, 128)
    ref_data[96:, :] = -1  # bottom tile row is nodata in the reference
    ref = write_raster(tmp_path / "ref.tif", ref_data, transform=T, nodata=-1)
    mov = write_raster(tmp_path / "mov.tif", _texture(128, 50, seed=1).astype(np.uint16),
                       transform=T)  # covers columns 0..49 only
    plan = prepare_pair(ref, mov, tmp_path / "s.zarr", tile_size=32, halo=4, min_valid=0.6)
    kept = {t.key for t in plan.tiles}
    reasons = {t.key: why for t, why in plan.skipped}
    assert kept == {"r0_c0", "r1_c0", "r2_c0"}
    assert len(kept) + len(reasons) == 16
    assert "valid fraction" in reasons["r0_c1"]  # 18/32 columns covered < 0.6
    assert "outside" in reasons["r0_c3"]
    assert "valid fraction 0.000" in reasons["r3_c0"] or "ref 0.000" in reasons["r3_c0"]
    td = read_tile(plan.store, plan.tiles[0])
    assert np.isnan(td.mov[:, 50:]).all() and np.isfinite(td.mov[:, :49]).all()
    td = read_tile(plan.store, plan.tile("r2_c0"))
    assert np.isnan(td.ref[-4:]).all()  # halo reaches into the nodata rows


def test_sha256_deterministic_and_independent_of_store(tmp_path: Path) -> None:
    ref = write_raster(tmp_path / "ref.tif", _texture(64, 64), transform=T)
    mov = write_raster(tmp_path / "mov.tif", _texture(64, 64, 2), transform=T @ Affine.translation(3, 2))
    a = prepare_pair(ref, mov, tmp_path / "a.zarr", tile_size=32, halo=4)
    b = prepare_pair(ref, mov, tmp_path / "b.zarr", tile_size=32, halo=4)
    assert a.sha256 == b.sha256 and a.store != b.store
    c = prepare_pair(ref, mov, tmp_path / "a.zarr", tile_size=32, halo=8)  # overwrite a store
    assert c.sha256 != a.sha256 and load_plan(tmp_path / "a.zarr").halo == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "b.zarr", "mov.tif", "ref.tif"]


def test_bad_inputs_raise_typed_errors_and_leave_no_store(tmp_path: Path) -> None:
    ref = write_raster(tmp_path / "ref.tif", _texture(64, 64), transform=T)
    far = write_raster(tmp_path / "far.tif", _texture(64, 64), transform=T @ Affine.translation(500, 0))
    with pytest.raises(NoOverlapError, match="far.tif") as e:
        prepare_pair(ref, far, tmp_path / "x.zarr", tile_size=32)
    assert "ref.tif" in str(e.value) and e.value.hint
    # moving scene valid only outside the overlap -> AllNodataError naming it
    m = _texture(64, 128).astype(np.uint16)
    m[:, :64] = 0
    half = write_raster(tmp_path / "half.tif", m, transform=T, nodata=0)
    with pytest.raises(AllNodataError, match="half.tif"):
        prepare_pair(ref, half, tmp_path / "x.zarr", tile_size=32)
    empty = write_raster(tmp_path / "empty.tif", np.zeros((64, 64), np.uint8), transform=T, nodata=0)
    with pytest.raises(AllNodataError, match="empty.tif"):
        prepare_pair(empty, ref, tmp_path / "x.zarr", tile_size=32)
    with pytest.raises(ConfigError):
        prepare_pair(ref, ref, tmp_path / "x.zarr", tile_size=32, min_valid=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif", "far.tif", "half.tif", "ref.tif"]


def test_real_landsat_b4_vs_b10(real_data: Path, tmp_path: Path) -> None:
    d = real_data / "landsat8_oli_tirs"
    plan = prepare_pair(d / "l8_B4.tif", d / "l8_B10.tif", tmp_path / "l8.zarr", tile_size=256, halo=32)
    assert plan.ref.modality == "optical" and plan.mov.modality == "thermal"
    assert len(plan.tiles) == 9 and not plan.skipped
    np.testing.assert_allclose(plan.mov_file_to_grid_matrix(), np.eye(3), atol=1e-9)
    for tile in plan.tiles[:4]:
        td = read_tile(tmp_path / "l8.zarr", tile)
        win = tile.halo_window(plan.shape)
        np.testing.assert_array_equal(td.ref, normalise(read_window(plan.ref, win), plan.ref_stats))
        np.testing.assert_allclose(td.mov, normalise(read_window(plan.mov, win), plan.mov_stats),
                                   atol=1e-6)
        assert 0.0 <= np.nanmin(td.ref) and np.nanmax(td.mov) <= 1.0


def test_moving_internal_mask_and_float_nan_are_invalid(tmp_path: Path) -> None:
    ref = write_raster(tmp_path / "ref.tif", _texture(64, 64), transform=T)
    mask = np.ones((64, 64), bool)
    mask[:, 40:] = False
    a = _texture(64, 64, 3).astype(np.uint16)
    mov = write_raster(tmp_path / "masked.tif", a, transform=T, mask=mask)
    plan = prepare_pair(ref, mov, tmp_path / "m.zarr", tile_size=32, halo=0, min_valid=0.0)
    m = np.concatenate([np.concatenate([read_tile(plan.store, plan.tile(f"r{r}_c{c}")).mov
                                        for c in (0, 1)], axis=1) for r in (0, 1)])
    assert np.isfinite(m[:, :40]).all() and np.isnan(m[:, 40:]).all()
    b = _texture(64, 64, 4)
    b[:20] = np.nan
    mov2 = write_raster(tmp_path / "nan.tif", b, transform=T)
    plan = prepare_pair(ref, mov2, tmp_path / "n.zarr", tile_size=32, halo=0)
    td = read_tile(plan.store, plan.tile("r0_c0"))
    assert np.isnan(td.mov[:20]).all() and np.isfinite(td.mov[20:]).all()
