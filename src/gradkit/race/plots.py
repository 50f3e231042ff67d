"""Pictures of a race (matplotlib, imported only when drawing; ``pip install gradkit[plot]``).

``paths_png`` draws one landscape's contours (log-spaced levels) with each optimizer's path and its
steps-to-converge in the legend; ``stability_png`` draws final loss against learning rate, one line per
optimizer and one panel per landscape, diverged runs marked with an x on the top edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.race.engine import RaceResult


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("drawing the race needs matplotlib: pip install 'gradkit[plot]'") from e
    return plt


def surface(result: RaceResult, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, Z)`` with ``Z[i, j] = f(xs[j], ys[i])`` over the landscape's plotting bounds."""
    (x0, x1), (y0, y1) = result.landscape.bounds
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    grid = jnp.stack(jnp.meshgrid(jnp.asarray(xs), jnp.asarray(ys)), axis=-1).reshape(-1, 2).astype(jnp.float32)
    z = np.asarray(jax.jit(jax.vmap(result.landscape.f))(grid), np.float64).reshape(n, n)
    return xs, ys, z


def outcome(result: RaceResult, i: int, j: int) -> str:
    """``"converged at 123"``, ``"diverged at 45"`` or ``"no convergence"`` for optimizer ``i``, lr index ``j``."""
    if result.diverged_at[i, j] >= 0:
        return f"diverged at {result.diverged_at[i, j]}"
    if result.converged_at[i, j] >= 0:
        return f"converged at {result.converged_at[i, j]}"
    return "no convergence"


def paths_png(result: RaceResult, lr_index: Sequence[int], colours: Sequence[str], path: str | Path) -> Path:
    """Write the contour plot of ``result.landscape`` with optimizer ``i``'s path at lr ``lr_index[i]``."""
    plt = _pyplot()
    xs, ys, z = surface(result)
    floor = min(float(z.min()), 0.0) if result.landscape.minima else float(z.min())
    gap = z - floor + 1e-3
    levels = np.logspace(np.log10(gap.min()), np.log10(gap.max()), 30)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=80)
    ax.contourf(xs, ys, gap, levels=levels, norm="log", cmap="Greys_r", alpha=0.6)
    ax.contour(xs, ys, gap, levels=levels, norm="log", colors="k", linewidths=0.3, alpha=0.5)
    for i, (name, j, colour) in enumerate(zip(result.names, lr_index, colours)):
        p = result.paths[i, j]
        lr = result.learning_rates[i, j]
        # Earlier paths are drawn wider, so a path that a later one covers still shows at its edges.
        width = 1.2 + 1.2 * (len(result.names) - 1 - i)
        ax.plot(p[:, 0], p[:, 1], "-", color=colour, lw=width, label=f"{name} (lr {lr:.2g}): {outcome(result, i, j)}")
        ax.plot(p[-1, 0], p[-1, 1], "o", color=colour, ms=4)
    for m in result.landscape.minima:
        ax.plot(*m, "*", color="white", mec="k", ms=12)
    ax.plot(*result.landscape.start, "ks", ms=5)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    steps = result.paths.shape[2] - 1
    ax.set_title(f"{result.landscape.name}: {steps} steps, converged = within {result.tol:g} of a minimum")
    ax.legend(loc="lower left", fontsize=7, framealpha=0.85)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def stability_png(results: Sequence[RaceResult], colours: Sequence[str], path: str | Path) -> Path:
    """Write final loss vs learning rate, one panel per landscape; diverged runs are x's on the top edge."""
    plt = _pyplot()
    cols = min(3, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=80, squeeze=False)
    for ax, r in zip(axes.flat, results):
        final = r.losses[:, :, -1].astype(np.float64)
        floor = max(float(np.nanmax(final[r.diverged_at < 0], initial=1.0)) * 10, 1.0)
        for i, (name, colour) in enumerate(zip(r.names, colours)):
            ok = r.diverged_at[i] < 0
            lr = r.learning_rates[i]
            ax.plot(lr[ok], np.maximum(final[i, ok], 1e-12), "-o", ms=2.5, color=colour, label=name)
            ax.plot(lr[~ok], np.full((~ok).sum(), floor * 10.0**i), "x", color=colour, ms=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{r.landscape.name} (x = diverged)", fontsize=9)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_ylabel(f"loss after {r.losses.shape[2] - 1} steps", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(results) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


__all__ = ["outcome", "paths_png", "stability_png", "surface"]
