"""L-BFGS as a racer: its path and its honest evaluation counts against a plain loop of gk.lbfgs updates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradkit as gk
from gradkit import landscapes
from gradkit.linesearch import find_state
from gradkit.race import optimizer, race


def test_lbfgs_racer_matches_a_plain_loop_and_counts_line_search_evaluations():
    land, steps = landscapes.himmelblau(), 30
    r = race(
        land, {"L-BFGS": optimizer("lbfgs"), "SGD": optimizer("sgd")}, {"L-BFGS": [1.0], "SGD": [1e-3]}, steps=steps
    )

    tx = gk.lbfgs(1.0)
    value_and_grad = gk.value_and_grad_from_state(land.f)

    @jax.jit
    def step(p, state):
        value, grad = value_and_grad(p, state=state)
        updates, state = tx.update(grad, state, p, value=value, grad=grad, value_fn=land.f)
        return gk.apply_updates(p, updates), state

    p = jnp.asarray(land.start, jnp.float32)
    state, points, evaluations = tx.init(p), [p], [0, 1]  # the first step also evaluates f at the start
    for _ in range(steps):
        p, state = step(p, state)
        points.append(p)
        evaluations[-1] += int(find_state(state).evaluations)
        evaluations.append(evaluations[-1])
    # Up to convergence (after it, float32 searches that find no lower value differ with the last ulp).
    c = int(r.converged_at[0, 0])
    assert 0 < c < steps and r.diverged_at[0, 0] == -1
    np.testing.assert_allclose(r.paths[0, 0, : c + 1], np.asarray(points)[: c + 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r.evaluations[0, 0, : c + 1], evaluations[: c + 1])
    # One gradient per step for SGD.
    np.testing.assert_array_equal(r.evaluations[1, 0], np.arange(steps + 1))
