"""``gradkit race``: race optimizers across 2-D landscapes, print a table, write pictures and a page."""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradkit import _checks, _style, landscapes
from gradkit.cli._output import check_writable, require, staged_dir, staged_file
from gradkit.race import engine

# Racers beyond the lecture's four take the rest of the Okabe-Ito palette, then Paul Tol's muted colours.
PALETTE = (
    _style.REDDISH_PURPLE,
    _style.SKY_BLUE,
    _style.BLACK,
    "#882255",
    "#999933",
    "#44AA99",
    "#332288",
    _style.YELLOW,
)
DEFAULT_LR = 1e-3
_SPEC = re.compile(r"^\s*(?:(?P<label>[^=()]+?)\s*=\s*)?(?P<call>[A-Za-z_]\w*\s*(?:\(.*\))?)\s*$", re.S)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  gradkit race                                   the lecture's four on every landscape\n"
        "  gradkit race --landscape rosenbrock --steps 2000 --html race.html\n"
        "  gradkit race -o sgd -o 'Nesterov=sgd(momentum=0.9, nesterov=True, learning_rate=0.001)' -o adamw\n"
        f"\nlandscapes: {', '.join(landscapes.LANDSCAPES)}\n"
        "optimizers: any gk function whose first argument is learning_rate "
        f"({', '.join(sorted(engine.known_optimizers()))})"
    )
    parser.add_argument(
        "--landscape",
        "-l",
        action="append",
        metavar="NAME",
        help="a landscape to race on (repeat, or comma-separate); default: all of them",
    )
    parser.add_argument(
        "--optimizer",
        "-o",
        action="append",
        metavar="SPEC",
        help="[LABEL=]NAME[(KEY=VALUE, ...)], e.g. 'Momentum=sgd(momentum=0.9)'; learning_rate=X "
        "sets the pictured lr (default: the function's own default, else 1e-3). Repeat for "
        "more; default: SGD, Momentum, RMSProp, Adam as in the lecture",
    )
    parser.add_argument("--steps", type=int, default=1000, help="updates per run (default 1000)")
    parser.add_argument(
        "--lrs",
        default="1e-4:1:32",
        metavar="MIN:MAX:COUNT",
        help="the log-spaced learning-rate grid every optimizer runs (default 1e-4:1:32); each "
        "optimizer's pictured lr replaces the grid point nearest to it",
    )
    parser.add_argument(
        "--tol", type=float, default=1e-2, help="converged = within this distance of a global minimum (default 1e-2)"
    )
    parser.add_argument(
        "--out",
        default="runs/race",
        metavar="DIR",
        help="folder for race_<landscape>.png and stability.png (default runs/race)",
    )
    parser.add_argument("--no-plots", action="store_true", help="print the table only, write no PNGs")
    parser.add_argument("--html", metavar="FILE", help="also write the interactive page (self-contained) here")


def parse_racer(spec: str, index: int = 0) -> engine.Racer:
    """``"[LABEL=]NAME[(KEY=VALUE, ...)]"`` as a Racer; values are Python literals."""
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"--optimizer must look like [LABEL=]NAME[(KEY=VALUE, ...)], got {spec!r}")
    try:
        tree = ast.parse(m["call"].strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"--optimizer must look like [LABEL=]NAME[(KEY=VALUE, ...)], got {spec!r}") from None
    kwargs: dict[str, Any] = {}
    if isinstance(tree, ast.Call):
        if tree.args or not isinstance(tree.func, ast.Name) or any(k.arg is None for k in tree.keywords):
            raise ValueError(f"--optimizer takes keyword arguments only (KEY=VALUE), got {spec!r}")
        name = tree.func.id
        for k in tree.keywords:
            if k.arg is None:  # refused above; says so to the type checker
                continue
            try:
                kwargs[k.arg] = ast.literal_eval(k.value)
            except ValueError:
                raise ValueError(
                    f"--optimizer values must be Python literals, got {ast.unparse(k.value)!r} for {k.arg} in {spec!r}"
                ) from None
    elif isinstance(tree, ast.Name):
        name = tree.id
    else:  # a keyword such as ``None`` or ``True``
        raise ValueError(f"--optimizer must look like [LABEL=]NAME[(KEY=VALUE, ...)], got {spec!r}")
    known = engine.known_optimizers()
    if name not in known:
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {', '.join(sorted(known))}")
    default = inspect.signature(known[name]).parameters["learning_rate"].default
    default = DEFAULT_LR if default is inspect.Parameter.empty else default
    default = 1.0 if default is None else default  # lbfgs: the line search picks the step, starting at 1
    lr = kwargs.pop("learning_rate", default)
    with _checks.aliases(learning_rate=f"learning_rate in --optimizer {spec!r}"):
        _checks.learning_rate(lr)
    lr = float(lr)
    with _checks.aliases(**{k: f"{k} in --optimizer {spec!r}" for k in kwargs}):
        engine.optimizer(name, **kwargs)  # fails now on bad keyword arguments
    label = (m["label"] or "").strip() or m["call"].strip()
    lecture = {r.label: r for r in engine.LECTURE}
    colour = lecture[label].colour if label in lecture else PALETTE[index % len(PALETTE)]
    return engine.Racer(label, name, kwargs, lr, colour)


def lr_grid(text: str) -> np.ndarray:
    """``"MIN:MAX:COUNT"`` as ``COUNT`` log-spaced learning rates."""
    try:
        lo, hi, count = text.split(":")
        lo, hi, n = float(lo), float(hi), int(count)
    except ValueError:
        raise ValueError(f"--lrs must be MIN:MAX:COUNT, e.g. 1e-4:1:32, got {text!r}") from None
    if not (0 < lo <= hi) or n < 1:
        raise ValueError(f"--lrs needs 0 < MIN <= MAX and COUNT >= 1, got {text!r}")
    return np.logspace(np.log10(lo), np.log10(hi), n)


def with_lr(grid: np.ndarray, lr: float) -> tuple[np.ndarray, int]:
    """``grid`` with its point nearest to ``lr`` (in log scale) replaced by ``lr``, and that point's index."""
    j = int(np.argmin(np.abs(np.log(grid) - np.log(max(lr, 1e-30)))))
    grid = grid.copy()
    grid[j] = lr
    return grid, j


def _progress(total: int):
    """A context manager yielding ``advance(description, completed)``: a rich bar on a terminal, else lines."""
    import contextlib

    @contextlib.contextmanager
    def plain():
        def advance(description: str, completed: int) -> None:
            print(f"  {description}", file=sys.stderr, flush=True)

        yield advance

    if not sys.stderr.isatty():  # a pipe or a log file gets one line per landscape, not bar redraws
        return plain()
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column
    except ImportError:
        return plain()

    @contextlib.contextmanager
    def bar():
        columns = (
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            # The description gives way first at 80 columns, never the times.
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
        )
        with Progress(*columns, transient=True, expand=True) as progress:
            task = progress.add_task("racing", total=total)
            yield lambda description, completed: progress.update(task, completed=completed, description=description)

    return bar()


def print_table(results: Sequence[engine.RaceResult], chosen: Sequence[int]) -> None:
    """One row per landscape and optimizer at its pictured learning rate."""
    header = ("landscape", "optimizer", "lr", "converged at step", "evaluations", "final loss", "diverged")
    rows = []
    for r in results:
        for i, name in enumerate(r.names):
            j = chosen[i]
            c, d = int(r.converged_at[i, j]), int(r.diverged_at[i, j])
            rows.append(
                (
                    r.landscape.name,
                    name,
                    f"{r.learning_rates[i, j]:.3g}",
                    "-" if c < 0 else str(c),
                    "-" if c < 0 or r.evaluations is None else str(int(r.evaluations[i, j, c])),
                    "-" if d >= 0 else f"{r.losses[i, j, -1]:.3g}",
                    f"at step {d}" if d >= 0 else "no",
                )
            )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        for row in (header, *rows):
            print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        return
    table = Table(
        title=f"optimizer race ({results[0].paths.shape[2] - 1} steps, converged = within "
        f"{results[0].tol:g} of a minimum; evaluations = gradients computed to get there)"
    )
    for h in header:
        table.add_column(h, justify="left" if h in ("landscape", "optimizer") else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    needed = sum(max(len(str(x)) for x in col) + 3 for col in zip(header, *rows)) + 1
    if console.width < needed:  # a pipe gets 80 columns; never cut an optimizer's name
        console = Console(width=needed)
    console.print(table)


def run(args: argparse.Namespace) -> int:
    try:
        chosen_names = args.landscape or list(landscapes.LANDSCAPES)
        names = [n.strip() for arg in chosen_names for n in arg.split(",") if n.strip()]
        lands = [landscapes.get(n) for n in names]
        racers = [parse_racer(s, k) for k, s in enumerate(args.optimizer)] if args.optimizer else list(engine.LECTURE)
        labels = [r.label for r in racers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"optimizer labels must differ, got {labels}; name them with LABEL=...")
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        _checks.positive("--tol", args.tol)
        base = lr_grid(args.lrs)
        if not args.no_plots:
            check_writable("--out", args.out, directory=True)
        if args.html:
            check_writable("--html", args.html, directory=False)
    except (ValueError, TypeError) as e:
        print(f"gradkit race: error: {e}", file=sys.stderr)
        return 2
    if not args.no_plots:
        require("matplotlib", "plot", "gradkit race's pictures (or pass --no-plots)")
    grids, chosen = zip(*(with_lr(base, r.learning_rate) for r in racers))
    optimizers = {r.label: engine.optimizer(r.name, **r.kwargs) for r in racers}
    colours = [r.colour for r in racers]
    results = []
    with _progress(len(lands)) as advance:
        for k, land in enumerate(lands):
            advance(f"racing {land.name} ({k + 1}/{len(lands)})", k)
            results.append(engine.race(land, optimizers, dict(zip(labels, grids)), steps=args.steps, tol=args.tol))
    print_table(results, chosen)
    written = []
    if not args.no_plots:
        from gradkit.race import plots

        out = Path(args.out)
        with staged_dir(out) as tmp:
            for r in results:
                plots.paths_png(r, chosen, colours, tmp / f"race_{r.landscape.name}.png")
                written.append(out / f"race_{r.landscape.name}.png")
            plots.stability_png(results, colours, tmp / "stability.png")
            written.append(out / "stability.png")
    if args.html:
        from gradkit.race import page

        with staged_file(args.html) as tmp:
            page.write_page(results, [chosen] * len(results), colours, tmp)
        written.append(Path(args.html))
    for path in written:
        print(f"wrote {path}")
    return 0
