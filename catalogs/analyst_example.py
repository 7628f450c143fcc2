"""Analyst example: open an xgeo cube, select a time range and an AOI, compute a per-pixel
statistic and plot it.

    python catalogs/analyst_example.py CUBE.zarr [--start 2024-01-01 --end 2024-12-31]
    python catalogs/analyst_example.py --demo      # builds a small demo cube first

The AOI is given in the cube's CRS (``--bbox xmin ymin xmax ymax``); default: the central half.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import xgeo  # noqa: E402


def build_demo_cube(folder: Path) -> Path:
    """Four dates of a generated world written as COGs and appended to a cube."""
    import rasterio

    from xgeo.cube import append_to_cube
    from xgeo.synth import generate_world, render

    world = generate_world(7, (256, 256))
    cube = folder / "demo.zarr"
    for k, day in enumerate(["2024-03-01", "2024-05-01", "2024-07-01", "2024-09-01"]):
        img = np.asarray(render(world, "optical", seed=k), np.float32)
        img = img[None] if img.ndim == 2 else img
        cog = folder / f"scene_{k}.tif"
        with rasterio.open(cog, "w", driver="COG", width=img.shape[2], height=img.shape[1],
                           count=img.shape[0], dtype="float32", crs=world.crs,
                           transform=world.transform) as ds:
            ds.write(img)
        append_to_cube(cube, cog, time=day, scene_id=f"demo_{k}",
                       qa={"model": "affine", "rmse_px": 0.3, "source_ids": [f"demo_{k}"]})
    return cube


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cube", nargs="?", type=Path)
    ap.add_argument("--demo", action="store_true", help="build and use a demo cube")
    ap.add_argument("--start", default=None)
    ap.add_argument("--end", default=None)
    ap.add_argument("--bbox", nargs=4, type=float, default=None)
    ap.add_argument("--band", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("cube_stat.png"))
    args = ap.parse_args()
    cube = build_demo_cube(Path(tempfile.mkdtemp())) if args.demo or args.cube is None \
        else args.cube

    ds = xgeo.open_cube(cube)                                 # lazy, sorted by time
    ds = ds.sel(time=slice(args.start, args.end))             # time range
    if args.bbox is None:                                     # AOI in the cube's CRS
        x0, x1 = np.quantile(ds.x, [0.25, 0.75])
        y0, y1 = np.quantile(ds.y, [0.25, 0.75])
    else:
        x0, y0, x1, y1 = args.bbox
    aoi = ds.sel(x=slice(x0, x1), y=slice(max(y0, y1), min(y0, y1)))  # y decreases
    good = aoi["qa_rmse_px"] <= 1.0                           # per-scene QA filter
    data = aoi["data"].sel(band=args.band).where(good)
    stat = data.median("time").compute()                      # per-pixel statistic
    spread = (data.max("time") - data.min("time")).compute()

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    stat.plot(ax=axes[0], cmap="viridis")
    axes[0].set_title(f"median over {int(good.sum())} scenes")
    spread.plot(ax=axes[1], cmap="magma")
    axes[1].set_title("max - min")
    fig.suptitle(f"{Path(cube).name}  CRS {ds.rio.crs}")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"scenes {list(map(str, aoi.scene_id.values))}; wrote {args.out}")


if __name__ == "__main__":
    main()
