"""The spine's protocol on the shared real pairs, per matcher and per size of misregistration.

Each pair's moving file gets a known misregistration; `xgeo.register` (no `--coarse`) maps it
back, and the error is the RMSE of the recovered moving-file -> reference mapping over a 20 x 20
grid of check points (the protocol of `tests/integration/test_register_real.py`, whose helpers
this reuses). Regimes:

- `geotransform`: geotransform shifted by (+3.4, -2.7) px (pixels untouched);
- `resampled`: content resampled by rotation 0.5 deg, scale 1.003, shift (3.4, -2.7) px;
- `moderate`: content resampled by rotation 4 deg, scale 1.03, shift (24, -17) px - a scene whose
  georeferencing is off by more than the classical matcher's assumptions (< ~5 deg, < ~5 %
  scale, offsets within its search) comfortably allow, but not far off enough to need `--coarse`.

Pairs with a native offset (CFOG optical-SAR, S2/S1) are measured against the *same matcher's*
registration of the untouched pair, as in the test. A failed registration prints its error and
counts as a miss.

    python tests/bench/register_matchers.py [--matcher classical --matcher universal+structural]
                                            [--regime moderate] [--pair cfog_optical-sar]

A matcher may carry options after semicolons, as `--matcher-option` takes them:
`"universal+structural;snap_px=0"`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.integration.test_register_real import PAIRS, _cfg, _inputs  # noqa: E402
from xgeo.cli import matcher_options  # noqa: E402
from xgeo.errors import XgeoError  # noqa: E402
from xgeo.pipeline import register  # noqa: E402
from xgeo.testing import check_grid, inject_geotransform_shift, inject_resampled, rmse  # noqa: E402

REGIMES = {
    "geotransform": None,
    "resampled": dict(rotation_deg=0.5, scale=1.003, shift_px=(3.4, -2.7)),
    "moderate": dict(rotation_deg=4.0, scale=1.03, shift_px=(24.0, -17.0)),
}


def run(real: Path, matchers: list[str], regimes: list[str], pairs: list[str]) -> dict:
    out: dict = {}
    for matcher in matchers:
        matcher_name, *opts = matcher.split(";")
        cfg = dataclasses.replace(_cfg(), matcher=matcher_name, matcher_options=matcher_options(opts))
        for name in pairs:
            native = PAIRS[name][3]
            with tempfile.TemporaryDirectory() as td:
                tmp = Path(td)
                ref, src = _inputs(real, name, tmp)
                r0, baseline = None, ""
                if native:
                    try:
                        r0 = register(ref, src, None, cfg).mov_file_to_ref
                    except XgeoError as exc:  # no baseline: every regime of the pair is a miss
                        baseline = f"untouched pair: {type(exc).__name__}: {str(exc)[:60]}"
                for regime in regimes:
                    if baseline:
                        out[f"{matcher}|{name}|{regime}"] = {"rmse_px": float("nan"),
                                                             "seconds": 0.0, "note": baseline}
                        print(f"{matcher:22s} {name:22s} {regime:12s}      nan px  {baseline}")
                        continue
                    moved = tmp / f"mov_{regime}.tif"
                    kw = REGIMES[regime]
                    g = (inject_geotransform_shift(src, moved, (3.4, -2.7)) if kw is None
                         else inject_resampled(src, moved, **kw))
                    with rasterio.open(moved) as ds:
                        uv = check_grid(ds.width, ds.height)
                    truth = r0(g(uv)) if r0 else g(uv)
                    t = time.perf_counter()
                    try:
                        res = register(ref, moved, None, cfg)
                        err = rmse(res.mov_file_to_ref(uv), truth)
                        qa = res.fit.qa
                        note = (f"{qa.get('model')} {qa['n_inliers']}/{qa['n_tiepoints']}, fit "
                                f"{qa.get('rmse_px') or float('nan'):.2f} / held-out "
                                f"{qa.get('heldout_rmse_px') or float('nan'):.2f} px")
                    except XgeoError as exc:
                        err, note = float("nan"), f"{type(exc).__name__}: {str(exc)[:80]}"
                    sec = time.perf_counter() - t
                    out[f"{matcher}|{name}|{regime}"] = {"rmse_px": err, "seconds": sec, "note": note}
                    print(f"{matcher:22s} {name:22s} {regime:12s} {err:8.3f} px {sec:6.1f} s  {note}",
                          flush=True)
    return out


def table(res: dict, matchers: list[str], regimes: list[str], pairs: list[str]) -> str:
    lines = ["| pair | regime | " + " | ".join(matchers) + " |",
             "|---|---|" + "---|" * len(matchers)]
    for name in pairs:
        for regime in regimes:
            cells = []
            for m in matchers:
                e = res[f"{m}|{name}|{regime}"]["rmse_px"]
                cells.append("fail" if not np.isfinite(e) else f"{e:.2f}")
            lines.append(f"| {name} | {regime} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "real"))
    p.add_argument("--matcher", action="append")
    p.add_argument("--regime", action="append", choices=list(REGIMES))
    p.add_argument("--pair", action="append", choices=list(PAIRS))
    p.add_argument("--out", help="JSON of every figure")
    a = p.parse_args(argv)
    matchers = a.matcher or ["classical", "universal+structural"]
    regimes = a.regime or list(REGIMES)
    pairs = a.pair or list(PAIRS)
    res = run(Path(a.real), matchers, regimes, pairs)
    print(table(res, matchers, regimes, pairs))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
