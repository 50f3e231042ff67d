"""Property tests: for any hyperparameters in range and any gradients, gradkit's step is optax's step.

The argument mapping is the one in tests/test_optimizers_optax.py. Hyperparameters are drawn as float32 values so
both libraries see the same numbers. Tolerance: 1e-6 relative (a few float32 ulps per step), absolute 1e-6 * lr
for entries that cancel to near zero.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradkit as gk


def f32(low: float, high: float) -> st.SearchStrategy[float]:
    """float32 values in [low, high] (bounds rounded to float32, as hypothesis requires)."""
    return st.floats(float(np.float32(low)), float(np.float32(high)), width=32)


gradients = hnp.arrays(np.float32, (3, 7), elements=f32(-1e3, 1e3))
decays = f32(0.0, 0.999)
rates = f32(1e-5, 1.0)
epsilons = f32(1e-8, 1e-2)
SETTINGS = settings(max_examples=30, deadline=None)


def three_steps(ours, theirs, g):
    """The params after three steps of each, from the same start, with gradients g, 2g, -g."""
    p = q = {"w": jnp.ones_like(g)}
    s, t = ours.init(p), theirs.init(q)
    for scale in (1.0, 2.0, -1.0):
        grads = {"w": jnp.asarray(g * scale)}
        u, s = ours.update(grads, s, p)
        v, t = theirs.update(grads, t, q)
        p, q = gk.apply_updates(p, u), optax.apply_updates(q, v)
    return np.asarray(p["w"]), np.asarray(q["w"])


@SETTINGS
@given(g=gradients, lr=rates, b1=decays, b2=decays, eps=epsilons)
def test_adam_is_optax_adam_for_any_hyperparameters(g, lr, b1, b2, eps):
    a, b = three_steps(gk.adam(lr, b1=b1, b2=b2, eps=eps), optax.adam(lr, b1=b1, b2=b2, eps=eps), g)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * lr)


@SETTINGS
@given(g=gradients, lr=rates, decay=decays, eps=epsilons)
def test_rmsprop_is_optax_rmsprop_for_any_hyperparameters(g, lr, decay, eps):
    a, b = three_steps(gk.rmsprop(lr, decay, eps), optax.rmsprop(lr, decay, eps, eps_in_sqrt=False), g)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * lr)


@SETTINGS
@given(g=gradients, lr=rates, momentum=decays, nesterov=st.booleans())
def test_sgd_is_optax_sgd_for_any_hyperparameters(g, lr, momentum, nesterov):
    a, b = three_steps(
        gk.sgd(lr, momentum, nesterov and momentum > 0), optax.sgd(lr, momentum, nesterov and momentum > 0), g
    )
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * lr * float(np.max(np.abs(g)) + 1))


@SETTINGS
@given(max_norm=f32(1e-3, 1e3), g=gradients)
def test_clipped_norm_never_exceeds_max_norm(max_norm, g):
    tx = gk.clip_by_global_norm(max_norm)
    updates, _ = tx.update({"w": jnp.asarray(g)}, tx.init({"w": jnp.asarray(g)}))
    norm = float(jnp.linalg.norm(updates["w"]))
    assert norm <= max_norm * (1 + 1e-6)
    if np.linalg.norm(g) <= max_norm:  # below the threshold nothing changes
        np.testing.assert_array_equal(updates["w"], g)


# -- beyond the lecture: the optimizers that follow optax (argument mapping in tests/test_optimizers_more_optax.py) --

FEW = settings(max_examples=20, deadline=None)


@FEW
@given(g=gradients, lr=rates, b1=decays, b2=decays, eps=epsilons)
def test_adabelief_is_optax_adabelief_for_any_hyperparameters(g, lr, b1, b2, eps):
    a, b = three_steps(gk.adabelief(lr, b1, b2, eps), optax.adabelief(lr, b1, b2, eps), g)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * lr)


@FEW
@given(g=gradients, lr=rates, b1=decays, b2=decays, eps=epsilons, wd=f32(0.0, 0.1))
def test_lamb_is_optax_lamb_for_any_hyperparameters(g, lr, b1, b2, eps, wd):
    a, b = three_steps(gk.lamb(lr, b1, b2, eps, weight_decay=wd), optax.lamb(lr, b1, b2, eps, weight_decay=wd), g)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * lr)


@FEW
@given(g=gradients, lr=rates, momentum=decays, coefficient=f32(1e-4, 1.0), wd=f32(0.0, 0.1))
def test_lars_is_optax_lars_for_any_hyperparameters(g, lr, momentum, coefficient, wd):
    ours = gk.lars(lr, wd, coefficient, momentum=momentum)
    theirs = optax.lars(lr, wd, trust_coefficient=coefficient, momentum=momentum)
    a, b = three_steps(ours, theirs, g)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * lr)
