"""Properties every optimizer of ``gk.optimizers.BY_NAME`` must have, checked for each by name.

Numerics (dtype stability through ``lax.cond``, bfloat16/float16, complex where the math allows, odd trees, NaN
propagation), hyperparameters as traced data (a vmapped learning-rate grid equals separate runs; new values of every
float hyperparameter do not recompile), and bad input for the optimizers added beyond the lecture.
"""

from __future__ import annotations

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_tree

import gradkit as gk

NAMES = sorted(gk.optimizers.BY_NAME)
# The lecture's five have these checks in tests/test_optimizers.py already.
LECTURE = ["adagrad", "adam", "adamw", "rmsprop", "sgd"]
# L-BFGS needs value_fn (its line search) and is tested in tests/test_lbfgs.py.
NEW = sorted(set(NAMES) - set(LECTURE) - {"lbfgs"})
LR = 0.05
# Muon's Newton-Schulz iteration is written for real matrices (torch's Muon rejects complex params too).
REAL_ONLY = {"muon"}


def build(name, lr=LR, **kwargs):
    return gk.optimizers.BY_NAME[name](lr, **kwargs)


def float_hyperparameters(name) -> dict[str, float]:
    """Every argument of ``gk.NAME`` whose default is a float (the learning rate included): these are data."""
    params = inspect.signature(gk.optimizers.BY_NAME[name]).parameters
    found = {k: p.default for k, p in params.items() if type(p.default) is float}
    return {"learning_rate": LR, **found}


def test_every_optimizer_is_a_public_function_whose_first_argument_is_the_learning_rate():
    for name, f in gk.optimizers.BY_NAME.items():
        assert getattr(gk, name) is f and getattr(gk.optimizers, name) is f and name in gk.__all__
        assert next(iter(inspect.signature(f).parameters)) == "learning_rate", name


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])  # float16 takes bfloat16's path
@pytest.mark.parametrize("name", NEW)
def test_updates_keep_dtypes_states_survive_lax_cond_and_odd_trees_pass(name, dtype):
    """Array hyperparameters (float32) must not promote low-precision updates; scalar, empty and None leaves pass;
    NaN gradients give NaN updates."""
    tx = build(name, jnp.float32(LR))
    params = random_tree(0, dtype)  # a (4, 3) matrix, a vector, a (2, 2, 3) leaf, a scalar, a (0, 5) leaf, None
    state0 = tx.init(params)
    step = jax.jit(tx.update)
    updates, state1 = step(params, state0, params)
    updates, state2 = step(params, state1, params)
    chex.assert_trees_all_equal_dtypes(updates, params)
    chex.assert_trees_all_equal_shapes(updates, params)
    assert updates["frozen"] is None
    chex.assert_trees_all_equal_shapes_and_dtypes(state0, state2)
    chosen = jax.lax.cond(True, lambda: state2, lambda: state0)  # raises if any dtype or weak type differs
    chex.assert_trees_all_equal_shapes_and_dtypes(chosen, state0)
    assert all(bool(jnp.all(jnp.isfinite(x.astype(jnp.float32)))) for x in jax.tree.leaves(updates))
    empty_updates, _ = tx.update({}, tx.init({}), {})
    assert empty_updates == {}
    # NaN gradients propagate into the update (never a silent zero step); the same compiled step
    nan_updates, _ = step(jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), params), state2, params)
    assert all(bool(jnp.all(jnp.isnan(u))) for u in jax.tree.leaves(nan_updates)), name


@pytest.mark.parametrize("name", sorted(set(NEW) - REAL_ONLY))
def test_complex_params_give_complex_updates_and_real_second_moments(name):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 2)) + 1j * rng.normal(size=(3, 2)), jnp.complex64)}
    tx = build(name)
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update(params, state, params)
    assert updates["w"].dtype == jnp.complex64 and bool(jnp.all(jnp.isfinite(updates["w"])))
    assert float(jnp.max(jnp.abs(updates["w"].imag))) > 0
    for leaf in jax.tree.leaves(state):
        assert leaf.dtype in (jnp.complex64, jnp.float32, jnp.int32), (name, leaf.dtype)


@pytest.mark.parametrize("name", LECTURE)
def test_nan_gradients_propagate_into_the_update_of_the_lectures_optimizers(name):
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    tx = build(name)
    grads = {"w": jnp.full((3, 2), jnp.nan), "b": jnp.full(2, jnp.nan)}
    updates, _ = tx.update(grads, tx.init(params), params)
    assert all(bool(jnp.all(jnp.isnan(u))) for u in jax.tree.leaves(updates)), name


def quadratic(p):
    """A bowl over a small tree with a matrix (for Muon and Adafactor) and a vector."""
    return 0.5 * jnp.sum((p["w"] - 1.0) ** 2) + jnp.sum(jnp.cos(p["w"])) + jnp.sum(p["b"] ** 2)


START = {"w": jnp.arange(6.0).reshape(3, 2) / 3, "b": jnp.array([1.0, -2.0])}


def run(name, hyper, steps=20):
    """``steps`` updates of ``gk.NAME(**hyper)`` on the quadratic, in one lax.scan."""
    tx = gk.optimizers.BY_NAME[name](**hyper)

    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(quadratic)(p), s, p)
        return (gk.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (START, tx.init(START)), None, length=steps)
    return p


@pytest.mark.parametrize("name", NEW)
def test_hyperparameters_are_data_vmap_over_learning_rates_and_no_recompile(name):
    hyper = float_hyperparameters(name)
    chex.clear_trace_counter()
    once = jax.jit(chex.assert_max_traces(lambda h: run(name, h), n=1))
    arrays = lambda h: {k: jnp.float32(v) for k, v in h.items()}
    lrs = jnp.array([1e-3, 1e-2, 5e-2])
    separate = [once(arrays({**hyper, "learning_rate": float(lr)})) for lr in lrs]
    once(arrays({k: 0.9 * v for k, v in hyper.items()}))  # every hyperparameter changed: still one trace
    grid = jax.jit(jax.vmap(lambda lr: run(name, {**arrays(hyper), "learning_rate": lr})))(lrs)
    for i, one in enumerate(separate):
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], grid), one, rtol=1e-6, atol=1e-7)
    assert float(jnp.max(jnp.abs(separate[2]["w"] - START["w"]))) > 0  # the runs moved


BAD = [
    (lambda: gk.nadam(-1e-3), "learning_rate must be >= 0, got -0.001"),
    (lambda: gk.nadam(1e-3, momentum_decay=-1.0), "momentum_decay must be >= 0, got -1.0"),
    (lambda: gk.nadam(1e-3, b1=1.0), "b1 must be in [0, 1), got 1.0"),
    (lambda: gk.nadam(1e-3, weight_decay=-0.1, decoupled_weight_decay=True), "weight_decay must be >= 0, got -0.1"),
    (lambda: gk.radam(1e-3, threshold=float("nan")), "threshold must be a number (not NaN), got nan"),
    (lambda: gk.radam(1e-3, b2=1.5), "b2 must be in [0, 1), got 1.5"),
    (lambda: gk.amsgrad(1e-3, eps=-1.0), "eps must be >= 0, got -1.0"),
    (lambda: gk.adamax(1e-3, b2=-0.5), "b2 must be in [0, 1), got -0.5"),
    (lambda: gk.adadelta(rho=1.0), "rho must be in [0, 1), got 1.0"),
    (lambda: gk.adabelief(1e-3, eps_root=-1e-16), "eps_root must be >= 0, got -1e-16"),
    (lambda: gk.lion(1e-4, b2=1.0), "b2 must be in [0, 1), got 1.0"),
    (lambda: gk.lion(1e-4, weight_decay=-1.0), "weight_decay must be >= 0, got -1.0"),
    (lambda: gk.lars(0.1, trust_coefficient=-1.0), "trust_coefficient must be >= 0, got -1.0"),
    (lambda: gk.lars(0.1, momentum=1.0), "momentum must be in [0, 1), got 1.0"),
    (lambda: gk.lamb(1e-3, b1=-0.1), "b1 must be in [0, 1), got -0.1"),
    (lambda: gk.adafactor(1e-2, clipping_threshold=0.0), "threshold must be > 0, got 0.0"),
    (lambda: gk.adafactor(1e-2, eps2=-1.0), "eps2 must be >= 0, got -1.0"),
    (lambda: gk.adafactor(1e-2, eps=-1.0), "eps must be >= 0, got -1.0"),
    (lambda: gk.adafactor(1e-2, decay_exponent=-0.8), "decay_exponent must be >= 0, got -0.8"),
    (lambda: gk.muon(1e-3, ns_steps=2.5), "ns_steps must be an integer >= 0, got 2.5"),
    (lambda: gk.muon(1e-3, ns_coefficients=(1.0, 2.0)), "ns_coefficients must be three numbers (a, b, c)"),
    (lambda: gk.muon(1e-3, momentum=1.0), "momentum must be in [0, 1), got 1.0"),
    (lambda: gk.muon(1e-3, adam_b2=1.0), "b2 must be in [0, 1), got 1.0"),
    (lambda: gk.schedule_free_sgd(1.0, b1=0.0), "b1 must be in (0, 1], got 0.0"),
    (lambda: gk.schedule_free_adamw(-1.0), "learning_rate must be >= 0, got -1.0"),
    (lambda: gk.schedule_free_adamw(1e-3, weight_lr_power=-2.0), "weight_lr_power must be >= 0, got -2.0"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_hyperparameters_raise_before_tracing(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


def test_optimizers_that_need_params_say_so():
    g = {"w": jnp.ones((2, 2))}
    for tx in [gk.lars(0.1), gk.lamb(), gk.adafactor(), gk.schedule_free_sgd()]:
        with pytest.raises(ValueError, match="needs the params"):
            tx.update(g, tx.init(g))


def test_schedule_free_eval_params_wants_a_schedule_free_state():
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="needs the state of a schedule-free optimizer, got ChainState holding 0"):
        gk.schedule_free_eval_params(gk.adam().init(params), params)
    state = gk.schedule_free_sgd().init(params)
    np.testing.assert_array_equal(gk.schedule_free_eval_params(state, params)["w"], params["w"])  # x = y = z at start
