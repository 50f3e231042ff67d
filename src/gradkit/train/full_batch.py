"""Full-batch training (the lecture's advice for small datasets): the whole regularized training loss,
minimized by L-BFGS with ``gk.minimize`` (``gradkit train --optimizer lbfgs``).

The objective is the recipe's, on all training examples at once::

    L(W) = mean_i CE(f(x_i; W), y_i) + l2 * sum W^2        (weights only, not biases)

scikit-learn's ``LogisticRegression(C=C)`` (L2, multinomial, intercept not penalized) minimizes
``C * sum_i CE_i + 0.5 * sum W^2``; divided by ``C * n`` that is ``L`` with ``l2 = 1 / (2 C n)``
(``l2_from_sklearn_c``): the same minimizer, and objectives that differ by the factor ``C * n``.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradkit.core import GradientTransformation
from gradkit.minimize import MinimizeResult, minimize
from gradkit.train.data import Split
from gradkit.train.loop import evaluate, regularized_loss
from gradkit.train.models import Model

Params = Any


class FullBatchResult(NamedTuple):
    """The solve, the objective's value at the end, and train/val/test loss and accuracy there."""

    params: Params
    solve: MinimizeResult
    objective: float
    metrics: dict[str, float]
    wall_time: float  # seconds, compile included
    compile_time: float  # seconds spent compiling (lowering + XLA)


def l2_from_sklearn_c(c: float, n_train: int) -> float:
    """The ``l2`` whose objective has the minimizer of ``LogisticRegression(C=c)`` on ``n_train`` examples:
    ``1 / (2 c n_train)``.

    >>> l2_from_sklearn_c(1.0, 1000)   # sklearn's default C, 1000 examples
    0.0005
    """
    if not c > 0 or not n_train > 0:
        raise ValueError(f"C and n_train must be > 0, got C={c!r}, n_train={n_train!r}")
    return 1.0 / (2.0 * c * n_train)


def objective(model: Model, data: Split, l2: float):
    """``params -> L(W)`` on the whole training set (the function L-BFGS minimizes)."""
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    weights = jnp.ones(y.shape[0], x.dtype)
    return lambda params: regularized_loss(model, params, x, y, weights, l2)


def fit_full_batch(
    model: Model,
    data: Split,
    *,
    l2: float,
    optimizer: GradientTransformation | None = None,
    max_iter: int = 500,
    tol: float = 1e-5,
    seed: int = 0,
) -> FullBatchResult:
    """Minimize ``L(W)`` over the whole training set with ``gk.minimize`` (default optimizer ``gk.lbfgs()``).

    >>> result = fit_full_batch(models.linear(64, 10), parts, l2=l2_from_sklearn_c(1.0, len(parts.y_train)))
    """
    params = model.init(jax.random.key(seed))
    params = jax.tree.map(lambda p: p.astype(data.x_train.dtype), params)
    f = objective(model, data, l2)
    solve = jax.jit(lambda p: minimize(f, p, optimizer, max_iter=max_iter, tol=tol))
    began = time.perf_counter()
    compiled = solve.lower(params).compile()
    compile_time = time.perf_counter() - began
    result = jax.block_until_ready(compiled(params))
    wall_time = time.perf_counter() - began
    metrics = {}
    for split in ("train", "val", "test"):
        loss, acc = evaluate(model, result.params, getattr(data, f"x_{split}"), getattr(data, f"y_{split}"))
        metrics[f"{split}_loss"], metrics[f"{split}_acc"] = float(loss), float(acc)
    return FullBatchResult(result.params, result, float(result.value), metrics, wall_time, compile_time)


__all__ = ["FullBatchResult", "fit_full_batch", "l2_from_sklearn_c", "objective"]
