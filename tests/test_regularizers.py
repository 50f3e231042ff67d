"""gk.regularizers against closed forms, add_decayed_weights, optax and scikit-learn's Lasso (lecture 3, ch. 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_tree

import gradkit as gk

R = gk.regularizers


def leaves64(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


# -- penalties -------------------------------------------------------------------------------------


def test_l2_and_l1_match_closed_forms_on_a_nested_tree():
    params = random_tree(0)  # includes a None leaf and a zero-size leaf
    np.testing.assert_allclose(R.l2(params), sum((x**2).sum() for x in leaves64(params)), rtol=1e-6)
    np.testing.assert_allclose(R.l1(params), sum(np.abs(x).sum() for x in leaves64(params)), rtol=1e-6)


def test_l2_is_twice_optax_l2_loss():
    # optax.l2_loss is 0.5 * x^2 per entry; the lecture's R(W) has no 1/2.
    params = random_tree(1)
    reference = sum(optax.losses.l2_loss(x).sum() for x in jax.tree.leaves(params))
    np.testing.assert_allclose(R.l2(params), 2 * reference, rtol=1e-6)


def test_l2_prefers_the_spread_weight_vector_by_a_factor_of_4():
    x = jnp.ones(4)
    w1, w2 = jnp.array([1.0, 0.0, 0.0, 0.0]), jnp.full(4, 0.25)
    assert float(x @ w1) == float(x @ w2) == 1.0  # same score
    assert float(R.l2(w1)) == 1.0 and float(R.l2(w2)) == 0.25  # exact in binary floating point
    assert float(R.l1(w1)) == float(R.l1(w2)) == 1.0  # L1 has no such preference


@pytest.mark.parametrize("as_function", [True, False])
def test_mask_leaves_biases_unpenalized(as_function):
    params = {"w": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "b": jnp.array([10.0, -10.0])}
    tree = {"w": True, "b": False}
    mask = (lambda p: tree) if as_function else tree
    assert float(R.l2(params, mask)) == 1 + 4 + 9 + 0.25
    assert float(R.l1(params, mask)) == 1 + 2 + 3 + 0.5
    np.testing.assert_allclose(R.elastic_net(params, l1=0.1, l2=0.01, mask=mask), 0.1 * 6.5 + 0.01 * 14.25, rtol=1e-6)


def test_elastic_net_is_the_weighted_sum_of_l1_and_l2():
    params = random_tree(2)
    l1 = sum(np.abs(x).sum() for x in leaves64(params))
    l2 = sum((x**2).sum() for x in leaves64(params))
    np.testing.assert_allclose(R.elastic_net(params, l1=0.3, l2=0.7), 0.3 * l1 + 0.7 * l2, rtol=1e-6)


def test_gradient_of_half_l2_is_add_decayed_weights():
    # torch's / gk's weight_decay=wd adds wd * W to the gradient: the gradient of (wd / 2) * R_L2.
    params, wd = random_tree(3), 0.05
    grad = jax.grad(lambda p: wd / 2 * R.l2(p))(params)
    decayed, _ = gk.add_decayed_weights(wd).update(jax.tree.map(jnp.zeros_like, params), gk.EmptyState(), params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), grad, decayed)


def test_bfloat16_penalties_accumulate_in_float32():
    params = jnp.full((4096,), 1.0, jnp.bfloat16)  # a bfloat16 sum would stall at 256
    assert R.l2(params).dtype == jnp.float32
    assert float(R.l2(params)) == 4096.0 and float(R.l1(params)) == 4096.0


def test_penalties_reject_bad_input():
    with pytest.raises(TypeError, match=r"params\['w'\] has dtype int32"):
        R.l2({"w": jnp.array([1, 2])})
    with pytest.raises(ValueError, match="does not match"):
        R.l1({"w": jnp.ones(2), "b": jnp.ones(1)}, mask={"w": True})
    with pytest.raises(ValueError, match="l1 must be >= 0, got -0.1"):
        R.elastic_net({"w": jnp.ones(2)}, l1=-0.1, l2=0.0)


# -- soft threshold and proximal L1 ----------------------------------------------------------------


def test_soft_threshold_matches_its_closed_form():
    x = np.array([-2.0, -0.1, 0.0, 0.05, 0.3, 1.0])
    expected = np.where(np.abs(x) <= 0.1, 0.0, x - 0.1 * np.sign(x))
    np.testing.assert_allclose(R.soft_threshold(jnp.asarray(x), 0.1), expected, rtol=1e-6)
    assert (np.asarray(R.soft_threshold(jnp.asarray(x), 0.1))[:4] == 0).sum() == 3  # exact zeros


def test_prox_l1_lands_exactly_on_the_soft_thresholded_weights():
    params = {"w": jnp.array([0.5, -0.02, 0.01, -1.0]), "b": jnp.array([0.003])}
    grads = {"w": jnp.array([1.0, 0.1, -0.05, 0.0]), "b": jnp.array([0.0])}
    lr, strength = 0.1, 0.5
    tx = gk.chain(gk.sgd(lr), R.prox_l1(strength, lr, mask=lambda p: {"w": True, "b": False}))
    updates, _ = tx.update(grads, tx.init(params), params)
    new = gk.apply_updates(params, updates)
    stepped = np.asarray(params["w"]) - lr * np.asarray(grads["w"])
    expected = np.sign(stepped) * np.maximum(np.abs(stepped) - lr * strength, 0)
    np.testing.assert_allclose(new["w"], expected, rtol=1e-6)
    assert (np.asarray(new["w"]) == 0).sum() == 2  # exactly zero, not 1e-9
    assert new["b"][0] == np.float32(0.003)  # masked: untouched although |0.003| < lr * strength


def test_prox_l1_follows_a_learning_rate_schedule_step_by_step():
    schedule = lambda step: 0.2 * 0.5**step
    strength = 0.3
    tx = gk.chain(gk.sgd(schedule), R.prox_l1(strength, schedule))
    w = jnp.array([0.4, -0.3, 0.05])
    state, reference = tx.init(w), np.asarray(w, np.float64)
    g = np.array([0.1, -0.2, 0.3])
    for step in range(4):
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state, w)
        w = gk.apply_updates(w, updates)
        lr = 0.2 * 0.5**step
        z = reference - lr * g
        reference = np.sign(z) * np.maximum(np.abs(z) - lr * strength, 0)
        np.testing.assert_allclose(w, reference, rtol=1e-6, atol=1e-7)
    assert int(state.count) == 4  # one counter for sgd's schedule and prox_l1's


def make_lasso_problem():
    rng = np.random.default_rng(0)
    n, d = 200, 30
    x = rng.normal(size=(n, d))
    true_w = np.zeros(d)
    true_w[:5] = [2.0, -1.5, 1.0, -0.5, 0.25]
    y = x @ true_w + 0.1 * rng.normal(size=n)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


def train(tx, loss, steps=1500):
    x, y = make_lasso_problem()
    w = jnp.zeros(x.shape[1])

    @jax.jit
    def run(w):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(loss)(w, x, y), state, w)
            return (gk.apply_updates(w, updates), state), None

        return jax.lax.scan(step, (w, tx.init(w)), None, length=steps)[0][0]

    return np.asarray(run(w))


def data_loss(w, x, y):
    return 0.5 * jnp.mean((x @ w - y) ** 2)


LR, STRENGTH = 0.3, 0.05


@pytest.fixture(scope="module")
def lasso_reference():
    sklearn = pytest.importorskip("sklearn.linear_model", reason="scikit-learn is not installed (gradkit[data])")
    x, y = make_lasso_problem()
    # sklearn's Lasso minimizes (1/2n)||y - Xw||^2 + alpha ||w||_1: our data_loss + STRENGTH * l1.
    model = sklearn.Lasso(alpha=STRENGTH, fit_intercept=False, tol=1e-12, max_iter=100_000)
    return model.fit(np.asarray(x, np.float64), np.asarray(y, np.float64)).coef_


def test_proximal_gradient_converges_to_sklearn_lasso(lasso_reference):
    w = train(gk.chain(gk.sgd(LR), R.prox_l1(STRENGTH, LR)), data_loss)
    np.testing.assert_array_equal(w == 0, lasso_reference == 0)
    np.testing.assert_allclose(w, lasso_reference, atol=1e-5)


def test_subgradient_l1_jitters_near_zero_while_prox_l1_gives_exact_zeros(lasso_reference):
    # Same problem, same learning rate, same number of steps; only the treatment of the L1 term differs.
    subgradient = train(gk.sgd(LR), lambda w, x, y: data_loss(w, x, y) + STRENGTH * R.l1(w))
    proximal = train(gk.chain(gk.sgd(LR), R.prox_l1(STRENGTH, LR)), data_loss)
    zeros = int((lasso_reference == 0).sum())
    assert zeros >= 20  # the lasso solution is sparse (25 of 30 coordinates here)
    assert int((proximal == 0).sum()) == zeros
    assert int((subgradient == 0).sum()) == 0  # not one exact zero...
    near = np.abs(subgradient[lasso_reference == 0])
    assert near.max() < 2 * LR * STRENGTH  # ...only jitter within a step of zero


def test_prox_l1_strength_is_data_under_vmap():
    strengths = jnp.array([0.0, 0.05, 0.5])
    x, y = make_lasso_problem()

    def fit(strength):
        tx = gk.chain(gk.sgd(LR), R.prox_l1(strength, LR))
        w = jnp.zeros(x.shape[1])

        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(data_loss)(w, x, y), state, w)
            return (gk.apply_updates(w, updates), state), None

        return jax.lax.scan(step, (w, tx.init(w)), None, length=300)[0][0]

    zeros = (np.asarray(jax.jit(jax.vmap(fit))(strengths)) == 0).sum(axis=1)
    assert zeros[0] == 0 and zeros[0] < zeros[1] < zeros[2]


def test_prox_l1_rejects_bad_input():
    with pytest.raises(ValueError, match="strength must be >= 0, got -1.0"):
        R.prox_l1(-1.0, 0.1)
    with pytest.raises(ValueError, match="learning_rate must be >= 0, got -0.1"):
        R.prox_l1(0.1, -0.1)
    tx = R.prox_l1(0.1, 0.1)
    with pytest.raises(ValueError, match="prox_l1 needs the params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
