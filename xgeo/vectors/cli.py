"""Typer command behind ``xgeo align-vectors`` (mounted by ``xgeo/cli.py``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["align_vectors_cmd"]


def align_vectors_cmd(
    map_path: Path = typer.Argument(..., help="vector map: GeoPackage, GeoJSON or shapefile"),
    image_path: Path = typer.Argument(..., help="trusted image (GeoTIFF/COG; DEMs hillshaded)"),
    out: Path = typer.Option(..., "-o", "--out", help="corrected vectors (.gpkg/.geojson/.shp)"),
    report: Path | None = typer.Option(None, "--report", help="JSON report (+ _overlay.png)"),
    model: str = typer.Option("auto", "--model", help="auto|shift|affine|poly2|poly3|tps"),
    matcher: str | None = typer.Option(None, "--matcher", help="matcher name (default: the "
                                       "pipeline's default matcher)"),
) -> None:
    """Align a vector map to an image: the geometries themselves are corrected."""
    from xgeo.vectors.align import align_vectors

    res = align_vectors(map_path, image_path, out, matcher=matcher, model=model, report=report)
    console = Console()
    table = Table(title=f"align-vectors: {map_path.name} -> {image_path.name}")
    table.add_column("field")
    table.add_column("value")
    rows = [
        ("model", f"{res.kind} (from {res.source})"),
        ("matcher", res.matcher),
        ("tie points / inliers", f"{res.qa.get('n_tiepoints')} / {res.qa.get('n_inliers')}"),
        ("tie-point RMSE / CE90 px", f"{_f(res.qa.get('rmse_px'))} / {_f(res.qa.get('ce90_px'))}"),
        ("vertex shift mean / max px", f"{res.vertex_shift_px.get('mean', 0):.2f} / "
                                       f"{res.vertex_shift_px.get('max', 0):.2f}"),
        ("invalid geometries (kept)", str(len(res.invalid))),
        ("written", ", ".join(str(p) for p in res.out_paths)),
        ("report", str(res.report_path) if res.report_path else "-"),
        ("overlay", str(res.overlay_path) if res.overlay_path else "-"),
        ("seconds", f"{res.seconds:.1f}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


def _f(v: object) -> str:
    return "-" if v is None else f"{float(v):.2f}"  # type: ignore[arg-type]
