"""Learning-rate schedules (lecture chapter 8): each a pure, jit-compiled function ``step -> lr``.

A schedule goes wherever a learning rate does (``gk.adamw(gk.schedules.warmup_cosine(3e-4, 5000, 100_000))``);
the chain passes it ``count``, the number of completed updates, so the first update uses ``lr(0)``.
Every schedule accepts a Python int, a JAX integer scalar or an array of steps (the result has the
step's shape), compiles once (not once per step), treats steps below 0 as 0, and computes in the
default float dtype (float32, float64 under ``jax.enable_x64``) so step ``2**31 - 1`` stays finite.
Hyperparameters may be traced (build a schedule inside ``jit``/``vmap`` to sweep them).

Each segment is computed as a blend with non-negative weights, ``start * w + end * (1 - w)``, the
cosine weights as ``(1 + cos(pi x)) / 2 = sin(pi (1 - x) / 2)**2`` with ``x`` and ``1 - x`` both formed
from step differences. The textbook ``end + (start - end) * (1 + cos(pi x)) / 2`` cancels where the
result is small next to ``start`` or ``end`` (the end of a decay, the start of a warmup): in float32 it
loses 2.5e-3 of the lr at step 999 of a 1000-step cosine (6e-3 for 1-cycle's linear anneal); the blend
keeps every step within a few ulps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from gradkit import _checks
from gradkit.core import described
from gradkit.primitives import Scalar, Schedule

__all__ = [
    "constant",
    "cosine_annealing",
    "cosine_restarts",
    "exponential_decay",
    "inverse_sqrt",
    "join",
    "linear_decay",
    "linear_scaling_rule",
    "linear_warmup",
    "multistep_decay",
    "one_cycle",
    "polynomial",
    "step_decay",
    "warmup_cosine",
]


# -- plumbing -------------------------------------------------------------------------------------


class _Compiled:
    """A jit-compiled ``step -> lr`` that refuses a concrete NaN step; its repr is its constructor call."""

    def __init__(self, compiled: Callable[[Any], jax.Array]) -> None:
        self.compiled = compiled
        self.description = "schedule"

    def __call__(self, step: Any) -> jax.Array:
        if isinstance(step, (str, bytes, list, tuple, dict, set)) or step is None or isinstance(step, bool):
            raise TypeError(f"a schedule takes a step number (an int or an integer array), got {step!r}")
        # Only float steps can be NaN; integer steps (the chain's count) skip the check and never sync.
        floating = not isinstance(step, Tracer) and jnp.issubdtype(jnp.result_type(step), jnp.floating)
        if floating and np.any(np.isnan(np.asarray(step))):
            raise ValueError(f"a schedule's step must be a number, got {step!r}")
        return self.compiled(step)

    def _cache_size(self) -> int:
        return self.compiled._cache_size()  # pyright: ignore[reportFunctionMemberAccess]  (jit's private counter)

    def __repr__(self) -> str:
        return self.description


def _schedule(formula: Callable[[jax.Array], jax.Array]) -> Schedule:
    """Lift ``formula(t)``, ``t`` a float array of steps >= 0, to a jit-compiled ``step -> lr``.

    A concrete NaN step is an error; a NaN step traced under ``jit`` gives a NaN learning rate.
    """

    def schedule(step: Any) -> jax.Array:
        dtype = jnp.result_type(float)  # float32, or float64 under jax.enable_x64
        return formula(jnp.maximum(jnp.asarray(step).astype(dtype), 0)).astype(dtype)

    return _Compiled(jax.jit(schedule))


def _f(value: Any) -> jax.Array:
    """A hyperparameter as an array of the default float dtype (inside a schedule, at trace time).

    The barrier keeps XLA from folding constant hyperparameters into each other (``peak * (t / W)`` into
    ``t * (peak / W)``), which would leave the lr after a warmup 1 ulp off ``peak``.
    """
    return jax.lax.optimization_barrier(jnp.asarray(value, jnp.result_type(float)))


def _cosine(start: jax.Array, end: jax.Array, done: jax.Array, left: jax.Array, length: jax.Array) -> jax.Array:
    """``end + (start - end) * (1 + cos(pi * done / length)) / 2``, where ``done + left = length``."""
    return start * jnp.sin(jnp.pi / 2 * (left / length)) ** 2 + end * jnp.sin(jnp.pi / 2 * (done / length)) ** 2


def _linear(start: jax.Array, end: jax.Array, done: jax.Array, left: jax.Array, length: jax.Array) -> jax.Array:
    """``start + (end - start) * done / length``, where ``done + left = length``."""
    return start * (left / length) + end * (done / length)


def _lengths(**lengths: Any) -> None:
    """Check each length (a number of steps) is an integer >= 1."""
    for name, value in lengths.items():
        _checks.integer(name, value, minimum=1)


def _sequence(name: str, values: Any, of: str = "steps") -> None:
    """``values`` is a flat list (or tuple, or 1-D array) of entries, not a single number or a string."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of {of}, got {values!r}")
    if of == "steps" and any(np.ndim(v) != 0 or isinstance(v, (str, bytes)) for v in values):
        raise TypeError(f"{name} must be a flat list of {of} (numbers), got {values!r}")


def _increasing(name: str, values: Sequence[int]) -> tuple[int, ...]:
    """Check ``values`` are strictly increasing integers >= 1 (milestones, boundaries); return them as a tuple."""
    _sequence(name, values)
    values = tuple(values)
    for i, v in enumerate(values):
        _checks.integer(f"{name}[{i}]", v, minimum=1)
    concrete = [c for v in values if (c := _checks.concrete(v)) is not None]
    if len(concrete) == len(values) and any(b <= a for a, b in pairwise(concrete)):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)!r}")
    return values


# -- schedules ------------------------------------------------------------------------------------


@described
def constant(value: Scalar) -> Schedule:
    """The same learning rate at every step: ``lr(t) = value``.

    >>> gk.schedules.constant(0.1)(500)   # 0.1
    """
    _checks.non_negative("value", value)
    return _schedule(lambda t: jnp.broadcast_to(_f(value), t.shape))


@described
def step_decay(init_value: Scalar, step_size: int, factor: Scalar = 0.1) -> Schedule:
    """Drop by ``factor`` every ``step_size`` steps: ``lr(t) = init_value * factor ** floor(t / step_size)``.

    torch ``StepLR(step_size=step_size, gamma=factor)``; optax ``exponential_decay(init_value,
    transition_steps=step_size, decay_rate=factor, staircase=True)``. The floor is exact for
    ``t < 2**24`` in float32 (``2**53`` in float64).

    >>> sched = gk.schedules.step_decay(0.1, step_size=30)   # 0.1, then 0.01 from step 30, ...
    """
    _checks.non_negative("init_value", init_value)
    _lengths(step_size=step_size)
    _checks.within("factor", factor, 0, 1)
    return _schedule(lambda t: _f(init_value) * _f(factor) ** jnp.floor(t / _f(step_size)))


@described
def multistep_decay(init_value: Scalar, milestones: Sequence[int], factor: Scalar = 0.1) -> Schedule:
    """Drop by ``factor`` at each milestone: ``lr(t) = init_value * factor ** #{m in milestones : m <= t}``.

    The ResNet recipe is ``multistep_decay(0.1, [30, 60, 90])``. torch ``MultiStepLR(milestones,
    gamma=factor)``; optax ``piecewise_constant_schedule(init_value, {m: factor for m in milestones})``.

    >>> sched = gk.schedules.multistep_decay(0.1, milestones=[30, 60, 90])
    """
    _checks.non_negative("init_value", init_value)
    milestones = _increasing("milestones", milestones)
    if not milestones:
        raise ValueError("milestones must name at least one step, got []")
    _checks.within("factor", factor, 0, 1)

    def formula(t: jax.Array) -> jax.Array:
        passed = sum((t >= _f(m)).astype(t.dtype) for m in milestones)
        return _f(init_value) * _f(factor) ** passed

    return _schedule(formula)


@described
def exponential_decay(init_value: Scalar, rate: Scalar) -> Schedule:
    """Multiply by ``rate`` every step: ``lr(t) = init_value * rate ** t``.

    torch ``ExponentialLR(gamma=rate)``; optax ``exponential_decay(init_value, transition_steps=1,
    decay_rate=rate)``. In float32, ``rate`` itself is rounded (0.99 by 1e-8 relative) and ``rate**t``
    multiplies that rounding by ``t``: ~1e-5 relative at ``t = 1000``; use float64 for long exact runs.

    >>> sched = gk.schedules.exponential_decay(0.1, rate=0.99)
    """
    _checks.non_negative("init_value", init_value)
    _checks.within("rate", rate, 0, 1)
    return _schedule(lambda t: _f(init_value) * _f(rate) ** t)


@described
def cosine_annealing(init_value: Scalar, total_steps: int, min_value: Scalar = 0.0) -> Schedule:
    """Half a cosine from ``init_value`` down to ``min_value`` over ``total_steps`` (T), then held::

        lr(t) = min_value + (init_value - min_value) * (1 + cos(pi * min(t, T) / T)) / 2

    torch ``CosineAnnealingLR(T_max=T, eta_min=min_value)`` for ``t <= T`` (torch keeps cycling after
    T: it rises back to ``init_value`` at 2T); optax ``cosine_decay_schedule(init_value,
    decay_steps=T, alpha=min_value / init_value)``.

    >>> sched = gk.schedules.cosine_annealing(0.1, total_steps=1000)
    """
    _checks.non_negative("init_value", init_value)
    _lengths(total_steps=total_steps)
    _checks.non_negative("min_value", min_value)

    def formula(t: jax.Array) -> jax.Array:
        T = _f(total_steps)
        done = jnp.minimum(t, T)
        return _cosine(_f(init_value), _f(min_value), done, T - done, T)

    return _schedule(formula)


@described
def linear_warmup(peak_value: Scalar, warmup_steps: int, init_value: Scalar = 0.0) -> Schedule:
    """Ramp linearly from ``init_value`` to ``peak_value`` over ``warmup_steps`` (W), then hold::

        lr(t) = init_value + (peak_value - init_value) * min(t, W) / W

    torch ``LinearLR(start_factor=init_value / peak_value, total_iters=W)`` on base lr ``peak_value``
    (torch needs ``init_value > 0``); optax ``linear_schedule(init_value, peak_value, W)``.

    >>> sched = gk.schedules.linear_warmup(1e-3, warmup_steps=5000)
    """
    _checks.non_negative("peak_value", peak_value)
    _lengths(warmup_steps=warmup_steps)
    _checks.non_negative("init_value", init_value)

    def formula(t: jax.Array) -> jax.Array:
        W = _f(warmup_steps)
        done = jnp.minimum(t, W)
        return _linear(_f(init_value), _f(peak_value), done, W - done, W)

    return _schedule(formula)


@described
def warmup_cosine(
    peak_value: Scalar, warmup_steps: int, total_steps: int, init_value: Scalar = 0.0, end_value: Scalar = 0.0
) -> Schedule:
    """The modern recipe: linear warmup over W steps, then cosine decay to ``end_value`` at step T::

        lr(t) = init_value + (peak_value - init_value) * t / W                          t < W
        lr(t) = end_value + (peak_value - end_value) * (1 + cos(pi (t - W) / (T - W))) / 2   W <= t <= T
        lr(t) = end_value                                                              t > T

    ``total_steps`` counts the warmup. optax ``warmup_cosine_decay_schedule(init_value, peak_value,
    W, decay_steps=T, end_value)``; torch ``SequentialLR([LinearLR(...), CosineAnnealingLR(T_max=T - W,
    eta_min=end_value)], milestones=[W])``.

    >>> sched = gk.schedules.warmup_cosine(3e-4, warmup_steps=5000, total_steps=100_000)
    """
    _checks.non_negative("peak_value", peak_value)
    _checks.integer("warmup_steps", warmup_steps, minimum=0)
    _lengths(total_steps=total_steps)
    _checks.non_negative("init_value", init_value)
    _checks.non_negative("end_value", end_value)
    w, T = _checks.concrete(warmup_steps), _checks.concrete(total_steps)
    if w is not None and T is not None and w >= T:
        raise ValueError(f"warmup_steps must be < total_steps={total_steps!r}, got {warmup_steps!r}")

    def formula(t: jax.Array) -> jax.Array:
        W, T = _f(warmup_steps), _f(total_steps)
        peak = _f(peak_value)
        warm = _linear(_f(init_value), peak, t, W - t, jnp.maximum(W, 1))
        done = jnp.clip(t, W, T) - W
        cool = _cosine(peak, _f(end_value), done, T - W - done, T - W)
        return jnp.where(t < W, warm, cool)

    return _schedule(formula)


@described
def linear_decay(init_value: Scalar, total_steps: int, end_value: Scalar = 0.0) -> Schedule:
    """Straight line from ``init_value`` to ``end_value`` at step T, then held (BERT, GPT-2)::

        lr(t) = end_value + (init_value - end_value) * (1 - min(t, T) / T)

    optax ``linear_schedule(init_value, end_value, T)``; torch ``LinearLR(start_factor=1.0,
    end_factor=end_value / init_value, total_iters=T)``.

    >>> sched = gk.schedules.linear_decay(1e-4, total_steps=10_000)
    """
    return polynomial(init_value, end_value, 1.0, total_steps)


@described
def polynomial(init_value: Scalar, end_value: Scalar, power: Scalar, total_steps: int) -> Schedule:
    """Polynomial decay to ``end_value`` at step T, then held::

        lr(t) = end_value + (init_value - end_value) * (1 - min(t, T) / T) ** power

    optax ``polynomial_schedule(init_value, end_value, power, T)``; torch ``PolynomialLR(total_iters=T,
    power=power)`` is the case ``end_value=0``.

    >>> sched = gk.schedules.polynomial(0.1, 0.0, power=2.0, total_steps=1000)
    """
    _checks.non_negative("init_value", init_value)
    _checks.non_negative("end_value", end_value)
    _checks.positive("power", power)
    _lengths(total_steps=total_steps)

    def formula(t: jax.Array) -> jax.Array:
        T, end = _f(total_steps), _f(end_value)
        return end + (_f(init_value) - end) * ((T - jnp.minimum(t, T)) / T) ** _f(power)

    return _schedule(formula)


@described
def inverse_sqrt(peak_value: Scalar, warmup_steps: int) -> Schedule:
    """The original Transformer schedule, linear warmup then ``1/sqrt(t)``, peaking at ``peak_value``::

        lr(t) = peak_value * min(t / W, sqrt(W / t))

    Vaswani et al. write ``d_model**-0.5 * min(s**-0.5, s * W**-1.5)``: that is this schedule with
    ``peak_value = (d_model * W) ** -0.5`` at ``t = s`` (they count steps from 1, so their first
    update uses ``lr(1)``; the chain's first update uses ``lr(0) = 0``).

    >>> sched = gk.schedules.inverse_sqrt(7e-4, warmup_steps=4000)
    """
    _checks.non_negative("peak_value", peak_value)
    _lengths(warmup_steps=warmup_steps)

    def formula(t: jax.Array) -> jax.Array:
        W = _f(warmup_steps)
        return _f(peak_value) * jnp.minimum(t / W, jnp.sqrt(W / jnp.maximum(t, W)))

    return _schedule(formula)


@described
def cosine_restarts(init_value: Scalar, first_period: int, period_mult: int = 1, min_value: Scalar = 0.0) -> Schedule:
    """SGDR (Loshchilov & Hutter, 2017): cosine from ``init_value`` to ``min_value``, restarted each period::

        periods T_i = first_period * period_mult**i, cycle i starting at s_i = T_0 + ... + T_{i-1}
        lr(t) = min_value + (init_value - min_value) * (1 + cos(pi (t - s_i) / T_i)) / 2,   s_i <= t < s_{i+1}

    torch ``CosineAnnealingWarmRestarts(T_0=first_period, T_mult=period_mult, eta_min=min_value)``;
    optax ``sgdr_schedule`` with one ``dict(init_value=v, peak_value=v, warmup_steps=0,
    decay_steps=T_i, end_value=min_value)`` per cycle.

    >>> sched = gk.schedules.cosine_restarts(0.1, first_period=10, period_mult=2)
    """
    _checks.non_negative("init_value", init_value)
    _lengths(first_period=first_period, period_mult=period_mult)
    _checks.non_negative("min_value", min_value)

    def formula(t: jax.Array) -> jax.Array:
        T0, m = _f(first_period), _f(period_mult)
        geometric = m > 1
        m_safe = jnp.where(geometric, m, 2)  # keeps the unused branch of the where finite

        def start(n: jax.Array) -> jax.Array:  # s_n = T0 * (1 + m + ... + m**(n-1))
            return jnp.where(geometric, T0 * (m_safe**n - 1) / (m_safe - 1), T0 * n)

        n = jnp.where(geometric, jnp.floor(jnp.log1p(t / T0 * (m_safe - 1)) / jnp.log(m_safe)), jnp.floor(t / T0))
        # The log can land one cycle off next to a restart; the starts themselves are exact integers.
        n = jnp.where(start(n + 1) <= t, n + 1, n)
        n = jnp.where(start(n) > t, n - 1, n)
        period = T0 * m**n
        done = t - start(n)
        return _cosine(_f(init_value), _f(min_value), done, period - done, period)

    return _schedule(formula)


@described
def one_cycle(
    max_value: Scalar,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: Scalar = 25.0,
    final_div_factor: Scalar = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    """1-cycle (Smith & Topin, super-convergence), with exactly torch ``OneCycleLR``'s phases::

        a = max_value / div_factor,  z = a / final_div_factor,  p = pct_start * total_steps
        two phases:   a -> max_value on [0, p - 1],  max_value -> z on [p - 1, total_steps - 1]
        three phases: a -> max_value on [0, p - 1],  max_value -> a on [p - 1, 2p - 2],
                      a -> z on [2p - 2, total_steps - 1]

    Each phase anneals by ``anneal="cos"`` (``end + (start - end) * (1 + cos(pi x)) / 2``) or
    ``"linear"``, ``x`` the fraction of the phase done. Held at ``z`` after ``total_steps - 1`` (torch
    raises there). torch ``OneCycleLR(max_lr=max_value, total_steps, pct_start, anneal_strategy=anneal,
    div_factor, final_div_factor, three_phase)``. optax ``cosine_onecycle_schedule`` puts the peak at
    ``int(p)`` and the end at ``total_steps``, one step later than torch.

    >>> sched = gk.schedules.one_cycle(0.1, total_steps=1000)
    """
    _checks.non_negative("max_value", max_value)
    _lengths(total_steps=total_steps)
    _checks.within("pct_start", pct_start, 0, 1, open_low=True, open_high=True)
    _checks.positive("div_factor", div_factor)
    _checks.positive("final_div_factor", final_div_factor)
    _checks.one_of("anneal", anneal, ("cos", "linear"))
    _checks.flag("three_phase", three_phase)
    T, p = _checks.concrete(total_steps), _checks.concrete(pct_start)
    if T is not None and p is not None:
        if p * T <= 1:
            raise ValueError(
                f"pct_start * total_steps must be > 1 so the warmup phase has steps, got pct_start={pct_start!r}, "
                f"total_steps={total_steps!r}"
            )
        if three_phase and 2 * p * T - 2 >= T - 1:
            raise ValueError(
                f"three_phase needs pct_start < (total_steps + 1) / (2 * total_steps) so the last phase has steps, "
                f"got pct_start={pct_start!r}, total_steps={total_steps!r}"
            )

    def formula(t: jax.Array) -> jax.Array:
        hi = _f(max_value)
        lo = hi / _f(div_factor)
        end = lo / _f(final_div_factor)
        peak_step = _f(pct_start) * _f(total_steps) - 1
        last = _f(total_steps) - 1
        if three_phase:
            ends, values = [peak_step, 2 * peak_step, last], [lo, hi, lo, end]
        else:
            ends, values = [peak_step, last], [lo, hi, end]
        starts = [jnp.zeros_like(peak_step), *ends[:-1]]
        t = jnp.minimum(t, last)
        phase = sum((t > e).astype(jnp.int32) for e in ends[:-1])  # torch: the first phase with t <= its end
        s, e, a, b = (jnp.stack(xs)[phase] for xs in (starts, ends, values[:-1], values[1:]))
        return (_cosine if anneal == "cos" else _linear)(a, b, t - s, e - t, e - s)

    return _schedule(formula)


@described
def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` from ``boundaries[i-1]`` to ``boundaries[i]``, each counting its own steps from 0::

        lr(t) = schedules[i](t - boundaries[i-1])    for boundaries[i-1] <= t < boundaries[i]

    torch ``SequentialLR(schedulers, milestones=boundaries)``; optax ``join_schedules(schedules, boundaries)``.

    >>> sched = gk.schedules.join([gk.schedules.linear_warmup(0.1, 500), gk.schedules.step_decay(0.1, 3000)], [500])
    """
    _sequence("schedules", schedules, of="schedules")
    schedules = tuple(schedules)
    if not schedules or not all(callable(s) for s in schedules):
        raise TypeError(f"schedules must be a non-empty list of functions step -> lr, got {schedules!r}")
    boundaries = _increasing("boundaries", boundaries)
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"boundaries must have one entry fewer than schedules ({len(schedules) - 1}), got {list(boundaries)!r}"
        )

    def formula(t: jax.Array) -> jax.Array:
        starts = [jnp.zeros_like(t)] + [_f(b) for b in boundaries]
        phase = sum((t >= _f(b)).astype(jnp.int32) for b in boundaries)
        values = [jnp.asarray(s(jnp.maximum(t - s0, 0)), t.dtype) for s, s0 in zip(schedules, starts)]
        return jnp.choose(phase, values, mode="clip") if len(values) > 1 else values[0]

    return _schedule(formula)


def linear_scaling_rule(base_lr: Scalar, base_batch_size: int, batch_size: int) -> Any:
    """Goyal et al. (2017): the learning rate grows with the batch, ``lr = base_lr * batch_size / base_batch_size``.

    Returns a number (a JAX scalar if an argument is traced), to pass as a schedule's peak value.

    >>> gk.schedules.linear_scaling_rule(0.1, base_batch_size=256, batch_size=8192)   # 3.2
    """
    _checks.non_negative("base_lr", base_lr)
    _lengths(base_batch_size=base_batch_size, batch_size=batch_size)
    if all(_checks.concrete(v) is not None for v in (base_lr, base_batch_size, batch_size)):
        return float(np.float64(base_lr) * batch_size / base_batch_size)
    return base_lr * batch_size / base_batch_size
