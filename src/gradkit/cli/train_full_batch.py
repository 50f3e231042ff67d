"""``gradkit train --optimizer lbfgs``: the whole training loss minimized full-batch by L-BFGS, in float64.

The lecture's advice for small datasets. Same data pipeline and objective as ``gradkit train`` (mean
cross-entropy + ``--l2 * sum W^2``, biases not penalized), all training examples at every step; the run
ends when the gradient's norm is ``<= --tol`` or after ``--max-iter`` iterations. With ``--l2`` unset
(0) the penalty is scikit-learn's default, ``C = 1``: ``l2 = 1 / (2 C n_train)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import numpy as np

from gradkit.train import data as datasets
from gradkit.train import models, report
from gradkit.train.full_batch import fit_full_batch, l2_from_sklearn_c

OPTIMIZERS = ("lbfgs",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("full batch (--optimizer lbfgs)")
    g.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations at most (default 500)")
    g.add_argument("--tol", type=float, default=1e-6, help="stop when ||grad||_2 <= TOL (default 1e-6)")
    g.add_argument("--memory-size", type=int, default=10, help="L-BFGS memory: the last M steps (default 10)")


def run(args: argparse.Namespace) -> int:
    import gradkit as gk

    try:
        if args.model not in ("mlp", "linear"):
            raise ValueError(f"unknown --model {args.model!r}; choose mlp or linear")
        if args.augment not in (None, "none"):
            raise ValueError("--augment: full-batch L-BFGS needs the same loss at every step; pass --augment none")
        if args.sweep:
            raise ValueError("--sweep: full-batch L-BFGS runs once; sweep --l2 by running it once per value")
        if args.max_iter < 0 or not args.tol >= 0:
            raise ValueError(f"--max-iter and --tol must be >= 0, got {args.max_iter} and {args.tol}")
        optimizer = gk.lbfgs(memory_size=args.memory_size)
        if args.data:
            x, y = datasets.load_npz(args.data)
        else:
            x, y = datasets.load_digits()
        parts = datasets.split(x, y, args.val_fraction, args.test_fraction, args.seed)
        if args.train_size is not None:
            parts = datasets.subset(parts, args.train_size, args.seed)
        hidden = tuple(int(h) for h in args.hidden.split(",")) if args.model == "mlp" else ()
    except (ValueError, TypeError) as e:
        print(f"gradkit train: error: {e}", file=sys.stderr)
        return 2
    parts = datasets.standardize(parts, datasets.feature_stats(parts.x_train))
    n_train, n_features = parts.x_train.shape
    l2 = args.l2 if args.l2 > 0 else l2_from_sklearn_c(1.0, n_train)
    if args.model == "mlp":
        model = models.mlp(n_features, hidden, parts.num_classes)
    else:
        model = models.linear(n_features, parts.num_classes)
    print(
        f"data {args.data or 'digits'}: {n_train} train / {len(parts.y_val)} val / {len(parts.y_test)} test; "
        f"model {args.model}; full-batch L-BFGS (memory {args.memory_size}, strong Wolfe) in float64 on "
        f"mean cross-entropy + {l2:.6g} * sum W^2 (sklearn C = {1 / (2 * l2 * n_train):.6g})"
    )
    with jax.enable_x64(True):
        as64 = {f: np.asarray(getattr(parts, f), np.float64) for f in ("x_train", "x_val", "x_test")}
        result = fit_full_batch(
            model, parts._replace(**as64), l2=l2, optimizer=optimizer, max_iter=args.max_iter, tol=args.tol,
            seed=args.seed,
        )  # fmt: skip
    s = result.solve
    m = result.metrics
    print(
        f"{'converged' if s.converged else 'NOT converged'} after {int(s.iterations)} iterations, "
        f"{int(s.evaluations)} gradient evaluations, {result.wall_time:.2f} s ({result.compile_time:.2f} s compiling): "
        f"objective {result.objective:.10g}, ||grad|| {float(s.grad_norm):.3g}\n"
        f"train acc {m['train_acc']:.4f}  val acc {m['val_acc']:.4f}  test acc {m['test_acc']:.4f}  "
        f"(loss {m['train_loss']:.4f} / {m['val_loss']:.4f} / {m['test_loss']:.4f})"
    )
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        payload = {
            "config": {k: v for k, v in vars(args).items() if k != "func"} | {"l2": l2},
            "versions": report.versions(),
            "solve": {
                "iterations": int(s.iterations),
                "evaluations": int(s.evaluations),
                "converged": bool(s.converged),
                "grad_norm": float(s.grad_norm),
                "objective": result.objective,
                "wall_time_s": result.wall_time,
                "compile_time_s": result.compile_time,
            },
            "metrics": m,
        }
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        print(f"wrote {os.path.join(args.out, 'metrics.json')}")
    return 0
