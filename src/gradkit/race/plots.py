"""Pictures of a race (matplotlib, imported only when drawing; ``pip install gradkit[plot]``).

``paths_png`` draws one landscape's contours (log-spaced levels) with each optimizer's path from the start
(black square) to where it ended (a dot, or an x where it diverged), global minima as white stars and the
legend below the plot, where it hides nothing. ``stability_png`` draws final loss against learning rate,
one panel per landscape; diverged runs are x's in a strip of their own above each panel, never on the loss
axis. Colours are each racer's own, so any set of racers draws the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gradkit._style import pyplot
from gradkit.race.engine import RaceResult


def surface(result: RaceResult, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, Z)`` with ``Z[i, j] = f(xs[j], ys[i])`` over the landscape's plotting bounds."""
    (x0, x1), (y0, y1) = result.landscape.bounds
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    grid = jnp.stack(jnp.meshgrid(jnp.asarray(xs), jnp.asarray(ys)), axis=-1).reshape(-1, 2).astype(jnp.float32)
    z = np.asarray(jax.jit(jax.vmap(result.landscape.f))(grid), np.float64).reshape(n, n)
    return xs, ys, z


def outcome(result: RaceResult, i: int, j: int) -> str:
    """``"converged at 123"``, ``"diverged at 45"`` or ``"not converged"`` for optimizer ``i``, lr index ``j``."""
    if result.diverged_at[i, j] >= 0:
        return f"diverged at {result.diverged_at[i, j]}"
    if result.converged_at[i, j] >= 0:
        return f"converged at {result.converged_at[i, j]}"
    return "not converged"


def _end(result: RaceResult, i: int, j: int) -> np.ndarray:
    """The last point of a path: where it diverged (the engine holds it there), else after the last step."""
    d = int(result.diverged_at[i, j])
    return result.paths[i, j, d - 1 if d > 0 else -1]


def paths_png(result: RaceResult, lr_index: Sequence[int], colours: Sequence[str], path: str | Path) -> Path:
    """Write the contour plot of ``result.landscape`` with optimizer ``i``'s path at lr ``lr_index[i]``."""
    return _save(paths_figure(result, lr_index, colours), path)


def stability_png(results: Sequence[RaceResult], colours: Sequence[str], path: str | Path) -> Path:
    """Write final loss vs learning rate, one panel per landscape; diverged runs are x's in a strip above."""
    return _save(stability_figure(results, colours), path)


def _save(fig, path: str | Path) -> Path:
    out = Path(path)
    fig.savefig(out)
    pyplot().close(fig)
    return out


def paths_figure(result: RaceResult, lr_index: Sequence[int], colours: Sequence[str]):
    """The figure ``paths_png`` writes (a matplotlib Figure)."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    xs, ys, z = surface(result, 300)
    floor = min(float(z.min()), 0.0) if result.landscape.minima else float(z.min())
    gap = z - floor + 1e-3
    levels = np.logspace(np.log10(gap.min()), np.log10(gap.max()), 30)
    (x0, x1), (y0, y1) = result.landscape.bounds
    width = 6.4
    fig, ax = plt.subplots(figsize=(width, width * 0.8), dpi=100)
    ax.contourf(xs, ys, gap, levels=levels, norm="log", cmap="Greys_r", alpha=0.45)
    ax.contour(xs, ys, gap, levels=levels, norm="log", colors="k", linewidths=0.3, alpha=0.35)
    n = len(result.names)
    handles = []
    for i, (name, j, colour) in enumerate(zip(result.names, lr_index, colours)):
        p = result.paths[i, j]
        lr = result.learning_rates[i, j]
        # Earlier paths are drawn wider and below, so a path that a later one covers still shows at its
        # edges; white halos, all below every path, lift the paths off the contours without covering any.
        lw = 1.8 + 2.0 * (n - 1 - i)
        ax.plot(p[:, 0], p[:, 1], "-", color="white", lw=lw + 2.5, alpha=0.8, zorder=1.9, solid_capstyle="round")
        ax.plot(p[:, 0], p[:, 1], "-", color=colour, lw=lw, zorder=2 + i / n, solid_capstyle="round")
        diverged = result.diverged_at[i, j] >= 0
        end = _end(result, i, j)
        # Above the minima's stars: a path that ends at a minimum shows its dot on the star.
        ax.plot(*end, "X" if diverged else "o", color=colour, mec="black", mew=0.8, ms=8, zorder=6)
        handles.append(
            Line2D(
                [],
                [],
                color=colour,
                lw=2.5,
                marker="X" if diverged else "o",
                mec="black",
                ms=7,
                label=f"{name}, lr {lr:.2g}: {outcome(result, i, j)}",
            )
        )
    for m in result.landscape.minima:
        ax.plot(*m, "*", color="white", mec="black", mew=0.8, ms=15, zorder=5)
    ax.plot(*result.landscape.start, "s", color="black", mec="white", ms=8, zorder=5)
    handles += [
        Line2D([], [], ls="", marker="s", color="black", ms=7, label="start"),
        Line2D([], [], ls="", marker="*", color="white", mec="black", ms=12, label="global minimum"),
        Line2D([], [], ls="", marker="o", color="grey", mec="black", ms=7, label="end (x: diverged)"),
    ]
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    steps = result.paths.shape[2] - 1
    ax.set_title(f"{result.landscape.name}: {steps} steps; converged = within {result.tol:g} of a minimum")
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    fig.set_layout_engine("constrained")
    return fig


def stability_figure(results: Sequence[RaceResult], colours: Sequence[str]):
    """The figure ``stability_png`` writes; each panel's strip of diverged runs is ``ax.child_axes[0]``."""
    plt = pyplot()
    cols = min(3, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows + 0.6), dpi=100, squeeze=False)
    fig.set_layout_engine("constrained", h_pad=0.25)
    for ax, r in zip(axes.flat, results):
        final = r.losses[:, :, -1].astype(np.float64)
        n = len(r.names)
        strip = ax.inset_axes((0, 1.03, 1, 0.05 + 0.035 * n), sharex=ax)
        for i, (name, colour) in enumerate(zip(r.names, colours)):
            ok = r.diverged_at[i] < 0
            lr = r.learning_rates[i]
            # NaN at diverged runs breaks the line there instead of joining the runs on either side.
            shown = np.where(ok, np.maximum(final[i], 1e-12), np.nan)
            ax.plot(lr, shown, "-o", ms=3, lw=1.6, color=colour, label=name)
            strip.plot(lr[~ok], np.full((~ok).sum(), n - 1 - i), "x", color=colour, ms=6, mew=1.8)
        strip.set_ylim(-0.7, n - 0.3)
        strip.set_yticks([])
        strip.set_ylabel("diverged", rotation=0, ha="right", va="center", fontsize=9)
        strip.tick_params(axis="x", labelbottom=False, bottom=False)
        for side in ("top", "right", "left"):
            strip.spines[side].set_visible(False)
        ax.set_xscale("log")
        ax.set_yscale("log")
        strip.set_title(r.landscape.name)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"loss after {r.losses.shape[2] - 1} steps")
        ax.grid(alpha=0.3, which="major")
    spare = list(axes.flat)[len(results) :]
    for ax in spare:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if spare:  # an empty panel holds the legend
        spare[0].legend(handles, labels, loc="center", frameon=False, title="optimizer")
    else:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    fig.suptitle(
        "Loss after the race against learning rate (x in the strip above a panel: diverged; losses floored at 1e-12)"
    )
    return fig


__all__ = ["outcome", "paths_figure", "paths_png", "stability_figure", "stability_png", "surface"]
