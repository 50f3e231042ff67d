"""gk.minimize: honest evaluation counts, any optimizer, pytrees, float32/float64, vmap, one compile, bad input."""

from __future__ import annotations

import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk

solver = importlib.import_module("gradkit.minimize")  # gk.minimize is the function


def counted(f, calls):
    """``f`` that appends to ``calls`` each time it is evaluated (also inside the compiled loop)."""

    def g(x):
        jax.debug.callback(lambda: calls.append(1))
        return f(x)

    return g


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize(
    "optimizer",
    [None, gk.lbfgs(linesearch=gk.backtracking_linesearch()), gk.adam(0.05)],
    ids=["lbfgs-zoom", "lbfgs-backtracking", "adam"],
)
def test_evaluations_count_every_call_of_fun(optimizer):
    calls = []
    f = counted(rosenbrock, calls)
    result = gk.minimize(f, jnp.array([-1.2, 1.0]), optimizer, max_iter=60)
    jax.effects_barrier()
    # The eval_shape check of fun traces it once but never runs it.
    assert len(calls) == int(result.evaluations)
    assert int(result.evaluations) >= int(result.iterations) + 1


def test_adam_through_minimize_equals_a_python_loop():
    f = lambda x: jnp.sum((x - jnp.array([1.0, -2.0])) ** 2 * jnp.array([1.0, 10.0]))
    x0 = jnp.array([3.0, 3.0])
    result = gk.minimize(f, x0, gk.adam(0.1), max_iter=50, tol=0.0)
    tx, x = gk.adam(0.1), x0
    state = tx.init(x)
    step = jax.jit(lambda x, s: tx.update(jax.grad(f)(x), s, x))
    for _ in range(50):
        updates, state = step(x, state)
        x = gk.apply_updates(x, updates)
    np.testing.assert_allclose(result.params, x, rtol=1e-6)
    assert int(result.iterations) == 50 and int(result.evaluations) == 51 and not result.converged


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_least_squares_on_a_pytree_in_each_dtype(dtype):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    with jax.enable_x64(dtype == "float64"):
        xj, yj = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        f = lambda p: jnp.mean((xj @ p["w"] + p["b"] - yj) ** 2)
        params = {"w": jnp.zeros(3, dtype), "b": jnp.zeros((), dtype)}
        result = gk.minimize(f, params, tol=1e-5)
    design = np.c_[x, np.ones(50)]
    exact = np.linalg.lstsq(design, y, rcond=None)[0]
    assert bool(result.converged) and result.params["w"].dtype == dtype and result.value.dtype == dtype
    np.testing.assert_allclose(np.r_[result.params["w"], result.params["b"]], exact, atol=1e-4)


def test_vmap_over_a_batch_of_problems_equals_separate_solves():
    with jax.enable_x64(True):
        targets = jnp.array([[1.0, 1.0], [2.0, 4.0], [-1.0, 1.0]])
        starts = jnp.array([[-1.2, 1.0], [0.0, 0.0], [1.5, -0.5]])

        def solve(target, start):
            f = lambda p: (target[0] - p[0]) ** 2 + 10.0 * (p[1] - p[0] ** 2) ** 2 + jnp.sum((p - target) ** 4)
            return gk.minimize(f, start, tol=1e-8)

        together = jax.vmap(solve)(targets, starts)
        for i in range(3):
            alone = jax.jit(solve)(targets[i], starts[i])  # one compile for the three
            np.testing.assert_allclose(together.params[i], alone.params, rtol=1e-12)
            assert int(together.iterations[i]) == int(alone.iterations)
            assert int(together.evaluations[i]) == int(alone.evaluations)
    assert len(set(np.asarray(together.iterations).tolist())) > 1  # they did stop at different iterations
    assert bool(jnp.all(together.converged))


def test_stops_at_max_iter_unconverged():
    result = gk.minimize(rosenbrock, jnp.array([-1.2, 1.0]), max_iter=5)
    assert int(result.iterations) == 5 and not bool(result.converged) and float(result.grad_norm) > 1e-5


def test_stops_when_a_step_no_longer_moves():
    # float32 with tol = 0: the search finally finds no lower value and the loop ends long before max_iter.
    result = gk.minimize(rosenbrock, jnp.array([-1.2, 1.0]), tol=0.0, max_iter=10_000)
    assert int(result.iterations) < 200 and float(result.value) < 1e-10


def test_a_second_solve_reuses_the_compiled_loop():
    f = lambda x: jnp.sum((x - 2.0) ** 2)
    gk.minimize(f, jnp.zeros(3))
    before = solver._solve._cache_size()
    gk.minimize(f, jnp.ones(3), max_iter=10, tol=1e-3)
    assert solver._solve._cache_size() == before


def test_jitted_minimize_traces_once():
    f = lambda x: jnp.sum((x - 2.0) ** 2)

    @jax.jit
    @chex.assert_max_traces(1)
    def solve(x):
        return gk.minimize(f, x).params

    solve(jnp.zeros(3))
    np.testing.assert_allclose(solve(jnp.ones(3)), 2.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: gk.minimize(3.0, jnp.zeros(2)), TypeError, "fun must be a function"),
        (lambda: gk.minimize(lambda p: p, jnp.zeros(2)), ValueError, "fun must return a scalar loss"),
        (
            lambda: gk.minimize(jnp.sum, jnp.zeros(2), max_iter=-1),
            ValueError,
            "max_iter must be an integer >= 0, got -1",
        ),
        (lambda: gk.minimize(jnp.sum, jnp.zeros(2), tol=-1e-3), ValueError, "tol must be >= 0, got -0.001"),
        (lambda: gk.minimize(jnp.sum, jnp.zeros(2), "lbfgs"), TypeError, "optimizer must be a gradient transformation"),
        (lambda: gk.minimize(jnp.sum, jnp.zeros(2, jnp.int32)), TypeError, "only floating"),
    ],
)
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
