"""(Re)generate the job catalogs in this folder.

    python catalogs/build.py                  # both catalogs
    python catalogs/build.py --only example   # generated scenes only (no external data)

* ``example/``: the embedded default - generated optical/SAR and optical/thermal pairs with a
  known misregistration (``xgeo.synth.write_scene_pair``). The rasters go to ``example/data/``;
  each scene item keeps its ``xgeo:synth`` recipe, so :func:`xgeo.catalog.read_jobs`
  regenerates them when that folder is absent (it is a build output, not a source).
* ``real/``: pairs from ``../shared/data/real`` (Landsat-8 OLI B4 vs TIRS B10, CFOG
  optical-SAR, CFOG visible-infrared, two BigEarthNet Sentinel-2 / Sentinel-1 patches), with
  relative hrefs; nothing is copied.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xgeo.catalog import SceneSpec, write_job_catalog

HERE = Path(__file__).resolve().parent
REAL_ROOT = HERE.parent.parent / "shared" / "data" / "real"

# (job id, ref path, ref modality, mov path, mov modality, settings) relative to REAL_ROOT
_S1S2 = "bigearthnet_s1_s2"
REAL_PAIRS: tuple[tuple[str, str, str | None, str, str | None, dict[str, Any]], ...] = (
    ("l8-b4-b10", "landsat8_oli_tirs/l8_B4.tif", "optical",
     "landsat8_oli_tirs/l8_B10.tif", "thermal", {"tile_size": 320, "halo": 32}),
    ("cfog-optical-sar", "cfog_geotiff/optical-sar_utm33/visible2_ref.tif", "optical",
     "cfog_geotiff/optical-sar_utm33/SAR2_sen.tif", "sar", {"tile_size": 320, "halo": 32}),
    ("cfog-visible-infrared", "cfog_geotiff/visible-infrared_utm49/test6_ref.tif", "optical",
     "cfog_geotiff/visible-infrared_utm49/test6_sen.tif", None, {"tile_size": 544, "halo": 32}),
    ("s2s1-87-48", f"{_S1S2}/S2A_MSIL2A_20170613T101031_87_48/S2A_MSIL2A_20170613T101031_87_48_B08.tif",
     "optical", f"{_S1S2}/S2A_MSIL2A_20170613T101031_87_48/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VV.tif",
     "sar", {"tile_size": 128, "halo": 0, "min_valid": 0.1, "model": "shift"}),
    ("s2s1-36-85", f"{_S1S2}/S2A_MSIL2A_20170617T113321_36_85/S2A_MSIL2A_20170617T113321_36_85_B08.tif",
     "optical", f"{_S1S2}/S2A_MSIL2A_20170617T113321_36_85/S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85_VV.tif",
     "sar", {"tile_size": 128, "halo": 0, "min_valid": 0.1, "model": "shift"}),
)

# (pair id, seed, shape, ref modality, mov modality, settings)
GENERATED_PAIRS: tuple[tuple[str, int, tuple[int, int], str, str, dict[str, Any]], ...] = (
    ("gen-optical-sar", 11, (512, 512), "optical", "sar", {"tile_size": 256, "halo": 32}),
    ("gen-optical-thermal", 12, (512, 512), "optical", "thermal", {"tile_size": 256, "halo": 32}),
)


def real_specs(real_root: Path, pairs: Sequence[tuple[Any, ...]] = REAL_PAIRS) -> tuple[
        list[SceneSpec], list[tuple[str, str, str, dict[str, Any]]]]:
    """Scene specs and jobs for the real pairs under ``real_root`` (absolute hrefs)."""
    scenes: dict[str, SceneSpec] = {}
    jobs = []
    for job_id, ref, ref_mod, mov, mov_mod, settings in pairs:
        ids = []
        for rel, mod in ((ref, ref_mod), (mov, mov_mod)):
            sid = Path(rel).stem.lower().replace("_", "-")
            scenes.setdefault(sid, SceneSpec(sid, str((real_root / rel).resolve()), mod))
            ids.append(sid)
        jobs.append((job_id, ids[0], ids[1], dict(settings)))
    return list(scenes.values()), jobs


def _pair_paths(result: Any, folder: Path) -> tuple[Path, Path]:
    """(ref, mov) paths from what ``write_scene_pair`` returns (``SceneTruth.files``)."""
    files = getattr(result, "files", None)
    if isinstance(files, dict) and "ref" in files and "mov" in files:
        return folder / files["ref"], folder / files["mov"]
    for a, b in (("ref", "mov"), ("ref_path", "mov_path")):
        if isinstance(result, dict) and a in result:
            return Path(result[a]), Path(result[b])
        if hasattr(result, a):
            return Path(getattr(result, a)), Path(getattr(result, b))
    if isinstance(result, tuple | list) and len(result) >= 2:
        return Path(result[0]), Path(result[1])
    tifs = sorted(folder.glob("*.tif"))
    ref = [p for p in tifs if "ref" in p.name]
    mov = [p for p in tifs if "mov" in p.name]
    if ref and mov:
        return ref[0], mov[0]
    raise RuntimeError(f"cannot find the ref/mov rasters written to {folder}")


def generated_specs(data_dir: Path, pairs: Sequence[tuple[Any, ...]] = GENERATED_PAIRS) -> tuple[
        list[SceneSpec], list[tuple[str, str, str, dict[str, Any]]]]:
    """Write the generated pairs under ``data_dir`` and return scene specs (with recipes) + jobs."""
    from xgeo.synth import write_scene_pair

    scenes, jobs = [], []
    for pair_id, seed, shape, ref_mod, mov_mod, settings in pairs:
        folder = data_dir / pair_id
        res = write_scene_pair(folder, seed, shape=shape, ref_modality=ref_mod,
                               mov_modality=mov_mod)
        ref, mov = _pair_paths(res, folder)
        recipe = {"seed": seed, "shape": list(shape), "ref_modality": ref_mod,
                  "mov_modality": mov_mod}
        scenes.append(SceneSpec(f"{pair_id}-ref", str(ref.resolve()), ref_mod,
                                synth={**recipe, "role": "ref"}))
        scenes.append(SceneSpec(f"{pair_id}-mov", str(mov.resolve()), mov_mod,
                                synth={**recipe, "role": "mov"}))
        jobs.append((pair_id, f"{pair_id}-ref", f"{pair_id}-mov", dict(settings)))
    return scenes, jobs


def build_example(dest: Path = HERE / "example") -> Path:
    """The embedded default catalog (generated scenes only)."""
    scenes, jobs = generated_specs(dest / "data")
    return write_job_catalog(dest, scenes, jobs, catalog_id="xgeo-example",
                             description="generated cross-modal pairs with known misregistration")


def build_real(dest: Path = HERE / "real", real_root: Path = REAL_ROOT) -> Path:
    """The catalog over ``../shared/data/real`` pairs."""
    if not real_root.exists():
        raise SystemExit(f"{real_root}: real data folder not found")
    scenes, jobs = real_specs(real_root)
    return write_job_catalog(dest, scenes, jobs, catalog_id="xgeo-real",
                             description="real cross-sensor pairs from ../shared/data/real")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("example", "real"))
    ap.add_argument("--real-root", type=Path, default=REAL_ROOT)
    args = ap.parse_args(argv)
    if args.only in (None, "example"):
        print(build_example())
    if args.only in (None, "real"):
        print(build_real(real_root=args.real_root))


if __name__ == "__main__":
    main()
