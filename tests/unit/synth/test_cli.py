from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from xgeo.synth.cli import app


def test_render_and_pairs_write_pngs(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "g.png"
    res = runner.invoke(app, ["render", "--seed", "1", "--size", "96", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 10_000
    out2 = tmp_path / "p.png"
    res = runner.invoke(app, ["pairs", "--n", "2", "--size", "64", "--out", str(out2)])
    assert res.exit_code == 0, res.output
    assert out2.stat().st_size > 5_000
