"""Properties of the optimizers themselves: convergence, hyperparameters as data, numerics, bad input."""

from __future__ import annotations

import importlib.util

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_tree

import gradkit as gk

# Learning rates and step budgets per optimizer for the two convergence problems. RMSProp with a constant learning
# rate ends in a limit cycle of amplitude ~lr around the minimum (its step is ~lr * sign(g) near 0), hence the 2e-2
# Rosenbrock tolerance below rather than a loss threshold.
OPTIMIZERS = {
    "sgd": gk.sgd,
    "momentum": lambda lr: gk.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: gk.sgd(lr, momentum=0.9, nesterov=True),
    "adagrad": gk.adagrad,
    "rmsprop": lambda lr: gk.rmsprop(lr, decay=0.99),
    "adam": gk.adam,
    "adamw": lambda lr: gk.adamw(lr, weight_decay=1e-4),
}
PARABOLA_LR = {
    "sgd": 0.05,
    "momentum": 0.02,
    "nesterov": 0.02,
    "adagrad": 1.0,
    "rmsprop": 1e-2,
    "adam": 0.05,
    "adamw": 0.05,
}
ROSENBROCK = {
    "sgd": (1e-3, 20000),
    "momentum": (1e-3, 5000),
    "nesterov": (1e-3, 5000),
    "adagrad": (0.5, 20000),
    "rmsprop": (1e-3, 20000),
    "adam": (2e-2, 5000),
    "adamw": (2e-2, 5000),
}


def parabola(x):
    """An elongated bowl, condition number 10, minimum at 0."""
    return 0.5 * (x[0] ** 2 + 10.0 * x[1] ** 2)


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def minimize(tx, f, start, steps):
    """Run ``steps`` updates of ``tx`` on ``f`` with lax.scan; returns the final params."""

    def body(carry, _):
        x, state = carry
        updates, state = tx.update(jax.grad(f)(x), state, x)
        return (gk.apply_updates(x, updates), state), None

    (x, _), _ = jax.lax.scan(body, (start, tx.init(start)), None, length=steps)
    return x


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_converges_on_parabola(name):
    x = jax.jit(lambda: minimize(OPTIMIZERS[name](PARABOLA_LR[name]), parabola, jnp.array([3.0, -2.0]), 1000))()
    assert float(jnp.linalg.norm(x)) < 1e-2, x


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_converges_on_rosenbrock(name):
    lr, steps = ROSENBROCK[name]
    x = jax.jit(lambda: minimize(OPTIMIZERS[name](lr), rosenbrock, jnp.array([-1.2, 1.0]), steps))()
    assert float(jnp.linalg.norm(x - 1.0)) < 2e-2, x


# -- hyperparameters are data -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_vmapped_learning_rate_grid_equals_separate_runs(name):
    lrs = jnp.array([1e-3, 3e-3, 1e-2, 3e-2])
    run = lambda lr: minimize(OPTIMIZERS[name](lr), rosenbrock, jnp.array([-1.2, 1.0]), 200)
    grid = jax.jit(jax.vmap(run))(lrs)
    separate = jnp.stack([jax.jit(run)(lr) for lr in lrs])
    np.testing.assert_allclose(grid, separate, rtol=1e-6)


def test_vmap_over_betas_and_momentum():
    b1s, momenta = jnp.array([0.5, 0.9]), jnp.array([0.0, 0.9])
    adam_grid = jax.vmap(lambda b1: minimize(gk.adam(1e-2, b1=b1), parabola, jnp.array([1.0, 1.0]), 50))(b1s)
    sgd_grid = jax.vmap(lambda m: minimize(gk.sgd(1e-2, momentum=m), parabola, jnp.array([1.0, 1.0]), 50))(momenta)
    for i in range(2):
        np.testing.assert_allclose(
            adam_grid[i], minimize(gk.adam(1e-2, b1=float(b1s[i])), parabola, jnp.array([1.0, 1.0]), 50), rtol=1e-6
        )
        np.testing.assert_allclose(
            sgd_grid[i],
            minimize(gk.sgd(1e-2, momentum=float(momenta[i])), parabola, jnp.array([1.0, 1.0]), 50),
            rtol=1e-6,
        )


def test_changing_an_array_hyperparameter_does_not_recompile():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(lr, b1, params, state, grads):
        return gk.adam(lr, b1=b1).update(grads, state, params)

    chex.clear_trace_counter()
    params = random_tree(0)
    state = gk.adam().init(params)  # the state does not depend on the hyperparameters
    for lr, b1 in [(1e-3, 0.9), (0.1, 0.5), (0.5, 0.99)]:
        step(jnp.float32(lr), jnp.float32(b1), params, state, params)


# -- numerics -----------------------------------------------------------------------------------

ALL = {
    "sgd": lambda: gk.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adagrad": lambda: gk.adagrad(0.1),
    "rmsprop": lambda: gk.rmsprop(0.1),
    "adam": lambda: gk.adam(0.1, weight_decay=0.01),
    "adamw": lambda: gk.adamw(0.1),
    "clip": lambda: gk.chain(
        gk.clip_by_global_norm(1.0), gk.scale_by_adam(mu_dtype=jnp.bfloat16), gk.scale_by_learning_rate(0.1)
    ),
}


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_updates_keep_gradient_dtype_and_state_dtypes_are_stable(name, dtype):
    """A float32 hyperparameter array must not promote low-precision updates, and the state must survive lax.cond."""
    tx = {**ALL, "adam": lambda: gk.adam(jnp.float32(0.1), b1=jnp.float32(0.9), weight_decay=0.01)}[name]()
    params = random_tree(0, dtype)
    state0 = tx.init(params)
    updates, state1 = tx.update(params, state0, params)
    chex.assert_trees_all_equal_dtypes(updates, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(state0, state1)
    chosen = jax.lax.cond(True, lambda: state1, lambda: state0)  # raises if any dtype or weak type differs
    chex.assert_trees_all_equal_shapes_and_dtypes(chosen, state0)


def test_bias_correction_is_float32_for_bfloat16_moments():
    """In bfloat16, 0.999 rounds to 1.0, so 1 - b2**t would be 0 and v_hat infinite."""
    moment = {"v": jnp.full((3,), 1e-3, jnp.bfloat16)}
    corrected = gk.bias_correction(moment, 0.999, jnp.int32(1))
    assert corrected["v"].dtype == jnp.float32
    np.testing.assert_allclose(corrected["v"], float(jnp.bfloat16(1e-3)) / (1 - np.float32(0.999)), rtol=1e-6)


def test_low_precision_moments_are_rounded_once_per_step():
    rng = np.random.default_rng(0)
    m = jnp.asarray(rng.normal(size=1000), jnp.bfloat16)
    g = jnp.asarray(rng.normal(size=1000), jnp.bfloat16)
    for order, power in [(1, lambda x: x), (2, lambda x: x * x)]:
        once = (0.9 * np.asarray(m, np.float32) + np.float32(1 - 0.9) * power(np.asarray(g, np.float32))).astype(
            jnp.bfloat16
        )
        np.testing.assert_array_equal(gk.update_moment({"g": g}, {"g": m}, 0.9, order)["g"], once)


def test_adam_with_bfloat16_moments_gives_finite_first_step():
    params = {"w": jnp.ones(4, jnp.bfloat16)}
    tx = gk.chain(gk.scale_by_adam(mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16), gk.scale_by_learning_rate(1.0))
    updates, state = tx.update({"w": jnp.full(4, 0.5, jnp.bfloat16)}, tx.init(params), params)
    # m_hat / sqrt(v_hat) = g / |g| = 1 at the first step, up to bfloat16 storage of m and v (8 mantissa bits).
    np.testing.assert_allclose(np.asarray(updates["w"], np.float32), -1.0, rtol=1e-2)
    assert state.inner[0].mu["w"].dtype == jnp.bfloat16


def test_step_count_saturates_instead_of_wrapping():
    params = {"w": jnp.ones(2)}
    tx = gk.adam(1e-3)
    state = tx.init(params)._replace(count=jnp.int32(np.iinfo(np.int32).max - 1))
    for _ in range(3):
        updates, state = tx.update({"w": jnp.ones(2)}, state, params)
        assert np.all(np.isfinite(updates["w"]))
    assert int(state.count) == np.iinfo(np.int32).max


def test_one_step_counter_per_chain():
    """Nested chains are flattened: Adam's bias correction and the schedule share the chain's counter."""
    tx = gk.chain(gk.clip_by_global_norm(1.0), gk.adamw(lambda t: 0.1 / (t + 1)))
    state = tx.init({"w": jnp.ones(2)})
    counters = [leaf for leaf in jax.tree.leaves(state) if leaf.dtype == jnp.int32]
    assert len(counters) == 1 and isinstance(state, gk.ChainState)


def test_complex_second_moments_are_real():
    params = {"z": jnp.array([1 + 2j, -0.5j], jnp.complex64)}
    for tx in [gk.adam(0.1), gk.rmsprop(0.1), gk.adagrad(0.1)]:
        updates, state = tx.update(params, tx.init(params), params)
        moments = [x for x in jax.tree.leaves(state.inner) if x.dtype != jnp.complex64]
        assert moments and all(x.dtype == jnp.float32 for x in moments)
        assert updates["z"].dtype == jnp.complex64


def test_complex_adam_first_step_is_unit_phase():
    """At the first step Adam's update is -lr * g / |g| (per entry), also for complex g.

    Betas exact in float32 (0.5, 0.75) keep the check exact: with b2=0.999 the moment is scaled by 1 - 0.999 (rounded
    from float64) but corrected by 1 - float32(0.999), which differ by 1.3e-5 relative (optax computes it the same way).
    """
    g = jnp.array([3 + 4j, -1j], jnp.complex64)
    tx = gk.adam(0.1, b1=0.5, b2=0.75, eps=0.0)
    updates, _ = tx.update({"z": g}, tx.init({"z": g}), {"z": g})
    np.testing.assert_allclose(updates["z"], -0.1 * g / jnp.abs(g), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL))
def test_zero_size_scalar_none_leaves_and_empty_trees(name):
    tx = ALL[name]()
    params = random_tree(3)  # has a scalar, a (0, 5) leaf and a None leaf
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    assert updates["frozen"] is None and updates["empty"].shape == (0, 5) and updates["layers"][1].shape == ()
    empty_updates, _ = tx.update({}, tx.init({}), {})
    assert empty_updates == {}


def test_apply_updates_keeps_param_dtype():
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
    new = gk.apply_updates(params, {"a": jnp.ones(2, jnp.float32), "b": jnp.ones(2, jnp.bfloat16)})
    assert new["a"].dtype == jnp.bfloat16 and new["b"].dtype == jnp.float32


def test_eps_zero_with_zero_gradient_is_not_nan():
    params = {"w": jnp.zeros(3)}
    for tx in [
        gk.adagrad(0.1, eps=0.0),
        gk.rmsprop(0.1, eps=0.0),
        gk.chain(gk.scale_by_rms(eps=0.0, eps_in_sqrt=True)),
    ]:
        updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
        np.testing.assert_array_equal(updates["w"], 0.0)


# -- bad input ----------------------------------------------------------------------------------

BAD = [
    (lambda: gk.sgd(-0.1), "learning_rate must be >= 0, got -0.1"),
    (lambda: gk.adam(float("nan")), "learning_rate must be a number (not NaN), got nan"),
    (lambda: gk.adam(1e-3, eps=-1e-8), "eps must be >= 0, got -1e-08"),
    (lambda: gk.adam(1e-3, b1=1.0), "b1 must be in [0, 1), got 1.0"),
    (lambda: gk.adamw(1e-3, b2=-0.1), "b2 must be in [0, 1), got -0.1"),
    (lambda: gk.rmsprop(1e-3, decay=1.5), "decay must be in [0, 1), got 1.5"),
    (lambda: gk.sgd(0.1, momentum=1.0), "momentum must be in [0, 1), got 1.0"),
    (lambda: gk.sgd(0.1, weight_decay=-1e-4), "weight_decay must be >= 0, got -0.0001"),
    (lambda: gk.adamw(1e-3, weight_decay=-0.01), "weight_decay must be >= 0, got -0.01"),
    (lambda: gk.sgd(0.1, nesterov=True), "nesterov=True needs momentum > 0, got momentum=0.0"),
    (lambda: gk.adagrad(0.1, initial_accumulator_value=-1.0), "initial_accumulator_value must be >= 0, got -1.0"),
    (lambda: gk.clip_by_global_norm(0.0), "max_norm must be > 0, got 0.0"),
    (lambda: gk.adam(jnp.float32(-1.0)), "learning_rate must be >= 0"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_hyperparameters_raise_before_tracing(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


def test_traced_hyperparameters_are_not_checked():
    # Inside jit the value is unknown; the optimizer is built and runs.
    out = jax.jit(lambda lr: gk.sgd(lr).update({"w": jnp.ones(1)}, gk.sgd(0.1).init({"w": jnp.ones(1)}))[0])(0.5)
    np.testing.assert_allclose(out["w"], -0.5)


def test_mismatched_gradient_tree_shows_both_structures():
    tx = gk.adam()
    params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    text = str(info.value)
    assert "updates: PyTreeDef({'w': *})" in text and "PyTreeDef({'b': *, 'w': *})" in text


def test_integer_params_raise_type_error():
    # Only a stateful optimizer looks at the leaves (plain SGD's init never does, as optax's).
    with pytest.raises(TypeError, match=r"only floating \(or complex\) leaves can be optimized.*params\['n'\].*int32"):
        gk.sgd(0.1, momentum=0.9).init({"w": jnp.ones(2), "n": jnp.arange(3)})


def test_state_from_another_optimizer_is_rejected():
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="got a state it did not make"):
        gk.adam().update(params, gk.sgd(0.1, momentum=0.9, weight_decay=0.1).init(params), params)


def test_decayed_weights_need_params():
    tx = gk.adamw()
    with pytest.raises(ValueError, match="needs the params"):
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


# -- drop-in for code written against optax ------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("flax") is None, reason="flax is not installed (`pip install -e .[test]` installs it)"
)
def test_works_in_flax_nnx_optimizer():
    from flax import nnx

    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gk.adamw(1e-2), wrt=nnx.Param)
    x = jnp.ones((4, 3))
    loss = lambda m: jnp.mean(m(x) ** 2)
    before = loss(model)
    for _ in range(20):
        optimizer.update(model, nnx.grad(loss)(model))
    assert loss(model) < before
