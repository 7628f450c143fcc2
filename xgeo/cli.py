"""Command line: ``xgeo register | demo | synth | align-vectors``.

Evaluation (``python -m training.eval``) and the nightly service (``python -m flows.serve``)
live outside the package on purpose: xgeo never imports training/ or flows/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from xgeo.errors import ConfigError, XgeoError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="xgeo: cross-sensor co-registration of earth-observation imagery.")
console = Console(stderr=True)


def _fail(exc: BaseException) -> None:
    code = getattr(exc, "exit_code", 1)
    console.print(f"[bold red]error[/]: {exc}")
    raise typer.Exit(code)


def _config(**kw: Any) -> Any:
    from xgeo.pipeline import RegisterConfig

    return RegisterConfig(**{k: v for k, v in kw.items() if v is not None})


def matcher_options(items: list[str] | None) -> tuple[tuple[str, Any], ...]:
    """``["KEY=VALUE", ...]`` -> sorted ``((key, value), ...)``; values parsed as JSON when they
    are (``true``, ``8``, ``0.2``), else kept as strings.

    Raises:
        ConfigError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--matcher-option {item!r} is not KEY=VALUE. "
                              "Hint: e.g. --matcher-option autocast=false")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return tuple(sorted(out.items()))


@app.command()
def register(
    ref: Path = typer.Argument(..., help="reference raster (its grid is the output grid)"),
    mov: Path = typer.Argument(..., help="moving raster to co-register"),
    out: Path = typer.Option(..., "-o", "--out", help="output COG"),
    report: Path | None = typer.Option(None, "--report", help="JSON report (+ .gpkg, .png beside)"),
    model: str = typer.Option("auto", "--model", help="auto|shift|affine|poly2|poly3|tps"),
    matcher: str = typer.Option("auto", "--matcher", help="auto (= cascade)|cascade|classical|universal|universal+structural|WEIGHTS.safetensors"),
    tile_size: int = typer.Option(1024, "--tile-size"),
    halo: int = typer.Option(64, "--halo"),
    no_resample: bool = typer.Option(False, "--no-resample",
                                     help="shift/affine: only rewrite the geotransform"),
    ref_modality: str | None = typer.Option(None, "--ref-modality"),
    mov_modality: str | None = typer.Option(None, "--mov-modality"),
    workdir: Path | None = typer.Option(None, "--workdir", help="keep the Zarr tile store here"),
    coarse: bool = typer.Option(False, "--coarse",
                                help="MOV's georeferencing is far off (hundreds of px, rotated, "
                                     "scaled): first match overviews with the universal matcher's "
                                     "orientation/scale search and correct it"),
    matcher_option: list[str] | None = typer.Option(
        None, "--matcher-option",
        help="KEY=VALUE for the matcher, repeatable; e.g. autocast=false (float32 on every "
             "machine, for results that do not depend on the CPU's bf16 support)"),
) -> None:
    """Co-register MOV onto REF and write a validated COG plus a QA report."""
    from xgeo.pipeline import register as run

    try:
        cfg = _config(model=model, matcher=matcher, tile_size=tile_size, halo=halo,
                      resample=not no_resample, ref_modality=ref_modality,
                      mov_modality=mov_modality, matcher_options=matcher_options(matcher_option),
                      coarse=coarse)
        report = report or out.with_suffix(".json")
        res = run(ref, mov, out, cfg, report=report, workdir=workdir, progress=True)
    except XgeoError as exc:
        _fail(exc)
        return
    _print_qa(res)
    typer.echo(json.dumps({"output": str(res.output), "report": str(report),
                           "status": res.report.get("status")}))


def _print_qa(res: Any) -> None:
    qa = res.fit.qa
    t = Table(title="registration QA", show_header=False)
    for k in ("model", "n_tiepoints", "n_inliers", "rmse_px", "ce90_px", "rmse_m", "ce90_m",
              "heldout_rmse_px"):
        if k in qa:
            v = qa[k]
            t.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    n_tiles = len(res.tiles)
    n_ok = sum(r.status == "ok" for r in res.tiles)
    t.add_row("tiles matched", f"{n_ok}/{n_tiles} (+{len(res.plan.skipped)} skipped)")
    escalated = sum(r.route.startswith("escalated") for r in res.tiles)
    if escalated:  # the cascade sent tiles whose classical matches did not hold to the learned matcher
        kept = sum(r.route == "escalated-second" for r in res.tiles)
        t.add_row("tiles escalated", f"{escalated} (learned result kept on {kept})")
    t.add_row("seconds", f"{res.seconds:.1f}")
    console.print(t)
    for w in res.report.get("warnings", []):
        console.print(f"[yellow]warning[/]: {w}")


@app.command()
def demo(
    size: int = typer.Option(4096, "--size", help="scene side in pixels (>= 4096 by default)"),
    ref_modality: str = typer.Option("optical", "--ref-modality"),
    mov_modality: str = typer.Option("sar", "--mov-modality"),
    seed: int = typer.Option(7, "--seed"),
    out_dir: Path = typer.Option(Path("xgeo-demo"), "--out-dir"),
    matcher: str = typer.Option("auto", "--matcher"),
    model: str = typer.Option("auto", "--model"),
    max_error: float = typer.Option(1.5, "--max-error",
                                    help="exit 1 when the check-point RMSE exceeds this (px)"),
    rotation: float = typer.Option(0.3, "--rotation", help="injected rotation (deg)"),
    scale: float = typer.Option(1.002, "--scale", help="injected scale"),
    shift: str = typer.Option("3.4,-2.7", "--shift", help="injected shift X,Y (px)"),
    coarse: bool = typer.Option(False, "--coarse",
                                help="register with the coarse overview stage (try --rotation 30 "
                                     "--shift 150,-90 with and without it)"),
) -> None:
    """Generate a scene pair with a known misregistration, register it, print true vs recovered."""
    from xgeo.geometry import describe_linear
    from xgeo.pipeline import register as run
    from xgeo.synth import write_scene_pair

    try:
        try:
            sx, sy = (float(v) for v in shift.split(","))
        except ValueError:
            raise ConfigError(f"--shift {shift!r} must be X,Y in pixels, e.g. 3.4,-2.7") from None
        out_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with console.status(f"generating a {size}x{size} {ref_modality}/{mov_modality} world"):
            truth = write_scene_pair(out_dir, seed, shape=(size, size), ref_modality=ref_modality,
                                     mov_modality=mov_modality, shift_px=(sx, sy),
                                     rotation_deg=rotation, scale=scale)
        ref_path, mov_path = out_dir / truth.files["ref"], out_dir / truth.files["mov"]
        console.print(f"scenes written in {time.perf_counter() - t0:.1f} s: {ref_path}, {mov_path}")
        cfg = _config(matcher=matcher, model=model, coarse=coarse)
        res = run(ref_path, mov_path, out_dir / "registered.tif", cfg,
                  report=out_dir / "report.json", workdir=out_dir / "work", progress=True)
    except XgeoError as exc:
        _fail(exc)
        return
    _print_qa(res)
    err = demo_errors(truth, res, (size, size))
    t = Table(title="true vs recovered misregistration (moving file -> reference pixels)")
    t.add_column("quantity")
    t.add_column("true", justify="right")
    t.add_column("recovered", justify="right")
    c = np.array([[(size - 1) / 2, (size - 1) / 2]])
    d_true = (truth.mov_to_ref(c) - c)[0]
    d_rec = (res.mov_file_to_ref(c) - c)[0]
    true_lin = describe_linear(truth.mov_to_ref_matrix)
    rec_lin = describe_linear(np.asarray(res.report.get("mov_to_ref_pixel_approx", np.eye(3))))
    t.add_row("shift x at centre (px)", f"{d_true[0]:+.3f}", f"{d_rec[0]:+.3f}")
    t.add_row("shift y at centre (px)", f"{d_true[1]:+.3f}", f"{d_rec[1]:+.3f}")
    t.add_row("rotation (deg)", f"{true_lin['rotation_deg']:+.4f}", f"{rec_lin['rotation_deg']:+.4f}")
    t.add_row("scale", f"{true_lin['scale_x']:.5f}", f"{rec_lin['scale_x']:.5f}")
    t.add_row("local distortion (max px)", f"{truth.local_px:.2f}", res.fit.model.kind)
    console.print(t)
    console.print(f"check-point error over a 32x32 grid: RMSE [bold]{err['rmse_px']:.3f} px[/], "
                  f"max {err['max_px']:.3f} px, identity would be {err['rmse_identity_px']:.2f} px")
    console.print(f"outputs in {out_dir}/ (registered.tif, report.json/.gpkg/.png)")
    if err["rmse_px"] > max_error:
        console.print(f"[red]check-point RMSE above --max-error {max_error}[/]")
        raise typer.Exit(1)


def demo_errors(truth: Any, res: Any, shape: tuple[int, int], n: int = 32) -> dict[str, float]:
    """RMSE of the recovered vs true mapping on an ``n x n`` grid inside the moving scene."""
    h, w = shape
    ys, xs = np.meshgrid(np.linspace(0.1 * h, 0.9 * h, n), np.linspace(0.1 * w, 0.9 * w, n),
                         indexing="ij")
    xy = np.stack([xs.ravel(), ys.ravel()], 1)
    true = truth.mov_to_ref(xy)
    rec = res.mov_file_to_ref(xy)
    d = np.linalg.norm(rec - true, axis=1)
    d0 = np.linalg.norm(xy - true, axis=1)
    return {"rmse_px": float(np.sqrt(np.mean(d**2))), "max_px": float(d.max()),
            "rmse_identity_px": float(np.sqrt(np.mean(d0**2)))}


def _mount_optional() -> None:
    try:
        from xgeo.synth.cli import app as synth_app

        app.add_typer(synth_app, name="synth", help="render synthetic worlds and pairs")
    except ImportError:  # pragma: no cover
        pass
    try:
        from xgeo.vectors.cli import align_vectors_cmd

        app.command("align-vectors")(align_vectors_cmd)
    except ImportError:  # pragma: no cover
        pass


_mount_optional()


def main() -> None:  # pragma: no cover
    try:
        app()
    except XgeoError as exc:
        console.print(f"[bold red]error[/]: {exc}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
