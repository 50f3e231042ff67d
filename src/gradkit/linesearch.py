"""Line searches: how far to move along a descent direction (Nocedal & Wright, *Numerical Optimization*, ch. 3).

A line search is the last link of a chain. It receives the direction ``d`` as its updates and returns
``t * d``, the step size ``t`` chosen by evaluating ``phi(t) = f(params + t d)`` and its slope
``phi'(t) = <grad f(params + t d), d>``. It needs the optax extra arguments ``value = f(params)``,
``grad = grad f(params)`` and ``value_fn = f``::

    updates, state = tx.update(grads, state, params, value=value, grad=grads, value_fn=f)

Each trial point costs one evaluation of ``jax.value_and_grad(f)``. The value and gradient at the accepted
point stay in the state (``LineSearchState``), so the next step need not compute them again:
``gk.value_and_grad_from_state(f)`` returns them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradkit import _checks, _tree
from gradkit.core import GradientTransformation, Params, Updates, described

Scalar = Any


class LineSearchState(NamedTuple):
    """What the last search found: the accepted step, and ``f`` and its gradient at ``params + t d``.

    ``step_size``: the accepted step ``t`` (optax ``ScaleByZoomLinesearchState.learning_rate``, torch ``t``).
    ``value``: ``f`` at the accepted point (optax ``value``).
    ``grad``: the gradient there, one per param (optax ``grad``).
    ``evaluations``: int32, the ``value_and_grad`` evaluations the last search made, 0 before the first
    (optax ``info.num_linesearch_steps``, torch ``func_evals`` counts them all).
    ``failed``: bool, no trial met the conditions within ``max_steps``; the best point found was taken.
    """

    step_size: jax.Array
    value: jax.Array
    grad: Params
    evaluations: jax.Array
    failed: jax.Array


def find_state(state: Any) -> LineSearchState | None:
    """The ``LineSearchState`` inside an optimizer's state (a chain's, say), or None when it has none."""
    nodes = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, LineSearchState))
    found = [s for s in nodes if isinstance(s, LineSearchState)]
    if len(found) > 1:
        raise ValueError(f"the optimizer state holds {len(found)} line searches; a chain can end in one only")
    return found[0] if found else None


def the_state(state: Any) -> LineSearchState:
    """The ``LineSearchState`` inside ``state``, for callers that know it holds one (``find_state`` found it)."""
    found = find_state(state)
    if found is None:
        raise ValueError("the optimizer state holds no line search")
    return found


def value_and_grad_from_state(value_fn: Callable[[Params], jax.Array]) -> Callable[..., tuple[jax.Array, Params]]:
    """``(params, *, state) -> (f(params), grad f(params))``, reusing what the line search in ``state`` computed.

    After ``params = gk.apply_updates(params, updates)`` the line search has already evaluated ``f`` at
    the new params; this returns that value and gradient, and evaluates ``value_fn`` only before the first
    search. Pass the params the last updates were applied to (the values are those of that point).
    optax: ``optax.value_and_grad_from_state(value_fn)``.

    >>> value_and_grad = gk.value_and_grad_from_state(f)
    >>> value, grads = value_and_grad(params, state=state)
    """
    compute = jax.value_and_grad(value_fn)

    def value_and_grad(params: Params, *, state: Any) -> tuple[jax.Array, Params]:
        found = find_state(state)
        if found is None:
            raise ValueError(
                "value_and_grad_from_state needs the state of an optimizer that ends in a line search "
                "(gk.lbfgs(), gk.zoom_linesearch(), gk.backtracking_linesearch()); this state has none"
            )

        def fresh() -> tuple[jax.Array, Params]:
            value, grad = compute(params)
            return jnp.asarray(value, found.value.dtype), _tree.map_like(lambda old, new: new, found.grad, grad)

        return jax.lax.cond(found.evaluations > 0, lambda: (found.value, found.grad), fresh)

    return value_and_grad


# -- shared by both searches ----------------------------------------------------------------------


def _init(params: Params) -> LineSearchState:
    _tree.check_real(params, "a line search")
    dtype = _tree.scalar_dtype(params)
    zero = jnp.zeros((), dtype)
    return LineSearchState(
        zero, jnp.full((), jnp.inf, dtype), _tree.zeros_like(params), jnp.zeros((), jnp.int32), jnp.zeros((), bool)
    )


def _check_arguments(name: str, direction: Updates, params: Any, value: Any, grad: Any, value_fn: Any) -> None:
    """Fail before tracing the search when an extra argument is missing or mis-shaped."""
    missing = [
        k for k, v in (("params", params), ("value", value), ("grad", grad), ("value_fn", value_fn)) if v is None
    ]
    if missing:
        raise ValueError(
            f"{name} needs {', '.join(missing)}: call tx.update(grads, state, params, value=f(params), grad=grads, "
            "value_fn=f), where f(params) is the scalar loss (gk.minimize does this for you)"
        )
    if not callable(value_fn):
        raise TypeError(f"value_fn must be a function params -> scalar loss, got {value_fn!r}")
    if jnp.ndim(value) != 0:
        raise ValueError(f"value must be a scalar (the loss at params), got an array of shape {jnp.shape(value)}")
    _tree.check_same_structure(direction, params, "params")
    _tree.check_same_structure(grad, params, "params", name="grad")
    out = jax.eval_shape(value_fn, params)
    if getattr(out, "shape", None) != ():
        raise ValueError(f"value_fn must return a scalar loss, got {out}")


def _line(value_fn: Callable, params: Params, direction: Updates, dtype: Any) -> Callable:
    """``t -> (phi(t), phi'(t), grad f(params + t d))``: ``f`` along the line, one value_and_grad each."""
    value_and_grad = jax.value_and_grad(value_fn)

    def phi(t: jax.Array) -> tuple[jax.Array, jax.Array, Params]:
        value, grad = value_and_grad(_tree.map_like(lambda x, d: x + t * d, params, direction))
        grad = _tree.map_like(lambda _, g: g, params, grad)
        return jnp.asarray(value, dtype), _tree.vdot(grad, direction), grad

    return phi


def _select(condition: jax.Array, a: Any, b: Any) -> Any:
    """``a`` where ``condition`` holds, else ``b``, leaf by leaf."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), a, b)


def _finish(direction: Updates, t: jax.Array, phi0: jax.Array, slope0: jax.Array) -> Updates:
    """``t * d``; NaN when ``f(params)`` or its slope is not finite, so a broken start is never a silent zero step."""
    t = jnp.where(jnp.isfinite(phi0) & jnp.isfinite(slope0), t, jnp.nan)
    return _tree.map_like(lambda d: t * d, direction)


def _check_constants(max_steps: Any, c1: Any) -> None:
    _checks.integer("max_steps", max_steps, minimum=1)
    _checks.within("c1", c1, 0, 1, open_low=True, open_high=True)


# -- strong Wolfe ---------------------------------------------------------------------------------


def _cubic_minimizer(a: tuple, b: tuple, low: jax.Array, high: jax.Array) -> jax.Array:
    """The minimizer of the cubic matching ``phi`` and ``phi'`` at ``a = (t, phi, phi')`` and ``b``, clipped to
    ``[low, high]`` (Nocedal & Wright eq. 3.59); the midpoint of ``[low, high]`` when the cubic has none::

        d1 = phi'_a + phi'_b - 3 (phi_a - phi_b) / (t_a - t_b)
        d2 = sign(t_b - t_a) sqrt(d1^2 - phi'_a phi'_b)
        t  = t_b - (t_b - t_a) (phi'_b + d2 - d1) / (phi'_b - phi'_a + 2 d2)
    """
    (ta, fa, ga), (tb, fb, gb) = a, b
    d1 = ga + gb - 3 * (fa - fb) / (ta - tb)
    radicand = d1**2 - ga * gb
    d2 = jnp.sign(tb - ta) * jnp.sqrt(jnp.maximum(radicand, 0))
    t = tb - (tb - ta) * (gb + d2 - d1) / (gb - ga + 2 * d2)
    return jnp.where((radicand >= 0) & jnp.isfinite(t), jnp.clip(t, low, high), (low + high) / 2)


class _Zoom(NamedTuple):
    """The search's carry. ``lo`` is the lowest point found that decreases ``f`` enough (``t = 0`` at first),
    ``hi`` the other end of the bracket (while still bracketing: the trial before ``lo``); points are
    ``(t, phi(t), phi'(t))``."""

    trial: jax.Array
    lo: tuple
    lo_grad: Params
    hi: tuple
    zooming: jax.Array
    near_end: jax.Array  # the last zoom trial was within 10% of an end of the bracket
    done: jax.Array
    evaluations: jax.Array


@described
def zoom_linesearch(max_steps: int = 20, c1: Scalar = 1e-4, c2: Scalar = 0.9) -> GradientTransformation:
    """Strong-Wolfe line search with cubic interpolation (Nocedal & Wright, algorithms 3.5 and 3.6).

    Accepts the first trial ``t`` (starting from ``t = 1``) with::

        phi(t) <= phi(0) + c1 t phi'(0)          sufficient decrease (Armijo)
        |phi'(t)| <= c2 |phi'(0)|                curvature (strong Wolfe)

    Bracketing (3.5): while the trials keep decreasing ``f`` and ``phi'(t) < 0``, extrapolate to the cubic
    minimizer through the last two trials, kept in ``[t + 0.01 (t - t_prev), 10 t]``. Zoom (3.6): once
    ``[lo, hi]`` brackets an acceptable step, try the cubic minimizer of ``lo`` and ``hi`` (eq. 3.59); of
    two trials in a row within 10% of an end of the bracket, the second is moved to 10% inside. When
    ``max_steps`` evaluations pass without success, the lowest point that decreased ``f`` enough is taken
    (``t = 0`` if none) and ``state.failed`` is set; so it is when ``d`` is not downhill (``phi'(0) >= 0``).
    A non-finite ``phi(0)`` or ``phi'(0)`` gives NaN updates.

    Args: ``max_steps=20`` (value_and_grad evaluations per search), ``c1=1e-4``, ``c2=0.9``, ``0 < c1 < c2 < 1``.
    optax: ``scale_by_zoom_linesearch(max_linesearch_steps=max_steps, slope_rtol=c1, curv_rtol=c2)``.
    torch: ``LBFGS(line_search_fn="strong_wolfe")`` uses the same tests, constants and safeguards; it also
    stops when the bracket is shorter than ``tolerance_change / max|d|``, allows at most ``max_eval``
    evaluations per ``step()``, and after a trial that fails sufficient decrease but is lower than ``lo``
    makes it the new ``lo`` (N&W keep ``lo``). scipy's L-BFGS-B uses Moré-Thuente instead (``c1=1e-3``, ``c2=0.9``).

    >>> tx = gk.chain(gk.scale(-1.0), gk.zoom_linesearch())   # steepest descent with strong-Wolfe steps
    >>> updates, state = tx.update(grads, state, params, value=f(params), grad=grads, value_fn=f)
    """
    _check_constants(max_steps, c1)
    _checks.within("c2", c2, 0, 1, open_low=True, open_high=True)
    c1v, c2v = _checks.concrete(c1), _checks.concrete(c2)
    if c1v is not None and c2v is not None and not c1v < c2v:
        raise ValueError(f"c1 must be < c2 (sufficient decrease weaker than curvature), got c1={c1!r}, c2={c2!r}")

    def update(
        updates: Updates,
        state: LineSearchState,
        params: Params = None,
        *,
        value: Any = None,
        grad: Any = None,
        value_fn: Any = None,
        **extra: Any,
    ) -> tuple[Updates, LineSearchState]:
        _tree.check_state(state, LineSearchState)
        _check_arguments("zoom_linesearch", updates, params, value, grad, value_fn)
        dtype = state.value.dtype
        phi = _line(value_fn, params, updates, dtype)
        phi0, slope0 = jnp.asarray(value, dtype), _tree.vdot(grad, updates)

        def search(z: _Zoom) -> _Zoom:
            t = z.trial
            f, slope, g = phi(t)
            trial = (t, f, slope)
            lo_t = z.lo[0]
            # Sufficient decrease, and lower than lo (else [lo, t] brackets a better step).
            better = (f <= phi0 + c1 * t * slope0) & (f < z.lo[1]) & jnp.isfinite(slope)
            done = better & (jnp.abs(slope) <= -c2 * slope0)
            # A better t becomes lo. The old lo becomes hi while bracketing, and in the zoom when the
            # slope at t points back towards it (3.6: "if phi'(t)(hi - lo) >= 0, hi <- lo").
            keep_hi = z.zooming & (slope * (z.hi[0] - lo_t) < 0)
            hi = _select(better, _select(keep_hi, z.hi, z.lo), trial)
            lo = _select(better, trial, z.lo)
            zooming = z.zooming | ~better | (slope >= 0)
            left, right = jnp.minimum(lo[0], hi[0]), jnp.maximum(lo[0], hi[0])
            inside = _cubic_minimizer(lo, hi, left, right)
            # Safeguard: a trial within 10% of an end of the bracket is tried once; if the next is too (or
            # the cubic lands on an end), it moves to 10% inside, so the bracket keeps shrinking.
            margin = 0.1 * (right - left)
            near_end = zooming & (jnp.minimum(right - inside, inside - left) < margin)
            move = near_end & (z.near_end | (inside >= right) | (inside <= left))
            to_right = jnp.abs(inside - right) < jnp.abs(inside - left)
            inside = jnp.where(move, jnp.where(to_right, right - margin, left + margin), inside)
            beyond = _cubic_minimizer(hi, lo, lo[0] + 0.01 * (lo[0] - hi[0]), 10 * lo[0])
            return _Zoom(
                jnp.where(zooming, inside, beyond),
                lo,
                _select(better, g, z.lo_grad),
                hi,
                zooming,
                near_end & ~move,
                done,
                z.evaluations + 1,
            )

        downhill = slope0 < 0
        start = (jnp.zeros((), dtype), phi0, slope0)
        no = jnp.zeros((), bool)
        grad = _tree.map_like(lambda p, g: g, params, grad)
        z = _Zoom(jnp.ones((), dtype), start, grad, start, no, no, no, jnp.zeros((), jnp.int32))
        z = jax.lax.while_loop(lambda z: downhill & ~z.done & (z.evaluations < max_steps), search, z)
        t = z.lo[0]
        return _finish(updates, t, phi0, slope0), LineSearchState(t, z.lo[1], z.lo_grad, z.evaluations, ~z.done)

    return GradientTransformation(_init, update)


# -- Armijo ---------------------------------------------------------------------------------------


class _Backtrack(NamedTuple):
    t: jax.Array
    value: jax.Array
    grad: Params
    done: jax.Array
    evaluations: jax.Array


@described
def backtracking_linesearch(max_steps: int = 20, c1: Scalar = 1e-4, decrease: Scalar = 0.5) -> GradientTransformation:
    """Armijo backtracking (Nocedal & Wright, algorithm 3.1): the first of ``t = 1, decrease, decrease^2, ...`` with::

        phi(t) <= phi(0) + c1 t phi'(0)          sufficient decrease

    Each trial evaluates value and gradient (the gradient at the accepted point is the next step's). When
    ``max_steps`` trials fail, or ``d`` is not downhill, ``t = 0`` and ``state.failed`` is set; a non-finite
    ``phi(0)`` or ``phi'(0)`` gives NaN updates. Args: ``max_steps=20``, ``c1=1e-4``, ``decrease=0.5`` in (0, 1).
    optax: ``scale_by_backtracking_linesearch(max_steps, slope_rtol=c1, decrease_factor=decrease,
    store_grad=True)`` starts from the previous step times ``increase_factor`` (capped at ``max_learning_rate``);
    this one starts from 1 at every search.

    >>> tx = gk.chain(gk.scale(-1.0), gk.backtracking_linesearch())
    """
    _check_constants(max_steps, c1)
    _checks.within("decrease", decrease, 0, 1, open_low=True, open_high=True)

    def update(
        updates: Updates,
        state: LineSearchState,
        params: Params = None,
        *,
        value: Any = None,
        grad: Any = None,
        value_fn: Any = None,
        **extra: Any,
    ) -> tuple[Updates, LineSearchState]:
        _tree.check_state(state, LineSearchState)
        _check_arguments("backtracking_linesearch", updates, params, value, grad, value_fn)
        dtype = state.value.dtype
        phi = _line(value_fn, params, updates, dtype)
        phi0, slope0 = jnp.asarray(value, dtype), _tree.vdot(grad, updates)

        def search(b: _Backtrack) -> _Backtrack:
            f, _, g = phi(b.t)
            done = f <= phi0 + c1 * b.t * slope0
            return _Backtrack(jnp.where(done, b.t, decrease * b.t), f, g, done, b.evaluations + 1)

        grad = _tree.map_like(lambda p, g: g, params, grad)
        b = _Backtrack(jnp.ones((), dtype), phi0, grad, jnp.zeros((), bool), jnp.zeros((), jnp.int32))
        b = jax.lax.while_loop(lambda b: (slope0 < 0) & ~b.done & (b.evaluations < max_steps), search, b)
        t = jnp.where(b.done, b.t, 0)
        value, grad = jax.tree.map(lambda new, old: jnp.where(b.done, new, old), (b.value, b.grad), (phi0, grad))
        return _finish(updates, t, phi0, slope0), LineSearchState(t, value, grad, b.evaluations, ~b.done)

    return GradientTransformation(_init, update)


__all__ = [
    "LineSearchState",
    "backtracking_linesearch",
    "find_state",
    "value_and_grad_from_state",
    "zoom_linesearch",
]
