"""``xgeo synth``: render samples of the synthetic engine to PNG for a person to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

app = typer.Typer(help="Synthetic cross-modal data engine: look at worlds and training pairs.",
                  no_args_is_help=True)


def _stretch(a: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> np.ndarray:
    from xgeo.synth._noise import normalise01

    return normalise01(a, lo, hi)


@app.command("render")
def render_cmd(
    seed: int = typer.Option(0, help="world seed"),
    size: int = typer.Option(512, help="world side in pixels"),
    pixel_size: float = typer.Option(10.0, help="metres per pixel"),
    out: Path = typer.Option(Path("synth_gallery.png"), help="output PNG"),
) -> None:
    """Draw every modality of one world side by side (plus land cover)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from xgeo.synth.render import render
    from xgeo.synth.world import LANDCOVER, generate_world

    world = generate_world(seed, (size, size), pixel_size=pixel_size)
    opt = render(world, "optical", seed, cloud_cover=0.0)
    panels: list[tuple[str, np.ndarray, str | None]] = [
        ("optical RGB", np.clip(np.moveaxis(opt[:3], 0, -1) / max(float(np.percentile(
            opt[:3], 99.5)), 1e-6), 0, 1), None),
        ("optical NIR-R-G", np.clip(np.moveaxis(opt[[3, 0, 1]], 0, -1) / max(float(
            np.percentile(opt[[3, 0, 1]], 99.5)), 1e-6), 0, 1), None),
        ("optical, clouds", np.clip(np.moveaxis(render(world, "optical", seed + 1,
                                                       cloud_cover=0.3)[:3], 0, -1) * 2.5, 0, 1),
         None),
        ("thermal day (K)", _stretch(render(world, "thermal", seed, time="day")), "inferno"),
        ("thermal night (K)", _stretch(render(world, "thermal", seed, time="night")), "inferno"),
        ("SAR sigma0 (dB)", _stretch(render(world, "sar", seed), 2, 98), "gray"),
        ("night lights", _stretch(np.log1p(render(world, "night", seed))), "magma"),
        ("DEM (m)", _stretch(render(world, "dem", seed)), "terrain"),
        ("hillshade", render(world, "hillshade", seed, azimuth=315, elevation=45), "gray"),
        ("map", np.moveaxis(render(world, "map", seed), 0, -1), None),
        ("nDSM height (m)", _stretch(render(world, "depth", seed, kind="ndsm"), 0, 99.5),
         "viridis"),
        ("land cover", world.landcover.astype(np.float32), "lc"),
    ]
    lc_cmap = ListedColormap(["black", "#2b6cb0", "#276749", "#ecc94b", "#9ae6b4", "#a0aec0",
                              "#718096", "#c53030", "#1a202c", "#e6fffa"])  # one per class
    ncol = 4
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 4 * nrow))
    for ax, (title, img, cmap) in zip(axes.ravel(), panels, strict=False):
        if cmap == "lc":
            ax.imshow(img, cmap=lc_cmap, vmin=-0.5, vmax=len(LANDCOVER) - 0.5,
                      interpolation="nearest")
        else:
            ax.imshow(img, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=10)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"xgeo.synth world seed={seed}, {size}x{size} px at {pixel_size:g} m", fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    typer.echo(f"wrote {out}")


@app.command("pairs")
def pairs_cmd(
    seed: int = typer.Option(0, help="first pair seed"),
    n: int = typer.Option(6, help="number of pairs"),
    size: int = typer.Option(320, help="pair side in pixels"),
    out: Path = typer.Option(Path("synth_pairs.png"), help="output PNG"),
) -> None:
    """Draw training pairs (img0, img1, co-visibility) with ground-truth correspondences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xgeo.synth.pairs import make_pair

    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for i in range(n):
        p = make_pair(seed + i * 9, size)
        rng = np.random.default_rng(i)
        ys, xs = np.nonzero(p.valid0)
        axes[i, 0].imshow(p.img0, cmap="gray", vmin=0, vmax=1)
        axes[i, 1].imshow(p.img1, cmap="gray", vmin=0, vmax=1)
        axes[i, 2].imshow(p.valid0, cmap="gray", vmin=0, vmax=1)
        if len(xs):
            k = rng.choice(len(xs), min(12, len(xs)), replace=False)
            f = p.flow_0to1[ys[k], xs[k]]
            colours = plt.cm.tab20(np.arange(len(k)) % 20)
            axes[i, 0].scatter(xs[k], ys[k], c=colours, s=14)
            axes[i, 1].scatter(f[:, 0], f[:, 1], c=colours, s=14)
        axes[i, 0].set_title(f"img0: {p.mod0}", fontsize=9)
        axes[i, 1].set_title(f"img1: {p.mod1}", fontsize=9)
        axes[i, 2].set_title("valid0", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)
    plt.close(fig)
    typer.echo(f"wrote {out}")


if __name__ == "__main__":  # pragma: no cover
    app()
