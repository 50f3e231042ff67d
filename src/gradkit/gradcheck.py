"""Gradient checking (lecture 3, chapter 4): compare the analytic gradient with centered differences.

For each leaf ``x`` of the params and each checked coordinate ``i``::

    numeric_i  = (f(x + h e_i) - f(x - h e_i)) / ((x_i + h) - (x_i - h))    centered difference, O(h^2)
    analytic_i = jax.grad(f)(params)_i
    error_i    = |analytic_i - numeric_i| / max(|analytic_i|, |numeric_i|, floor)

The divisor is the step actually taken in the leaf's dtype. ``floor`` is the larger of the rounding
noise of the difference quotient, ``eps_machine * (|f(x+h)| + |f(x-h)|) / (2h)``, and ``1e-4`` times the
leaf's largest gradient (the O(h^2) truncation error is not small next to a gradient of ~0): below it
two gradients cannot be told apart, so a near-zero gradient does not report a meaningless relative error.
Leaves with more than ``max_coords`` entries are checked on a random subset of coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import _checks, _tree

Params = Any

# Centered-difference step h and the largest relative error accepted, per dtype. float64: CS231n's
# h = 1e-5 and "< 1e-7 is good", with room for kinks. float32: h = 5e-3 ~ eps^(1/3), the step that
# balances O(h^2) truncation against the eps*|f|/h rounding of the difference; what remains is
# ~1e-4..1e-3 relative, so 1e-2 is the tolerance (prefer float64 when you can).
DEFAULTS = {np.dtype(np.float64): (1e-5, 1e-6), np.dtype(np.float32): (5e-3, 1e-2)}
# Gradients below this fraction of a leaf's largest are compared on that absolute scale: the O(h^2)
# truncation error of the difference is not small relative to a gradient that is (nearly) zero.
RELATIVE_FLOOR = 1e-4


class LeafCheck(NamedTuple):
    """The comparison on one leaf: worst relative error, its coordinate, and how many coordinates were checked."""

    rel_error: float
    abs_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    checked: int
    size: int
    tolerance: float


class GradCheckReport(NamedTuple):
    """Per-leaf results keyed by path (``"['dense']['w']"``), and the worst leaf overall."""

    leaves: dict[str, LeafCheck]

    @property
    def worst(self) -> str | None:
        """Path of the leaf with the largest error relative to its tolerance."""
        if not self.leaves:
            return None
        return max(self.leaves, key=lambda k: self.leaves[k].rel_error / self.leaves[k].tolerance)

    @property
    def passed(self) -> bool:
        return all(c.rel_error <= c.tolerance for c in self.leaves.values())

    def __str__(self) -> str:
        lines = [f"{'leaf':<30} {'rel. error':>11} {'tolerance':>10} {'checked':>12}  worst at"]
        for path, c in self.leaves.items():
            lines.append(
                f"{path:<30} {c.rel_error:>11.2e} {c.tolerance:>10.0e} {c.checked:>5}/{c.size:<6}  "
                f"{c.worst_index} (analytic {c.analytic:.6g}, numeric {c.numeric:.6g})"
            )
        return "\n".join(lines)


class GradCheckError(AssertionError):
    """Raised by ``check_grads`` when a leaf's relative error exceeds its tolerance; ``.report`` has the details."""

    def __init__(self, message: str, report: GradCheckReport):
        super().__init__(message)
        self.report = report


def _leaf_defaults(dtype: np.dtype, step: float | None, tolerance: float | None) -> tuple[float, float]:
    if dtype not in DEFAULTS:
        raise TypeError(
            f"check_grads works on float32 and float64 leaves, got {dtype}; cast the leaf to float32 or float64"
        )
    h, tol = DEFAULTS[dtype]
    return (h if step is None else step), (tol if tolerance is None else tolerance)


def _compare(f: Callable, leaves: list, treedef: Any, coords: list, steps: list) -> tuple[list, list, list]:
    """For every leaf at its ``coords``: the analytic gradient, the centered difference, and ``(|f+| + |f-|) / 2h``.

    One compiled program for all leaves (compiling per leaf dominated the run time).
    """

    @jax.jit
    def run(leaves: list, coords: list) -> tuple[list, list, list]:
        grads = jax.tree.leaves(jax.grad(f)(jax.tree.unflatten(treedef, leaves)))
        analytic, numeric, noise = [], [], []
        for i, (leaf, c, h) in enumerate(zip(leaves, coords, steps)):
            x = jnp.asarray(leaf)
            flat = x.reshape(-1)

            def f_at(flat_leaf: jax.Array, i: int = i, shape: tuple = x.shape) -> jax.Array:
                rest = list(leaves)
                rest[i] = flat_leaf.reshape(shape)
                return jnp.asarray(f(jax.tree.unflatten(treedef, rest)))

            def one(j: jax.Array, flat: jax.Array = flat, f_at: Callable = f_at, h: float = h):
                up, down = flat[j] + jnp.asarray(h, flat.dtype), flat[j] - jnp.asarray(h, flat.dtype)
                width = up - down  # the step actually taken, after rounding x +- h to the leaf's dtype
                f_up, f_down = f_at(flat.at[j].set(up)), f_at(flat.at[j].set(down))
                return (f_up - f_down) / width, (jnp.abs(f_up) + jnp.abs(f_down)) / width

            n, s = jax.lax.map(one, c) if c.size else (jnp.zeros(0, flat.dtype), jnp.zeros(0, flat.dtype))
            analytic.append(grads[i].reshape(-1)[c])
            numeric.append(n)
            noise.append(s)
        return analytic, numeric, noise

    return run(leaves, coords)


def check_grads(
    f: Callable[[Params], jax.Array],
    params: Params,
    *,
    step: float | None = None,
    tolerance: float | None = None,
    max_coords: int = 50,
    key: jax.Array | None = None,
    raise_on_failure: bool = True,
) -> GradCheckReport:
    """Compare ``jax.grad(f)`` with centered finite differences on every leaf of ``params``.

    ``f(params)`` must return a real scalar. ``step`` (h) and ``tolerance`` default per leaf dtype:
    float64 ``h=1e-5, tol=1e-6``; float32 ``h=5e-3, tol=1e-2``. Leaves larger than ``max_coords`` are
    checked at ``max_coords`` random coordinates drawn with ``key`` (default ``jax.random.key(0)``).
    Raises ``GradCheckError`` naming the worst leaf when an error exceeds the tolerance (unless
    ``raise_on_failure=False``); returns the per-leaf report. Unlike ``jax.test_util.check_grads``
    (which compares JVPs/VJPs along random directions) this checks coordinates, as the lecture does.

    >>> report = gk.gradcheck.check_grads(lambda p: jnp.sum(jnp.tanh(p["w"]) ** 2), {"w": w})
    >>> print(report)
    """
    for name, value in (("step", step), ("tolerance", tolerance)):
        if value is not None:
            _checks.positive(name, value)
    if not callable(f):
        raise TypeError(f"f must be a function params -> scalar loss, got {f!r}")
    _checks.flag("raise_on_failure", raise_on_failure)
    if not isinstance(max_coords, int) or isinstance(max_coords, bool) or max_coords < 1:
        raise ValueError(f"max_coords must be a positive int, got {max_coords!r}")
    _tree.check_floating(params, "checked")
    leaves, treedef = jax.tree.flatten(params)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    settings = [_leaf_defaults(np.dtype(jnp.result_type(x)), step, tolerance) for x in leaves]

    value = jax.eval_shape(f, params)
    if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"f must return a real scalar, got shape {value.shape} and dtype {value.dtype}")
    keys = jax.random.split(jax.random.key(0) if key is None else key, max(len(leaves), 1))
    coords = [
        jax.random.choice(keys[i], n, (max_coords,), replace=False) if n > max_coords else jnp.arange(n)
        for i, n in enumerate(int(np.size(x)) for x in leaves)
    ]
    steps = [h for h, _ in settings]
    analytic, numeric, noise = (
        [np.asarray(a, np.float64) for a in r] for r in _compare(f, leaves, treedef, coords, steps)
    )

    results: dict[str, LeafCheck] = {}
    for i, (x, (_, tol)) in enumerate(zip(leaves, settings)):
        if np.size(x) == 0:
            continue
        exact, approx = analytic[i], numeric[i]
        magnitude = np.maximum(np.abs(exact), np.abs(approx))
        floor = np.maximum(np.finfo(np.dtype(jnp.result_type(x))).eps * noise[i], RELATIVE_FLOOR * magnitude.max())
        abs_err = np.abs(exact - approx)
        rel = abs_err / np.maximum(magnitude, np.maximum(floor, np.finfo(np.float64).tiny))
        k = int(np.argmax(rel))
        results[paths[i]] = LeafCheck(
            rel_error=float(rel[k]),
            abs_error=float(abs_err.max()),
            worst_index=tuple(int(j) for j in np.unravel_index(int(coords[i][k]), np.shape(x))),
            analytic=float(exact[k]),
            numeric=float(approx[k]),
            checked=int(coords[i].size),
            size=int(np.size(x)),
            tolerance=float(tol),
        )

    report = GradCheckReport(results)
    worst = report.worst  # None only when there is no leaf, and then the check passed
    if raise_on_failure and not report.passed and worst is not None:
        c = results[worst]
        raise GradCheckError(
            f"gradient check failed: params{worst} has relative error {c.rel_error:.3g} > {c.tolerance:g} at index "
            f"{c.worst_index} (analytic {c.analytic:.6g}, numeric {c.numeric:.6g}).\n{report}",
            report,
        )
    return report


__all__ = ["GradCheckError", "GradCheckReport", "LeafCheck", "check_grads"]
