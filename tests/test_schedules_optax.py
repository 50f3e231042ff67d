"""gk.schedules against optax's schedules, with the argument mapping of each.

Both sides run under ``jax.enable_x64`` (optax follows the default float dtype too), compared at 1e-7
relative over every step of the run and past its end. Where optax differs by design (1-cycle's phase
boundaries) the test states the difference and the mapping that removes it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradkit import schedules as S

optax = pytest.importorskip("optax", reason="optax is not installed; `pip install gradkit[test]` to compare with it")

T = 500
# name -> (optax schedule, gradkit schedule, number of steps)
CASES = {
    # cosine_annealing(a0, T, min) = cosine_decay_schedule(a0, decay_steps=T, alpha=min / a0)
    "cosine_decay_schedule": (
        lambda: optax.cosine_decay_schedule(0.1, decay_steps=T, alpha=1e-4 / 0.1),
        lambda: S.cosine_annealing(0.1, T, 1e-4),
        T + 50,
    ),
    # warmup_cosine(peak, W, T, init, end) = warmup_cosine_decay_schedule(init, peak, W, decay_steps=T, end)
    "warmup_cosine_decay_schedule": (
        lambda: optax.warmup_cosine_decay_schedule(1e-3, 0.1, warmup_steps=50, decay_steps=T, end_value=1e-5),
        lambda: S.warmup_cosine(0.1, 50, T, init_value=1e-3, end_value=1e-5),
        T + 50,
    ),
    # cosine_restarts(a0, T0, mult, min) = sgdr_schedule with cycle i: warmup_steps=0, decay_steps=T0 * mult**i
    "sgdr_schedule": (
        lambda: optax.sgdr_schedule(
            [
                {"init_value": 0.1, "peak_value": 0.1, "warmup_steps": 0, "decay_steps": 10 * 2**i, "end_value": 1e-4}
                for i in range(6)
            ]
        ),
        lambda: S.cosine_restarts(0.1, 10, 2, 1e-4),
        630,  # the six cycles: 10 + 20 + ... + 320
    ),
    # exponential_decay(a0, rate) = exponential_decay(a0, transition_steps=1, decay_rate=rate)
    "exponential_decay": (
        lambda: optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.99),
        lambda: S.exponential_decay(0.1, 0.99),
        T,
    ),
    # step_decay(a0, s, f) = exponential_decay(a0, transition_steps=s, decay_rate=f, staircase=True)
    "exponential_decay_staircase": (
        lambda: optax.exponential_decay(0.1, transition_steps=30, decay_rate=0.1, staircase=True),
        lambda: S.step_decay(0.1, 30, 0.1),
        200,
    ),
    # multistep_decay(a0, ms, f) = piecewise_constant_schedule(a0, {m: f for m in ms})
    "piecewise_constant_schedule": (
        lambda: optax.piecewise_constant_schedule(0.1, {30: 0.1, 60: 0.1, 90: 0.1}),
        lambda: S.multistep_decay(0.1, [30, 60, 90], 0.1),
        120,
    ),
    # linear_decay(a0, T, end) = linear_schedule(a0, end, T)
    "linear_schedule_decay": (
        lambda: optax.linear_schedule(0.1, 1e-3, transition_steps=T),
        lambda: S.linear_decay(0.1, T, 1e-3),
        T + 50,
    ),
    # linear_warmup(peak, W, init) = linear_schedule(init, peak, W)
    "linear_schedule_warmup": (
        lambda: optax.linear_schedule(0.0, 0.1, transition_steps=100),
        lambda: S.linear_warmup(0.1, 100),
        200,
    ),
    # polynomial(a0, end, p, T) = polynomial_schedule(a0, end, p, T)
    "polynomial_schedule": (
        lambda: optax.polynomial_schedule(0.1, 1e-3, power=2.0, transition_steps=T),
        lambda: S.polynomial(0.1, 1e-3, 2.0, T),
        T + 50,
    ),
    # join(schedules, boundaries) = join_schedules(schedules, boundaries)
    "join_schedules": (
        lambda: optax.join_schedules(
            [optax.linear_schedule(0.0, 0.1, 20), optax.cosine_decay_schedule(0.1, 200)], boundaries=[20]
        ),
        lambda: S.join([S.linear_warmup(0.1, 20), S.cosine_annealing(0.1, 200)], [20]),
        300,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_schedule_matches_optax(name):
    make_optax, build, steps = CASES[name]
    with jax.enable_x64(True):
        t = jnp.arange(steps)
        expected = np.asarray(jax.vmap(make_optax())(t), np.float64)
        got = np.asarray(build()(t))
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=0)


def test_one_cycle_boundaries_differ_from_optax_by_one_step():
    # optax.cosine_onecycle_schedule(T, peak, pct) peaks at int(pct * T) and ends at T; torch's OneCycleLR
    # (and gradkit's one_cycle) peak at pct * T - 1 and end at T - 1. The same numbers: one_cycle over T + 1
    # steps with its peak moved to int(pct * T).
    steps, pct = 200, 0.3
    with jax.enable_x64(True):
        t = jnp.arange(steps + 20)
        theirs = np.asarray(jax.vmap(optax.cosine_onecycle_schedule(steps, 0.1, pct, 25.0, 1e4))(t))
        same_args = np.asarray(S.one_cycle(0.1, steps, pct, 25.0, 1e4)(t))
        shifted = np.asarray(S.one_cycle(0.1, steps + 1, (int(pct * steps) + 1) / (steps + 1), 25.0, 1e4)(t))
    assert np.argmax(theirs) == int(pct * steps) == np.argmax(same_args) + 1
    assert not np.allclose(same_args, theirs, rtol=1e-3)
    np.testing.assert_allclose(shifted, theirs, rtol=1e-7, atol=0)
