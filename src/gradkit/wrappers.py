"""Wrappers that change when and whether an optimizer steps: gradient accumulation, a non-finite guard, EMA weights.

Each wraps a whole transformation ``tx`` and calls it; the formulas stay in the primitives. Each keeps
its own documented counters in its state: the wrapped ``tx`` keeps its own step counter too, which
advances only on the steps ``tx`` actually takes (so a schedule inside counts applied steps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.core import Tracer

from gradkit import _checks, _tree
from gradkit.core import (
    GradientTransformation,
    Params,
    State,
    Updates,
    apply_updates,
    described,
    increment,
    keyword_filter,
)
from gradkit.primitives import Scalar, update_moment


def _branch(pred: jax.Array, on_true: Callable, on_false: Callable, operand: Any) -> Any:
    """``lax.cond``, or a plain ``if`` when ``pred`` is known: eagerly, ``lax.cond`` would retrace both
    branches on every call (they close over the step's arrays)."""
    if isinstance(pred, Tracer):
        return jax.lax.cond(pred, on_true, on_false, operand)
    return on_true(operand) if pred else on_false(operand)


# -- accumulate -----------------------------------------------------------------------------------


class AccumulateState(NamedTuple):
    """State of ``accumulate``.

    ``micro_step``: micro-batches averaged so far in the current round, ``0 .. every-1``, int32 (optax's
    ``MultiStepsState.mini_step``).
    ``mean``: the mean of this round's micro-batch gradients, one array per param: the only params-sized
    buffer the wrapper adds (optax's ``acc_grads``).
    ``inner``: ``tx``'s state, advanced once per round (optax's ``inner_opt_state``); its step counter counts
    applied steps (optax's ``gradient_step``).
    """

    micro_step: jax.Array
    mean: Updates
    inner: State


@described
def accumulate(tx: GradientTransformation, every: int) -> GradientTransformation:
    """Gradient accumulation: average ``every`` micro-batch gradients, then apply ``tx`` once to the average::

        m <- m + (g - m) / k                 running mean of the k-th micro-batch gradient of the round
        u = tx(m) on the every-th micro-batch (then m <- 0, k <- 0), else u = 0

    Training on ``every`` micro-batches of size B this way takes the same steps as training on batches of
    size ``every * B`` (for a loss that is a mean over the batch). ``tx`` runs once per round, so its
    schedules and bias corrections count applied steps, not micro-batches. Extra keyword arguments reach
    ``tx`` on the applying micro-batch only. optax: ``optax.MultiSteps(tx, every_k_schedule=every)`` (call
    its ``.gradient_transformation()``); torch: call ``optimizer.step()`` every ``every`` backward passes with
    the loss divided by ``every``.

    >>> tx = gk.accumulate(gk.adamw(1e-3), every=4)   # updates are zero on 3 of every 4 calls
    """
    _checks.transformation("tx", tx)
    _checks.integer("every", every, minimum=1)
    accepts = keyword_filter(tx)

    def init(params: Params) -> AccumulateState:
        return AccumulateState(jnp.zeros((), jnp.int32), _tree.zeros_like(params), tx.init(params))

    def update(updates: Updates, state: AccumulateState, params: Params = None, **extra: Any):
        _tree.check_state(state, AccumulateState)
        _tree.check_same_structure(updates, state.mean, "optimizer state")
        k = increment(state.micro_step)
        mean = _tree.map_like(lambda m, g: m + (g - m) / k, state.mean, updates)

        def step(mean: Updates):
            return tx.update(mean, state.inner, params, **accepts(extra))

        def apply(mean: Updates):
            new_updates, inner = step(mean)
            return new_updates, AccumulateState(jnp.zeros((), jnp.int32), _tree.zeros_like(mean), inner)

        def wait(mean: Updates):
            shapes = jax.eval_shape(step, mean)[0]  # tx's updates may differ from the gradients in dtype
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            return zeros, AccumulateState(k, mean, state.inner)

        return _branch(k >= every, apply, wait, mean)

    return GradientTransformation(init, update)


# -- skip_nonfinite -------------------------------------------------------------------------------


class SkipNonfiniteState(NamedTuple):
    """State of ``skip_nonfinite``.

    ``consecutive``: non-finite steps skipped in a row since the last applied step, int32 (optax's
    ``ApplyIfFiniteState.notfinite_count``, which optax does not reset on a give-up step).
    ``skipped``: non-finite steps skipped in total, int32 (optax's ``total_notfinite`` also counts give-ups).
    ``inner``: ``tx``'s state, unchanged by a skipped step.
    """

    consecutive: jax.Array
    skipped: jax.Array
    inner: State


@described
def skip_nonfinite(tx: GradientTransformation, max_consecutive: int | None = None) -> GradientTransformation:
    """Skip a step whose gradients or updates hold a NaN or an infinity::

        u, s' = tx(g, s)
        finite:     u, s'                   applied; consecutive <- 0
        not finite: 0, s (bit for bit)      skipped; consecutive += 1, skipped += 1

    With ``max_consecutive=n``, after ``n`` non-finite steps in a row the next non-finite step is applied
    as it is (it gives up): the NaN reaches the params, so a run that cannot recover fails visibly instead
    of stalling in silence; ``consecutive`` restarts from 0 after it. ``None`` (default) skips forever: watch
    ``state.skipped``. optax: ``optax.apply_if_finite(tx, max_consecutive_errors=n)``, which checks only the
    gradients and never resets its count after giving up.

    >>> tx = gk.skip_nonfinite(gk.adam(1e-3), max_consecutive=10)
    """
    _checks.transformation("tx", tx)
    if max_consecutive is not None:
        _checks.integer("max_consecutive", max_consecutive, minimum=0)
    accepts = keyword_filter(tx)

    def init(params: Params) -> SkipNonfiniteState:
        zero = jnp.zeros((), jnp.int32)
        return SkipNonfiniteState(zero, zero, tx.init(params))

    def update(updates: Updates, state: SkipNonfiniteState, params: Params = None, **extra: Any):
        _tree.check_state(state, SkipNonfiniteState)
        new_updates, inner = tx.update(updates, state.inner, params, **accepts(extra))
        finite = _tree.all_finite(updates) & _tree.all_finite(new_updates)
        give_up = False if max_consecutive is None else state.consecutive >= max_consecutive
        applied = finite | give_up
        new_updates = _tree.select(applied, new_updates, jax.tree.map(jnp.zeros_like, new_updates))
        inner = _tree.select(applied, inner, state.inner)
        consecutive = jnp.where(applied, 0, increment(state.consecutive))
        skipped = jnp.where(applied, state.skipped, increment(state.skipped))
        return new_updates, SkipNonfiniteState(consecutive, skipped, inner)

    return GradientTransformation(init, update)


# -- ema_params -----------------------------------------------------------------------------------


class EmaParamsState(NamedTuple):
    """State of ``ema_params``.

    ``ema``: the exponential moving average of the params after each step, in the params' dtypes; starts at
    the initial params. Read it for evaluation: ``state.ema``.
    ``inner``: ``tx``'s state.
    """

    ema: Params
    inner: State


@described
def ema_params(tx: GradientTransformation, decay: Scalar = 0.999) -> GradientTransformation:
    """Keep an exponential moving average of the params (Polyak averaging) next to the optimizer ``tx``::

        W <- W + tx(g)                        the step, unchanged
        W_ema <- decay * W_ema + (1 - decay) * W,    W_ema starting at the initial W

    The updates are ``tx``'s, unchanged; evaluate with ``state.ema`` (wrap the whole optimizer so the EMA
    is at the top of the state). Needs ``params`` in ``update``. optax has no wrapper: real code writes
    ``ema = optax.incremental_update(new_params, ema, step_size=1 - decay)`` after each step; torch:
    ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`` (which starts from the params after
    the first step, not before it).

    >>> tx = gk.ema_params(gk.adamw(1e-3), decay=0.999)
    >>> eval_params = state.ema
    """
    _checks.transformation("tx", tx)
    _checks.unit_interval("decay", decay)
    accepts = keyword_filter(tx)

    def init(params: Params) -> EmaParamsState:
        _tree.check_floating(params, "averaged")
        return EmaParamsState(jax.tree.map(jnp.array, params), tx.init(params))

    def update(updates: Updates, state: EmaParamsState, params: Params = None, **extra: Any):
        _tree.check_state(state, EmaParamsState)
        if params is None:
            raise ValueError("ema_params needs the params: call tx.update(grads, state, params)")
        new_updates, inner = tx.update(updates, state.inner, params, **accepts(extra))
        ema = update_moment(apply_updates(params, new_updates), state.ema, decay, order=1)
        return new_updates, EmaParamsState(ema, inner)

    return GradientTransformation(init, update)


__all__ = [
    "AccumulateState",
    "EmaParamsState",
    "SkipNonfiniteState",
    "accumulate",
    "ema_params",
    "skip_nonfinite",
]
