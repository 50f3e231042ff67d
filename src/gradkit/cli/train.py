"""``gradkit train``: the lecture's full training recipe on real data, with the generalization gap measured.

    gradkit train                                          # MLP on digits: Kaiming, AdamW, warmup + cosine
    gradkit train --model linear --epochs 50               # the linear softmax classifier f = Wx + b
    gradkit train --optimizer sgd --momentum 0.9 --lr 0.1 --schedule step_decay --schedule-arg step_size=400
    gradkit train --sweep weight_decay=0,1e-4,1e-3,1e-2,1e-1 --out runs/wd    # one vmapped program
    gradkit train --data mine.npz --out runs/mine          # your own x (n, ...), y (n,) integer labels
    gradkit train --augment none                           # no random 1-pixel shifts of the training images

Every optimizer of ``gk.optimizers`` and every schedule of ``gk.schedules`` is selectable by name.
Everything is validated before training starts; ``--out DIR`` is written whole at the end of the run
(metrics.json, curves.png and params.npz, which ``gk.train.load`` reads back), also when the run diverged.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gradkit import _checks, optimizers, schedules
from gradkit.cli import train_full_batch
from gradkit.cli._output import check_writable, require, staged_dir
from gradkit.train import data as datasets
from gradkit.train import loop, models, report

# Built from the modules, so a new optimizer or schedule is selectable without touching this file.
# Full-batch optimizers (L-BFGS) run in train_full_batch instead of the mini-batch epochs.
OPTIMIZERS: dict[str, Callable] = {k: v for k, v in optimizers.BY_NAME.items() if k not in train_full_batch.OPTIMIZERS}
# A schedule is a function whose first argument is its learning-rate value (value, init_value, peak_value, ...).
SCHEDULES: dict[str, Callable] = {
    name: fn
    for name in schedules.__all__
    if inspect.isfunction(fn := getattr(schedules, name))
    and next(iter(inspect.signature(fn).parameters)).endswith("value")
}
# CLI flag -> optimizer argument, for the float hyperparameters (these are data: traced, sweepable).
HYPERPARAMS = {
    "lr": "learning_rate",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "b1": "b1",
    "b2": "b2",
    "eps": "eps",
    "decay": "decay",
    "l2": "l2",
}
DEFAULT_LR = {"sgd": 0.1, "adagrad": 0.05}  # the lecture's table: 0.1 for SGD(+momentum), 1e-3 for Adam-like
RECIPE_LR = 1e-3
# The default run's AdamW values and length (with --augment shift on the digits), picked by mean
# validation accuracy over the splits of seeds 0-4, ties broken by validation loss (docs/training.md).
RECIPE = {"adamw": {"lr": 1e-2, "weight_decay": 0.1}}
EPOCHS = 120
AUGMENTS = ("none", "shift")
MAX_SHIFT = 1  # --augment shift: each training image moves by up to one pixel in each direction


class UsageError(ValueError):
    """A bad argument or input file: printed as ``gradkit train: error: ...`` with exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = parser.add_argument_group("data")
    d.add_argument(
        "--data",
        metavar="PATH",
        help="an .npz with x (n, features...) and integer labels y (n,); default: scikit-learn's digits",
    )
    d.add_argument(
        "--train-size", type=int, metavar="N", help="train on a random N-example subset (to watch overfitting)"
    )
    d.add_argument("--val-fraction", type=float, default=0.15, help="validation share of the data (default 0.15)")
    d.add_argument("--test-fraction", type=float, default=0.15, help="test share of the data (default 0.15)")
    d.add_argument("--seed", type=int, default=0, help="seed of the split, the init and the batch order (default 0)")
    d.add_argument(
        "--augment",
        help=f"training-batch augmentation: shift (move each image by up to {MAX_SHIFT} pixel, "
        "images only) or none; default shift for the MLP on the digits, none otherwise",
    )
    m = parser.add_argument_group("model")
    m.add_argument(
        "--model", default="mlp", help="mlp (ReLU, Kaiming init) or linear (softmax classifier); default mlp"
    )
    m.add_argument("--hidden", default="1024", help="MLP hidden widths, comma-separated (default 1024)")
    o = parser.add_argument_group("optimization (defaults: the lecture's recipe)")
    o.add_argument(
        "--optimizer",
        default="adamw",
        help=f"one of {', '.join(OPTIMIZERS)} (default adamw), or lbfgs (full batch, see below)",
    )
    o.add_argument(
        "--lr",
        type=float,
        help=f"(peak) learning rate (default: adamw {RECIPE['adamw']['lr']:g}, sgd 0.1, adagrad 0.05, "
        f"others their own default, else {RECIPE_LR:g})",
    )
    o.add_argument("--momentum", type=float, help="momentum (sgd)")
    o.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd)")
    o.add_argument("--b1", type=float, help="first-moment decay (adam, adamw)")
    o.add_argument("--b2", type=float, help="second-moment decay (adam, adamw)")
    o.add_argument("--eps", type=float, help="denominator epsilon (adagrad, rmsprop, adam, adamw)")
    o.add_argument("--decay", type=float, help="squared-gradient decay (rmsprop)")
    o.add_argument(
        "--weight-decay",
        type=float,
        help=f"weight decay (default: adamw {RECIPE['adamw']['weight_decay']:g}, others 0); masked off "
        "biases if the optimizer takes a mask",
    )
    o.add_argument(
        "--l2",
        type=float,
        default=0.0,
        help="L2 penalty added to the loss: l2 * sum W^2 over weights, not biases (default 0)",
    )
    o.add_argument("--schedule", default="warmup_cosine", help=f"one of {', '.join(SCHEDULES)} (default warmup_cosine)")
    o.add_argument(
        "--warmup-epochs", type=float, help="warmup length for schedules with warmup_steps (default: 5%% of --epochs)"
    )
    o.add_argument(
        "--schedule-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another schedule argument, in steps where it is a length (step_size=400, milestones=300,600)",
    )
    o.add_argument("--epochs", type=int, default=EPOCHS, help=f"passes over the training set (default {EPOCHS})")
    o.add_argument(
        "--batch-size", type=int, default=64, help="mini-batch size (default 64; the last batch may be partial)"
    )
    r = parser.add_argument_group("runs and output")
    r.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help=f"run once per value, all vmapped into one program; NAME in {', '.join(HYPERPARAMS)}. "
        "Several --sweep flags of equal length pair their values run by run",
    )
    r.add_argument(
        "--out",
        metavar="DIR",
        help="write metrics.json, curves.png and params.npz there at the end (gk.train.load(DIR) reads the params)",
    )
    r.add_argument("--no-progress", action="store_true", help="plain lines instead of a progress bar")
    train_full_batch.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.optimizer in train_full_batch.OPTIMIZERS:
        return train_full_batch.run(args)
    began = time.perf_counter()
    try:
        plan = _plan(args)
    except (UsageError, ValueError, TypeError) as e:
        print(f"gradkit train: error: {e}", file=sys.stderr)
        return 2
    _print_header(plan)
    with _Progress(args.epochs, plan["sweep_labels"], enabled=not args.no_progress) as progress:
        result = loop.fit(
            plan["model"],
            plan["make_tx"],
            plan["hparams"],
            plan["data"],
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            augment=plan["augment"],
            on_epoch=progress.update,
        )
    _print_summary(result, plan)
    if args.out:
        _write_outputs(args.out, result, plan, time.perf_counter() - began)
    diverged = report.diverged_epochs(result)
    if diverged:
        print(f"gradkit train: the run diverged ({diverged})", file=sys.stderr)
        return 1
    return 0


# -- validation: everything is checked here, before training or touching --out ------------------------


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    if args.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown --optimizer {args.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if args.schedule not in SCHEDULES:
        raise UsageError(f"unknown --schedule {args.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if args.model not in ("mlp", "linear"):
        raise UsageError(f"unknown --model {args.model!r}; choose mlp or linear")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup_epochs is not None:
        _checks.non_negative("--warmup-epochs", args.warmup_epochs)
    if args.out is not None:
        check_writable("--out", args.out, directory=True)
        require("matplotlib", "plot", "gradkit train --out (its curves.png)")

    # Optimizer: the float hyperparameters given (and the swept ones) are data; the rest keep their defaults.
    optimizer = OPTIMIZERS[args.optimizer]
    accepted = inspect.signature(optimizer).parameters
    given = {flag: getattr(args, flag) for flag in HYPERPARAMS if getattr(args, flag) is not None}
    for flag, value in RECIPE.get(args.optimizer, {}).items():
        given.setdefault(flag, value)
    own = inspect.signature(optimizer).parameters["learning_rate"].default  # e.g. adadelta's 1.0, lion's 1e-4
    given.setdefault("lr", DEFAULT_LR.get(args.optimizer, RECIPE_LR if own is inspect.Parameter.empty else own))
    sweep = _parse_sweep(args.sweep)
    for flag in [*given, *sweep]:
        if flag != "l2" and HYPERPARAMS[flag] not in accepted:
            raise UsageError(
                f"--{flag.replace('_', '-')}: {args.optimizer} has no argument {HYPERPARAMS[flag]!r} "
                f"(its arguments: {', '.join(accepted)})"
            )
    if args.nesterov and "nesterov" not in accepted:
        raise UsageError(f"--nesterov: {args.optimizer} has no Nesterov option")
    hparams = {HYPERPARAMS[flag]: value for flag, value in given.items()}
    n_runs = len(next(iter(sweep.values()))) if sweep else 1
    for flag, values in sweep.items():
        hparams[HYPERPARAMS[flag]] = values
    if sweep:
        hparams = {k: np.broadcast_to(np.asarray(v, np.float32), (n_runs,)) for k, v in hparams.items()}
    static: dict[str, Any] = {"nesterov": True} if args.nesterov else {}
    if "mask" in accepted:
        static["mask"] = models.weights_only
    for value in np.atleast_1d(hparams.get("l2", 0.0)):
        _checks.non_negative("--l2", float(value))
    # The optimizer's own arguments are checked now, before the data is loaded (the schedule's, below).
    flags = {arg: f"--{flag.replace('_', '-')}" for flag, arg in HYPERPARAMS.items()}
    with _checks.aliases(**flags):
        for r in range(n_runs):
            run_hparams = {k: (float(v[r]) if sweep else v) for k, v in hparams.items() if k != "l2"}
            optimizer(**run_hparams, **static)

    # Data.
    if args.data:
        x, y = datasets.load_npz(args.data, flatten=False)
        image_shape, x = x.shape[1:], x.reshape(x.shape[0], -1)
    else:
        (x, y), image_shape = datasets.load_digits(), (8, 8)
    # Shifts are part of the MLP recipe; a linear classifier cannot absorb them (82-86% test accuracy, not 94-99%).
    augment_name = args.augment or ("shift" if args.model == "mlp" and not args.data else "none")
    if augment_name not in AUGMENTS:
        raise UsageError(f"unknown --augment {augment_name!r}; choose one of: {', '.join(AUGMENTS)}")
    if augment_name == "shift" and len(image_shape) != 2:
        raise UsageError(
            f"--augment shift needs images: x of shape (n, height, width); --data {args.data!r} has x of "
            f"shape (n, {', '.join(map(str, image_shape))}) (pass --augment none)"
        )
    parts = datasets.split(x, y, args.val_fraction, args.test_fraction, args.seed)
    if args.train_size is not None:
        parts = datasets.subset(parts, args.train_size, args.seed)
    # With shifts, standardize with the statistics of the shifted training images (what the network sees).
    max_shift = MAX_SHIFT if augment_name == "shift" else 0
    stats = datasets.feature_stats(parts.x_train, image_shape, max_shift)
    augment = datasets.random_shift(image_shape, MAX_SHIFT, *stats) if max_shift else None
    parts = datasets.standardize(parts, stats)
    n_train, n_features = parts.x_train.shape
    steps_per_epoch = datasets.batches_per_epoch(n_train, args.batch_size)
    total_steps = steps_per_epoch * args.epochs

    # Model.
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",")) if args.model == "mlp" else ()
    except ValueError:
        raise UsageError(f"--hidden must be comma-separated widths like 512,256, got {args.hidden!r}") from None
    if args.model == "mlp":
        model = models.mlp(n_features, hidden, parts.num_classes)
    else:
        model = models.linear(n_features, parts.num_classes)

    # Schedule: its first argument is the learning rate; lengths are filled in from the run's steps.
    schedule = SCHEDULES[args.schedule]
    schedule_kwargs = _schedule_kwargs(schedule, args, steps_per_epoch, total_steps)
    make_tx = _make_tx(optimizer, schedule, schedule_kwargs, static)
    # Build each run once with concrete values: bad hyperparameters fail here, named by their flags.
    schedule_params = list(inspect.signature(schedule).parameters)
    flags |= {name: f"--schedule-arg {name}" for name in schedule_params[1:]}
    flags |= {"total_steps": "--epochs", "warmup_steps": "--warmup-epochs", schedule_params[0]: "--lr"}
    with _checks.aliases(**flags):
        for r in range(n_runs):
            make_tx({k: (float(v[r]) if sweep else v) for k, v in hparams.items()})
    shown = {HYPERPARAMS[flag]: value for flag, value in given.items()} | {HYPERPARAMS[f]: v for f, v in sweep.items()}
    return {
        "args": args,
        "model": model,
        "make_tx": make_tx,
        "hparams": hparams,
        "data": parts,
        "sweep": sweep,
        "augment": augment,
        "augment_name": augment_name,
        "sweep_labels": _sweep_labels(sweep, n_runs),
        "schedule_kwargs": schedule_kwargs,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "hidden": hidden,
        "shown_hparams": shown,  # as typed: the float32 copies would print as 9.999999747378752e-05
    }


def _make_tx(optimizer: Callable, schedule: Callable, schedule_kwargs: dict, static: dict) -> loop.MakeTx:
    def make_tx(hparams):
        kwargs = {k: v for k, v in hparams.items() if k not in ("learning_rate", "l2")}
        return optimizer(schedule(hparams["learning_rate"], **schedule_kwargs), **kwargs, **static)

    return make_tx


def _schedule_kwargs(schedule: Callable, args: argparse.Namespace, steps_per_epoch: int, total_steps: int) -> dict:
    params = list(inspect.signature(schedule).parameters.values())[1:]
    names = {p.name for p in params}
    given = {}
    for item in args.schedule_arg:
        name, sep, text = item.partition("=")
        if not sep or name not in names:
            raise UsageError(
                f"--schedule-arg {item!r}: {args.schedule} takes NAME=VALUE with NAME in {', '.join(sorted(names))}"
            )
        given[name] = _number_or_list(name, text)
    warmup_epochs = 0.05 * args.epochs if args.warmup_epochs is None else args.warmup_epochs
    filled = {"total_steps": total_steps, "warmup_steps": round(warmup_epochs * steps_per_epoch)}
    kwargs = {}
    for p in params:
        if p.name in given:
            kwargs[p.name] = given[p.name]
        elif p.name in filled:
            kwargs[p.name] = filled[p.name]
        elif p.default is inspect.Parameter.empty:
            raise UsageError(
                f"--schedule {args.schedule} needs {p.name}: pass --schedule-arg {p.name}=VALUE "
                f"(lengths in steps; this run has {total_steps} steps, {steps_per_epoch} per epoch)"
            )
    return kwargs


def _number_or_list(name: str, text: str) -> Any:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--schedule-arg {name}={text!r}: expected a number or comma-separated numbers") from None
    values = [int(v) if v.is_integer() else v for v in values]
    return values if "," in text else values[0]


def _parse_sweep(items: list[str]) -> dict[str, list[float]]:
    sweep: dict[str, list[float]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.replace("-", "_")
        name = "lr" if name == "learning_rate" else name
        if not sep or name not in HYPERPARAMS:
            raise UsageError(f"--sweep {item!r}: expected NAME=V1,V2,... with NAME in {', '.join(HYPERPARAMS)}")
        try:
            sweep[name] = [float(v) for v in text.split(",")]
        except ValueError:
            raise UsageError(f"--sweep {item!r}: the values must be numbers separated by commas") from None
    if len({len(v) for v in sweep.values()}) > 1:
        raise UsageError(
            f"the --sweep flags must list equally many values (they pair run by run), got "
            f"{ {k: len(v) for k, v in sweep.items()} }"
        )
    return sweep


def _sweep_labels(sweep: dict[str, list[float]], n_runs: int) -> list[str]:
    return [", ".join(f"{k}={v[r]:g}" for k, v in sweep.items()) for r in range(n_runs)] if sweep else []


# -- output ---------------------------------------------------------------------------------------


def _write_outputs(out: str, result: loop.Result, plan: dict, wall_time: float) -> None:
    """Write into a temporary folder next to ``out``, then move it into place: never a partial ``out``."""
    args = plan["args"]
    with staged_dir(out) as tmp:
        report.write_metrics(tmp / "metrics.json", result, _config(plan), wall_time)
        report.save_params(tmp / "params.npz", result)
        n_train = len(plan["data"].y_train)
        title = (
            f"{args.model} on {args.data or 'digits'}, {n_train} training examples, {args.optimizer} + {args.schedule}"
        )
        if plan["sweep"]:
            sweep = plan["sweep"]
            labels = plan["sweep_labels"] if len(sweep) > 1 else [f"{v:g}" for v in next(iter(sweep.values()))]
            report.plot_sweep(tmp / "curves.png", result, " / ".join(sweep), labels, title)
        else:
            report.plot_curves(tmp / "curves.png", result, title)
    print(f"wrote {os.path.join(out, 'metrics.json')}, curves.png and params.npz (gk.train.load({out!r}))")
    if report.diverged_epochs(result):
        print("note: metrics.json holds null for the values that were NaN or infinite (see its non_finite entry)")


def _config(plan: dict) -> dict:
    args = plan["args"]
    data = plan["data"]
    return {
        **{k: v for k, v in vars(args).items() if k != "func"},
        "augment": plan["augment_name"],
        "data_source": args.data or "sklearn.datasets.load_digits",
        "sizes": {
            "train": len(data.y_train),
            "val": len(data.y_val),
            "test": len(data.y_test),
            "features": int(data.x_train.shape[1]),
            "classes": data.num_classes,
        },
        "hidden": list(plan["hidden"]),
        "hparams": plan["shown_hparams"],
        "schedule_kwargs": plan["schedule_kwargs"],
        "steps_per_epoch": plan["steps_per_epoch"],
        "total_steps": plan["total_steps"],
        "runs": plan["sweep_labels"] or None,
    }


def _print_header(plan: dict) -> None:
    args, data = plan["args"], plan["data"]
    sizes = (data.x_train.shape[1], *plan["hidden"], data.num_classes)
    arch = f"mlp {'-'.join(map(str, sizes))}" if args.model == "mlp" else "linear"
    hp = ", ".join(f"{k}={v}" for k, v in plan["shown_hparams"].items() if k != "l2")
    l2 = plan["shown_hparams"].get("l2", 0.0)
    penalty = f" + l2 * sum W^2 (l2={l2})" if np.any(np.asarray(l2) != 0) else ""
    print(
        f"data {args.data or 'digits'}: {len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test, "
        f"{data.x_train.shape[1]} features, {data.num_classes} classes (standardized)"
        + (f"; training batches randomly shifted by up to {MAX_SHIFT} pixel" if plan["augment"] else "")
    )
    print(
        f"model {arch}; loss: cross-entropy{penalty}; {args.optimizer}({hp}) "
        f"with {args.schedule}({plan['schedule_kwargs']}); "
        f"{args.epochs} epochs x {plan['steps_per_epoch']} steps of batch {args.batch_size}"
    )


def _print_summary(result: loop.Result, plan: dict) -> None:
    s = report.summary(result)
    labels = plan["sweep_labels"] or ["run"]
    columns = [
        "train acc",
        "val acc",
        "gap",
        "loss gap",
        "test acc",
        "best epoch",
        "gap @best",
        "loss gap @best",
        "test acc @best",
    ]
    keys = [
        "final_train_acc",
        "final_val_acc",
        "final_gap",
        "final_loss_gap",
        "final_test_acc",
        "best_epoch",
        "best_gap",
        "best_loss_gap",
        "best_test_acc",
    ]
    rows = []
    for r in range(len(labels)):
        cell = lambda key, r=r: np.asarray(s[key], dtype=float).reshape(-1)[r]  # null (diverged) -> nan
        rows.append([labels[r]] + [f"{int(cell(k))}" if k == "best_epoch" else f"{cell(k):.4f}" for k in keys])
    title = (
        f"gradkit train: {plan['args'].epochs} epochs in {result.wall_time:.1f} s (compile included); "
        "gap = train - val accuracy, loss gap = val - train loss, @best = best-validation-loss checkpoint"
    )
    widths = [max(len(x) for x in col) for col in zip(["", *columns], *rows)]
    try:
        if not sys.stdout.isatty():
            raise ImportError
        from rich.console import Console
        from rich.table import Table

        console = Console()
        if console.width < sum(widths) + 3 * len(widths) + 1:  # rich would truncate the numbers
            raise ImportError
    except ImportError:
        print(title)
        for line in [["", *columns], *rows]:
            print("  ".join(x.rjust(w) for x, w in zip(line, widths)))
        return
    table = Table(title=title)
    for c in ["", *columns]:
        table.add_column(c, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def progress_bar(**options: Any) -> Any:
    """The rich bar: epoch count, bar, elapsed time, ETA, then the metrics, which at 80 columns are cut first."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    return Progress(
        TextColumn("epoch"),
        MofNCompleteColumn(),
        BarColumn(bar_width=16),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
        expand=True,
        **options,
    )


class _Progress:
    """A rich progress bar on a terminal; otherwise (not a TTY, rich missing) one plain line per epoch."""

    def __init__(self, epochs: int, run_labels: list[str], enabled: bool = True) -> None:
        self.epochs, self.sweep = epochs, bool(run_labels)
        self.bar = None
        if enabled and sys.stdout.isatty():
            try:
                self.bar = progress_bar()
            except ImportError:
                return
            self.task = self.bar.add_task("train", total=epochs, metrics="compiling...")

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, epoch: int, metrics: dict[str, np.ndarray]) -> None:
        if self.sweep:
            accuracies = lambda name: " ".join(f"{v:.3f}" for v in metrics[name])
            text = f"val acc {accuracies('val_acc')}  train acc {accuracies('train_acc')}"
        else:
            text = (
                f"train loss {float(metrics['train_loss']):.4g} acc {float(metrics['train_acc']):.4f} | "
                f"val loss {float(metrics['val_loss']):.4g} acc {float(metrics['val_acc']):.4f}"
            )
        if self.bar is not None:
            self.bar.update(self.task, completed=epoch + 1, metrics=text)
        else:
            print(f"epoch {epoch + 1:3d}/{self.epochs}  {text}", flush=True)
