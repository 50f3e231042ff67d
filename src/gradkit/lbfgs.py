"""L-BFGS (Nocedal & Wright, *Numerical Optimization*, section 7.2): a quasi-Newton direction from the
last ``m`` steps, and a line search that picks how far to go along it.

    gk.lbfgs() = gk.chain(gk.scale_by_lbfgs(), gk.scale(-1.0), gk.zoom_linesearch())

The direction is ``-H g``, with ``H`` the inverse-Hessian estimate built from the pairs
``s_i = x_{i+1} - x_i``, ``y_i = g_{i+1} - g_i`` of the last ``memory_size`` steps. It needs full-batch
(deterministic) gradients: ``y`` measures curvature only when both gradients are of the same function.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradkit import _checks, _tree
from gradkit.core import GradientTransformation, Params, Stepped, Updates, chain, described
from gradkit.linesearch import zoom_linesearch
from gradkit.primitives import Scalar, Schedule, scale, scale_by_learning_rate


class LbfgsState(NamedTuple):
    """The memory of ``scale_by_lbfgs``: the last point and gradient, and up to ``memory_size`` pairs, oldest first.

    ``params``: the last point ``x_{k-1}`` (optax ``ScaleByLBFGSState.params``; torch keeps no point).
    ``grads``: the gradient there, ``g_{k-1}`` (optax ``updates``, torch ``prev_flat_grad``).
    ``s``: per leaf ``(memory_size, ...)``, the steps ``s_i = x_{i+1} - x_i`` (optax ``diff_params_memory``,
    torch ``old_stps``).
    ``y``: per leaf ``(memory_size, ...)``, the gradient changes ``y_i = g_{i+1} - g_i`` (optax
    ``diff_updates_memory``, torch ``old_dirs``).
    ``sy``: ``(memory_size,)``, ``s_i . y_i``, 0 in empty slots (optax ``weights_memory`` and torch ``ro``
    hold its inverse).
    ``gamma``: the initial inverse Hessian ``H_0 = gamma I``, ``gamma = s.y / y.y`` of the newest pair (torch
    ``H_diag``).
    ``pairs``: int32, the pairs stored, at most ``memory_size``, the newest last.
    """

    params: Params
    grads: Params
    s: Params
    y: Params
    sy: jax.Array
    gamma: jax.Array
    pairs: jax.Array


def _two_loop(g: Updates, s: Params, y: Params, sy: jax.Array, stored: jax.Array, gamma: jax.Array) -> Updates:
    """``r = H g`` by the two-loop recursion (Nocedal & Wright, algorithm 7.4), with ``rho_i = 1 / s_i.y_i``::

    q = g;  for i newest..oldest:  alpha_i = rho_i s_i.q,  q <- q - alpha_i y_i
    r = gamma q;  for i oldest..newest:  beta = rho_i y_i.r,  r <- r + (alpha_i - beta) s_i
    """

    def ratio(dot: jax.Array, sy_i: jax.Array, ok: jax.Array) -> jax.Array:
        return jnp.where(ok, dot / jnp.where(ok, sy_i, 1), 0)  # empty slots contribute nothing

    def newest_to_oldest(q, pair):
        s_i, y_i, sy_i, ok = pair
        alpha = ratio(_tree.vdot(s_i, q), sy_i, ok)
        return _tree.map_like(lambda q, y: q - alpha * y, q, y_i), alpha

    q, alpha = jax.lax.scan(newest_to_oldest, g, (s, y, sy, stored), reverse=True)
    r = _tree.map_like(lambda q: gamma * q, q)

    def oldest_to_newest(r, pair):
        s_i, y_i, sy_i, ok, alpha_i = pair
        beta = ratio(_tree.vdot(y_i, r), sy_i, ok)
        return _tree.map_like(lambda r, s: r + (alpha_i - beta) * s, r, s_i), None

    r, _ = jax.lax.scan(oldest_to_newest, r, (s, y, sy, stored, alpha))
    return r


@described
def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True) -> GradientTransformation:
    """L-BFGS's scaling without the sign or the step: ``u = H g``, ``H`` from the last ``memory_size`` pairs.

    At each update the pair of the previous step is formed, ``s = x - x_prev``, ``y = g - g_prev``, and
    stored only when its curvature is safely positive (else ``H`` would not be positive definite)::

        s.y > eps * |g_prev.s|   and   gamma = s.y / y.y is finite        (eps of the params' dtype)

    (L-BFGS-B's test, plus the finiteness that a float32 ``y.y`` can lose: optax#1203). ``H_0 = gamma I``
    with ``gamma`` of the newest stored pair (Nocedal & Wright eq. 7.20) when ``scale_init_precond``, else
    ``I``; with no pair stored yet, ``gamma = 1 / ||g||``, so a line search starting at ``t = 1`` first
    moves a unit distance (scipy's L-BFGS-B does the same; optax uses ``min(1, 1 / ||g||)``, torch
    ``min(1, 1 / ||g||_1)``). Needs ``params``.

    >>> tx = gk.chain(gk.scale_by_lbfgs(memory_size=5), gk.scale(-1.0), gk.zoom_linesearch())
    """
    _checks.integer("memory_size", memory_size, minimum=1)
    _checks.flag("scale_init_precond", scale_init_precond)
    memory_size = int(memory_size)

    def init(params: Params) -> LbfgsState:
        _tree.check_real(params, "L-BFGS")
        dtype = _tree.scalar_dtype(params)
        return LbfgsState(
            _tree.zeros_like(params),
            _tree.zeros_like(params),
            _tree.stacked_zeros(params, memory_size),
            _tree.stacked_zeros(params, memory_size),
            jnp.zeros((memory_size,), dtype),
            jnp.ones((), dtype),
            jnp.zeros((), jnp.int32),
        )

    def update(updates: Updates, state: LbfgsState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, LbfgsState)
        if params is None:
            raise ValueError("scale_by_lbfgs needs the params: call tx.update(grads, state, params, ...)")
        _tree.check_same_structure(updates, params, "params")
        g = updates
        # The pair of the previous step (none before the first).
        s = _tree.map_like(lambda x, x_prev: x - x_prev, params, state.params)
        y = _tree.map_like(lambda g, g_prev: g - g_prev, g, state.grads)
        sy, yy = _tree.vdot(s, y), _tree.vdot(y, y)
        eps = jnp.finfo(sy.dtype).eps
        curvature = (count > 0) & (sy > eps * jnp.abs(_tree.vdot(state.grads, s))) & jnp.isfinite(sy / yy)
        memory = (_tree.push(state.s, s), _tree.push(state.y, y), _tree.push(state.sy, sy))
        s_mem, y_mem, sy_mem = jax.tree.map(
            lambda new, old: jnp.where(curvature, new, old), memory, (state.s, state.y, state.sy)
        )
        pairs = jnp.where(curvature, jnp.minimum(state.pairs + 1, memory_size), state.pairs)
        gamma = jnp.where(curvature, sy / jnp.where(curvature, yy, 1), state.gamma)
        if scale_init_precond:
            norm = jnp.sqrt(_tree.vdot(g, g))
            h0 = jnp.where(pairs > 0, gamma, jnp.where(norm > 0, 1 / norm, 1))
        else:
            h0 = jnp.ones_like(gamma)
        stored = jnp.arange(memory_size) >= memory_size - pairs
        direction = _two_loop(g, s_mem, y_mem, sy_mem, stored, h0.astype(gamma.dtype))
        return direction, LbfgsState(params, g, s_mem, y_mem, sy_mem, gamma, pairs.astype(jnp.int32))

    return chain(Stepped(init, update))


@described
def lbfgs(
    learning_rate: Scalar | Schedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | None = None,
) -> GradientTransformation:
    """L-BFGS: ``x <- x - t * lr * H g``, ``H`` from the last ``memory_size`` steps (``gk.scale_by_lbfgs``), ``t``
    from the line search (default ``gk.zoom_linesearch()``, strong Wolfe).

    ``learning_rate=None`` lets the line search pick the whole step (``lr = 1``, its first trial is the
    quasi-Newton step); a number or schedule scales the direction before the search. ``linesearch=gk.identity()``
    gives fixed steps ``lr * H g``. The update needs the optax extra arguments (see ``gk.linesearch``);
    ``gk.minimize`` passes them. Same as ``optax.lbfgs(learning_rate, memory_size, scale_init_precond,
    linesearch)``; ``torch.optim.LBFGS(lr=1, history_size=memory_size, line_search_fn="strong_wolfe")`` runs
    the whole loop itself.

    >>> result = gk.minimize(f, params, gk.lbfgs(memory_size=20))
    >>> updates, state = tx.update(grads, state, params, value=value, grad=grads, value_fn=f)
    """
    step = scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate)
    search = zoom_linesearch() if linesearch is None else linesearch
    return chain(scale_by_lbfgs(memory_size, scale_init_precond), step, search)


__all__ = ["LbfgsState", "lbfgs", "scale_by_lbfgs"]
