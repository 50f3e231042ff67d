"""``gradkit schedules --out runs/schedules.png``: the lecture's learning-rate schedules on one figure.

Draws constant, step decay, cosine annealing, warmup + cosine, 1-cycle and SGDR over the same run,
all peaking at ``--peak``. Needs matplotlib (``pip install 'gradkit[plot]'``), imported only here.
"""

from __future__ import annotations

import argparse
import sys

import jax.numpy as jnp
import numpy as np

from gradkit import _checks, _style, schedules
from gradkit.cli._output import check_writable, require, staged_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="runs/schedules.png", help="where to write the PNG (default: runs/schedules.png)"
    )
    parser.add_argument("--steps", type=int, default=1000, help="length of the run in steps (default: 1000)")
    parser.add_argument("--peak", type=float, default=0.1, help="the peak learning rate (default: 0.1)")


def curves(steps: int, peak: float) -> dict[str, tuple[str, np.ndarray]]:
    """Each schedule's name -> (its formula, its learning rate at steps 0 .. steps - 1)."""
    warmup = max(1, steps // 20)
    chosen = {
        "constant": ("lr = a0", schedules.constant(peak)),
        "step decay": ("a0 * 0.1^floor(t / (T/3))", schedules.step_decay(peak, max(1, steps // 3))),
        "cosine annealing": ("a0 (1 + cos(pi t / T)) / 2", schedules.cosine_annealing(peak, steps)),
        "warmup + cosine": (f"linear for {warmup} steps, then cosine", schedules.warmup_cosine(peak, warmup, steps)),
        "1-cycle": ("up to a0 in 30%, cosine down", schedules.one_cycle(peak, steps)),
        "SGDR": ("cosine restarts, periods T/7, 2T/7, 4T/7", schedules.cosine_restarts(peak, max(1, steps // 7), 2)),
    }
    t = jnp.arange(steps, dtype=jnp.int32)
    return {name: (formula, np.asarray(sched(t))) for name, (formula, sched) in chosen.items()}


def run(args: argparse.Namespace) -> int:
    if args.steps < 10:
        print(f"gradkit schedules: error: --steps must be >= 10, got {args.steps}", file=sys.stderr)
        return 2
    _checks.non_negative("--peak", args.peak)
    check_writable("--out", args.out, directory=False)
    require("matplotlib", "plot", "gradkit schedules")
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams.update(_style.RC)
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True, sharey=True)
    for ax, (name, (formula, lr)) in zip(axes.flat, curves(args.steps, args.peak).items()):
        ax.plot(np.arange(args.steps), lr, lw=2, color=_style.BLUE)
        ax.set_title(f"{name}\n{formula}", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("step t")
    for ax in axes[:, 0]:
        ax.set_ylabel("learning rate")
    fig.suptitle(f"Learning-rate schedules over {args.steps} steps (gk.schedules)")
    with staged_file(args.out) as tmp:
        fig.savefig(tmp, dpi=100)
    print(f"wrote {args.out}")
    return 0
