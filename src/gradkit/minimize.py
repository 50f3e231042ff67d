"""A full-batch minimizer: run any gradkit optimizer on a deterministic loss until its gradient is small.

    result = gk.minimize(f, params)                    # L-BFGS with a strong-Wolfe line search
    result = gk.minimize(f, params, gk.adam(1e-2))     # the same loop with Adam

The loop is one compiled ``lax.while_loop``, so it runs under ``jit`` and ``vmap`` (a batch of problems
runs until each has stopped; a stopped one stays where it stopped).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradkit import _checks, _tree
from gradkit.core import GradientTransformation, Params, apply_updates
from gradkit.lbfgs import lbfgs
from gradkit.linesearch import find_state, the_state


class MinimizeResult(NamedTuple):
    """The last point and what it took to get there.

    ``evaluations`` counts every ``value_and_grad(fun)`` the solve made: the one at the start, one per
    iteration for optimizers without a line search, and every trial of the line search otherwise (the
    accepted trial is the next iteration's value and gradient, not evaluated again). ``converged`` is
    ``grad_norm <= tol``; a run can also stop unconverged at ``max_iter`` or when a step leaves the
    params unchanged (a line search that found no decrease).
    """

    params: Params
    value: jax.Array
    grad_norm: jax.Array
    iterations: jax.Array  # int32
    evaluations: jax.Array  # int32
    converged: jax.Array  # bool


class _Carry(NamedTuple):
    params: Params
    state: Any
    value: jax.Array
    grad: Params
    grad_norm: jax.Array
    iterations: jax.Array
    evaluations: jax.Array
    moved: jax.Array


@functools.cache
def _default() -> GradientTransformation:
    """One ``gk.lbfgs()`` for every call without an optimizer, so repeated solves reuse the compiled loop."""
    return lbfgs()


def _takes_extra_arguments(optimizer: GradientTransformation) -> bool:
    """Whether ``optimizer.update`` accepts ``value=``, ``grad=``, ``value_fn=`` (every gradkit one does)."""
    try:
        parameters = inspect.signature(optimizer.update).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == "value_fn" for p in parameters)


@functools.partial(jax.jit, static_argnames=("fun", "optimizer"))
def _solve(params: Params, max_iter: jax.Array, tol: jax.Array, *, fun: Callable, optimizer: GradientTransformation):
    value_and_grad = jax.value_and_grad(fun)
    value, grad = value_and_grad(params)
    state = optimizer.init(params)
    searches = find_state(state) is not None
    extra = _takes_extra_arguments(optimizer)
    dtype = _tree.scalar_dtype(params)

    def step(c: _Carry) -> _Carry:
        kwargs = {"value": c.value, "grad": c.grad, "value_fn": fun} if extra else {}
        updates, state = optimizer.update(c.grad, c.state, c.params, **kwargs)
        params = apply_updates(c.params, updates)
        if searches:  # the line search evaluated f at the new params already
            found = the_state(state)
            value, grad, used = found.value, found.grad, found.evaluations
        else:
            (value, grad), used = value_and_grad(params), 1
        return _Carry(
            params,
            state,
            jnp.asarray(value, dtype),
            _tree.map_like(lambda old, new: new, c.grad, grad),
            _tree.global_norm(grad).astype(dtype),
            c.iterations + 1,
            c.evaluations + used,
            ~_tree.equal(params, c.params),
        )

    def running(c: _Carry) -> jax.Array:
        return (c.iterations < max_iter) & (c.grad_norm > tol) & c.moved

    start = _Carry(
        params,
        state,
        jnp.asarray(value, dtype),
        grad,
        _tree.global_norm(grad).astype(dtype),
        jnp.zeros((), jnp.int32),
        jnp.ones((), jnp.int32),
        jnp.ones((), bool),
    )
    c = jax.lax.while_loop(running, step, start)
    return MinimizeResult(c.params, c.value, c.grad_norm, c.iterations, c.evaluations, c.grad_norm <= tol)


def minimize(
    fun: Callable[[Params], jax.Array],
    params: Params,
    optimizer: GradientTransformation | None = None,
    *,
    max_iter: int = 500,
    tol: float = 1e-5,
) -> MinimizeResult:
    """Minimize ``fun(params) -> scalar`` from ``params`` with ``optimizer`` (default ``gk.lbfgs()``, strong Wolfe).

    Each iteration is one ``optimizer.update`` with the full gradient (and ``value``, ``grad``,
    ``value_fn=fun`` for line searches), then ``params <- params + updates``; the loop stops when
    ``||grad||_2 <= tol`` (the global norm over all leaves), after ``max_iter`` iterations, or when an
    update leaves the params unchanged. ``fun`` and ``optimizer`` are compile-time constants (a new
    function object recompiles); ``params``, ``max_iter`` and ``tol`` are data.
    scipy: ``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B")`` stops on
    ``max |g_i| <= gtol`` or a relative decrease of ``f`` below ``ftol``; this stops on the 2-norm only.

    >>> result = gk.minimize(lambda p: jnp.sum((p["w"] - 3.0) ** 2), {"w": jnp.zeros(3)})
    >>> result.params["w"], result.iterations, result.converged
    """
    if not callable(fun):
        raise TypeError(f"fun must be a function params -> scalar loss, got {fun!r}")
    optimizer = _default() if optimizer is None else optimizer
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be a gradient transformation (init, update), got {optimizer!r}")
    _checks.integer("max_iter", max_iter, minimum=0)
    _checks.non_negative("tol", tol)
    _tree.check_floating(params, "minimized")
    out = jax.eval_shape(fun, params)
    if getattr(out, "shape", None) != ():
        raise ValueError(f"fun must return a scalar loss, got {out}")
    return _solve(params, jnp.asarray(max_iter, jnp.int32), tol, fun=fun, optimizer=optimizer)


__all__ = ["MinimizeResult", "minimize"]
