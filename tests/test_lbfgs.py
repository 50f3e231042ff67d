"""L-BFGS against scipy's L-BFGS-B and torch.optim.LBFGS, the float32 and x64 bugs of optax, bad input.

Argument mapping:
- scipy.optimize.minimize(fg, x0, jac=True, method="L-BFGS-B", options={"maxcor": m}) ~ gk.lbfgs(memory_size=m).
  Without bounds L-BFGS-B's direction is the two-loop one (its compact B^-1 is H), and its first step is
  -g / ||g||_2 as here. Its Moré-Thuente line search tests c1 = 1e-3 (ftol), c2 = 0.9: with
  gk.zoom_linesearch(c1=1e-3) both accept the same steps on a quadratic (where both interpolations are exact).
  It stops on max|g_i| <= gtol or a small relative decrease of f; the tests stop it on ||g||_2 <= tol as
  gk.minimize does (a callback raising StopIteration), so the counts compare.
- torch.optim.LBFGS(lr=1, history_size=m, line_search_fn="strong_wolfe", tolerance_grad=0,
  tolerance_change=0, max_eval=large) ~ gk.lbfgs(memory_size=m). torch's first step is
  -g * min(1, 1 / ||g||_1) (gradkit: -g / ||g||_2), it stores a pair when s.y > 1e-10 (gradkit: when
  s.y > eps |g_prev.s|), and its line search may use only the evaluations left of max_eval per step().
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import requires_torch

import gradkit as gk
from gradkit.linesearch import find_state


def spd_matrix(n: int, condition: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q @ np.diag(np.logspace(0, np.log10(condition), n)) @ q.T


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def beale(p):
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def scipy_lbfgsb(f, x0, tol, memory_size=10, record=None):
    """scipy's L-BFGS-B stopped on ||g||_2 <= tol, like gk.minimize; returns its OptimizeResult."""
    from scipy.optimize import minimize

    value_and_grad = jax.jit(jax.value_and_grad(f))
    last = {}

    def fg(x):
        value, grad = value_and_grad(jnp.asarray(x))
        last["grad"] = np.asarray(grad, np.float64)
        return float(value), last["grad"]

    def callback(intermediate_result):
        if record is not None:
            record.append(intermediate_result.x.copy())
        if np.linalg.norm(last["grad"]) <= tol:
            raise StopIteration

    options = {"maxcor": memory_size, "gtol": 0.0, "ftol": 0.0, "maxiter": 10_000, "maxfun": 100_000}
    return minimize(fg, np.asarray(x0, np.float64), jac=True, method="L-BFGS-B", callback=callback, options=options)


def lbfgs_steps(tx, f, x, steps):
    """``steps`` updates of ``tx`` from ``x`` (one compiled scan): the iterates and the line-search evaluations."""

    def step(carry, _):
        x, state = carry
        value, grad = jax.value_and_grad(f)(x)
        updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=f)
        x = gk.apply_updates(x, updates)
        return (x, state), (x, find_state(state).evaluations)

    _, (xs, evaluations) = jax.jit(lambda x: jax.lax.scan(step, (x, tx.init(x)), length=steps))(x)
    return np.asarray(xs), np.asarray(evaluations)


def test_iterates_equal_scipy_lbfgsb_on_a_quadratic():
    # With c1 = scipy's ftol both searches accept the unit step or interpolate exactly, so the iterates agree.
    n = 30
    a = spd_matrix(n, 1e2, seed=1)
    c = np.random.default_rng(1).normal(size=n)
    record = []
    with jax.enable_x64(True):
        f = lambda x: 0.5 * (x - c) @ jnp.asarray(a) @ (x - c)
        theirs = scipy_lbfgsb(f, np.zeros(n), tol=1e-8, record=record)
        ours, evaluations = lbfgs_steps(gk.lbfgs(linesearch=gk.zoom_linesearch(c1=1e-3)), f, jnp.zeros(n), theirs.nit)
    assert theirs.nit >= 50
    np.testing.assert_allclose(ours, np.stack(record), rtol=0, atol=1e-12)
    assert 1 + evaluations.sum() == theirs.nfev


@pytest.mark.parametrize(
    ("f", "x0"),
    [(rosenbrock, (-1.2, 1.0)), (rosenbrock, (-1.2, 1.0) * 5), (beale, (1.0, 1.0))],
    ids=["rosenbrock-2d", "rosenbrock-10d", "beale"],
)
def test_minimize_needs_as_many_iterations_and_evaluations_as_scipy(f, x0):
    tol = 1e-6
    with jax.enable_x64(True):
        ours = gk.minimize(f, jnp.asarray(x0), tol=tol)
        theirs = scipy_lbfgsb(f, x0, tol=tol)
    assert bool(ours.converged) and np.linalg.norm(theirs.jac) <= tol
    assert abs(int(ours.iterations) - theirs.nit) <= 0.1 * theirs.nit
    assert abs(int(ours.evaluations) - theirs.nfev) <= 0.1 * theirs.nfev
    # Both stop at the same minimum (f* = 0 for both functions), within what ||g|| <= tol allows.
    np.testing.assert_allclose(ours.params, theirs.x, atol=1e-5)
    assert float(ours.value) < 1e-10 and theirs.fun < 1e-10


@requires_torch
def test_iterates_match_torch_lbfgs_strong_wolfe_on_a_quadratic():
    import torch

    n, steps = 60, 100
    a = spd_matrix(n, 1e3, seed=2)
    a = a / a[0, 0]  # so that the first trial point of both (see below) is the exact minimum along -g
    c = np.random.default_rng(2).normal(size=n)
    # Start where g = e_1: torch's first step -g min(1, 1/||g||_1) equals gradkit's -g / ||g||_2.
    x0 = c + np.linalg.solve(a, np.eye(n)[0])
    with jax.enable_x64(True):
        f = lambda x: 0.5 * (x - c) @ jnp.asarray(a) @ (x - c)
        ours, evaluations = lbfgs_steps(gk.lbfgs(memory_size=10), f, jnp.asarray(x0), steps)

    x = torch.tensor(x0, requires_grad=True)
    at, ct = torch.tensor(a), torch.tensor(c)
    opt = torch.optim.LBFGS(
        [x], lr=1, max_iter=1, max_eval=100, history_size=10, tolerance_grad=0, tolerance_change=0,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = 0.5 * (x - ct) @ at @ (x - ct)
        loss.backward()
        return loss

    for k in range(steps):
        opt.step(closure)
        np.testing.assert_allclose(ours[k], x.detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=f"step {k}")
    # torch evaluates once at the start of each step() and then in its line search.
    assert evaluations.sum() == opt.state[x]["func_evals"] - steps


def test_float32_near_zero_curvature_pair_is_skipped():
    # optax#1203: a pair whose curvature y/s underflows. s = 1e20, y = 2e-19: s.y = 20 is fine but
    # y.y = 4e-38 makes gamma = s.y / y.y = 5e38 > float32 max. optax 0.2.8 returns NaN updates here;
    # the pair is not stored, so the direction stays the first-step one, g / ||g||.
    f32 = jnp.float32
    tx = gk.scale_by_lbfgs()
    x0, x1 = jnp.array([0.0, 0.0], f32), jnp.array([1e20, 0.0], f32)
    g0, g1 = jnp.array([-4e-19, 1.0], f32), jnp.array([-2e-19, 1.0], f32)
    _, state = tx.update(g0, tx.init(x0), x0)
    direction, state = tx.update(g1, state, x1)
    assert int(state.inner[0].pairs) == 0
    np.testing.assert_allclose(direction, g1 / jnp.linalg.norm(g1), rtol=1e-6)


def test_float32_separable_logistic_regression_stays_finite():
    # The minimum is at infinity and the curvature vanishes on the way: every pair gets smaller s.y.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    y = np.sign(x @ np.array([2.0, -1.0], np.float32))
    f = lambda w: jnp.mean(jax.nn.softplus(-y * (x @ w)))
    result = gk.minimize(f, jnp.zeros(2, jnp.float32), tol=0.0, max_iter=300)
    assert np.all(np.isfinite(result.params)) and np.isfinite(result.value)
    assert float(result.value) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_state_dtypes_are_stable_under_scan_with_x64(dtype):
    # optax#1210: with x64 on, optax's lbfgs state changed dtypes between steps, which lax.scan refuses.
    with jax.enable_x64(True):
        tx = gk.lbfgs()
        x0 = jnp.array([-1.2, 1.0], dtype)
        f = lambda x: rosenbrock(x).astype(dtype)
        state = tx.init(x0)
        xs, _ = lbfgs_steps(tx, f, x0, 20)
        (_, after), _ = jax.lax.scan(
            lambda c, _: ((c[0], tx.update(jax.grad(f)(c[0]), c[1], c[0], value=f(c[0]), grad=jax.grad(f)(c[0]), value_fn=f)[1]), None),
            (x0, state),
            length=2,
        )  # fmt: skip
        assert jax.tree.map(lambda a: a.dtype, after) == jax.tree.map(lambda a: a.dtype, state)
        assert {a.dtype for a in jax.tree.leaves(state) if jnp.issubdtype(a.dtype, jnp.floating)} == {jnp.dtype(dtype)}
        assert xs.dtype == dtype


def test_pytree_params_follow_the_same_path_as_the_flat_vector():
    with jax.enable_x64(True):
        a = jnp.asarray(spd_matrix(6, 50.0, seed=3))
        f_flat = lambda v: 0.5 * v @ a @ v + 0.25 * jnp.sum(v**4) - jnp.sum(v)
        f_tree = lambda p: f_flat(jnp.concatenate([p["w"].reshape(-1), p["b"]]))
        v0 = jnp.linspace(-1.0, 1.0, 6)
        flat = gk.minimize(f_flat, v0, tol=1e-6)
        tree = gk.minimize(f_tree, {"w": v0[:4].reshape(2, 2), "b": v0[4:]}, tol=1e-6)
    assert bool(flat.converged) and bool(tree.converged)
    assert int(flat.iterations) == int(tree.iterations) and int(flat.evaluations) == int(tree.evaluations)
    # Only the order of the sums in the dot products differs.
    np.testing.assert_allclose(
        jnp.concatenate([tree.params["w"].reshape(-1), tree.params["b"]]), flat.params, atol=1e-12
    )


def test_curvature_pairs_with_negative_s_dot_y_are_not_stored():
    # On a concave line (f = -x^2 near 0) backtracking accepts steps with s.y < 0: no pair may be stored.
    f = lambda x: -jnp.sum(x**2) + 0.01 * jnp.sum(x**4)
    tx = gk.lbfgs(linesearch=gk.backtracking_linesearch())
    x = jnp.array([0.1, -0.2])
    state = tx.init(x)
    for _ in range(2):
        value, grad = jax.value_and_grad(f)(x)
        updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=f)
        x = gk.apply_updates(x, updates)
    assert int(state.inner[0].pairs) == 0


def test_fixed_step_lbfgs_without_line_search():
    # linesearch=gk.identity(): x <- x - lr H g. On a quadratic with exact curvature pairs the step from the
    # second iteration on is a quasi-Newton one; it still converges with lr = 1.
    with jax.enable_x64(True):
        a = jnp.diag(jnp.array([1.0, 3.0, 10.0]))
        f = lambda x: 0.5 * x @ a @ x
        result = gk.minimize(f, jnp.ones(3), gk.lbfgs(1.0, linesearch=gk.identity()), tol=1e-10, max_iter=100)
    assert bool(result.converged) and int(result.evaluations) == int(result.iterations) + 1


@pytest.mark.parametrize("memory_size", [0, -3, 2.5])
def test_bad_memory_size_is_named(memory_size):
    with pytest.raises(ValueError, match=f"memory_size must be an integer >= 1, got {memory_size}"):
        gk.lbfgs(memory_size=memory_size)


def test_complex_params_are_refused():
    with pytest.raises(
        TypeError, match=r"L-BFGS needs real floating-point params, but params\['z'\] has dtype complex64"
    ):
        gk.lbfgs().init({"z": jnp.ones(2, jnp.complex64)})


def test_missing_value_fn_names_it():
    tx = gk.lbfgs()
    x = jnp.ones(2)
    with pytest.raises(ValueError, match="zoom_linesearch needs value_fn"):
        tx.update(x, tx.init(x), x, value=jnp.sum(x), grad=x)
