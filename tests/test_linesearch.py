"""The line searches: the conditions they promise, closed forms, torch's strong-Wolfe search, failure modes, bad input.

Convention mapping (gradkit -> torch.optim.lbfgs._strong_wolfe): zoom_linesearch(max_steps, c1, c2) ->
_strong_wolfe(obj_func, x, t=1, d, f, g, gtd, c1, c2, tolerance_change=0, max_ls=max_steps). torch also
stops when the bracket is shorter than tolerance_change / max|d| (off here) and LBFGS passes
max_ls = the evaluations left of max_eval; otherwise the tests, the cubic (N&W eq. 3.59), the bracketing
bounds [t + 0.01 (t - t_prev), 10 t] and the near-end safeguard are the same.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk
from gradkit.linesearch import find_state


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def search(tx, f, x, d):
    """One search from ``x`` along ``d``, compiled as one program: (t, state)."""

    @jax.jit
    def run(x, d):
        value, grad = jax.value_and_grad(f)(x)
        return tx.update(d, tx.init(x), x, value=value, grad=grad, value_fn=f)

    updates, state = run(x, d)
    ls = find_state(state)
    np.testing.assert_allclose(updates, ls.step_size * d, rtol=1e-12)
    return float(ls.step_size), ls


# Lines through Rosenbrock along -grad, scaled so the first trial t = 1 is too short (extrapolation),
# acceptable, or too long (zoom).
LINES = [((-1.2, 1.0), 1e-4), ((-1.2, 1.0), 1.0), ((2.0, 2.0), 0.1)]


def torch_rosenbrock(x, t, d):

    p = (x + t * d).clone().requires_grad_(True)
    f = 100.0 * (p[1:] - p[:-1] ** 2).pow(2).sum() + (1.0 - p[:-1]).pow(2).sum()
    f.backward()
    return float(f.detach()), p.grad


@pytest.mark.parametrize(("start", "scale"), LINES)
def test_zoom_step_satisfies_strong_wolfe_and_matches_torch(start, scale):
    c1, c2 = 1e-4, 0.9
    with jax.enable_x64(True):
        x = jnp.asarray(start)
        d = -scale * jax.grad(rosenbrock)(x)
        t, ls = search(gk.zoom_linesearch(max_steps=25, c1=c1, c2=c2), rosenbrock, x, d)
        f0, slope0 = float(rosenbrock(x)), float(jax.grad(rosenbrock)(x) @ d)
        f, g = jax.value_and_grad(rosenbrock)(x + t * d)
        f, slope, g = float(f), float(g @ d), np.asarray(g)
    assert not ls.failed and t > 0
    assert f <= f0 + c1 * t * slope0
    assert abs(slope) <= c2 * abs(slope0)
    # The state holds f and its gradient at the accepted point (up to the FMA XLA makes of x + t d).
    np.testing.assert_allclose(ls.value, f, rtol=1e-12)
    np.testing.assert_allclose(ls.grad, g, rtol=1e-10)

    torch = pytest.importorskip("torch")
    from torch.optim.lbfgs import _strong_wolfe

    xt, dt = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(d))
    f0, g0 = torch_rosenbrock(xt, 0.0, dt)
    f_new, g_new, t_torch, evals = _strong_wolfe(
        torch_rosenbrock, xt, 1.0, dt, f0, g0, g0 @ dt, c1=c1, c2=c2, tolerance_change=0.0, max_ls=25
    )
    assert t == pytest.approx(float(t_torch), rel=1e-6)
    assert int(ls.evaluations) == evals
    np.testing.assert_allclose(ls.value, f_new, rtol=1e-6)
    np.testing.assert_allclose(ls.grad, g_new.numpy(), rtol=1e-6)


def test_zoom_lands_on_the_exact_minimum_of_a_quadratic_line():
    # phi(t) = f(x + t d) for f = 0.5 x'Ax is a parabola; the cubic through two points with slopes is exact.
    with jax.enable_x64(True):
        A = jnp.diag(jnp.array([1.0, 30.0]))
        f = lambda x: 0.5 * x @ A @ x
        x = jnp.array([1.0, 1.0])
        d = -A @ x  # t = 1 overshoots: the minimum along d is at t* = g'g / g'Ag
        t, ls = search(gk.zoom_linesearch(), f, x, d)
        assert t == pytest.approx(float((d @ d) / (d @ A @ d)), rel=1e-12)
        assert int(ls.evaluations) == 2


def test_zoom_on_a_line_without_minimum_extrapolates_and_takes_the_last_trial():
    # f = -sum(x): the slope never flattens and the cubic through two trials has no minimum, so each next
    # trial is the midpoint of the bracketing bounds [t + 0.01 (t - t_prev), 10 t]; after max_steps the
    # last (lowest) trial is taken and the search reports failure.
    with jax.enable_x64(True):
        f = lambda x: -jnp.sum(x)
        t, ls = search(gk.zoom_linesearch(max_steps=4), f, jnp.zeros(2), jnp.ones(2))
    trials = [0.0, 1.0]
    for _ in range(3):
        t_prev, t_now = trials[-2:]
        trials.append((t_now + 0.01 * (t_now - t_prev) + 10 * t_now) / 2)
    assert t == pytest.approx(trials[-1], rel=1e-12) and bool(ls.failed) and int(ls.evaluations) == 4


def test_backtracking_takes_the_first_armijo_step():
    # Along d = -k * grad of x^2 (k = 3): phi(t) = (1 - 6t)^2 x^2; Armijo holds from t <= (2 - 2 c1) / 6.
    with jax.enable_x64(True):
        f = lambda x: jnp.sum(x**2)
        x = jnp.array([1.0, -2.0])
        c1, decrease = 1e-4, 0.5
        t, ls = search(gk.backtracking_linesearch(c1=c1, decrease=decrease), f, x, -3 * jax.grad(f)(x))
        expected = next(decrease**j for j in range(20) if decrease**j <= (2 - 2 * c1) / 6)
        assert t == expected and int(ls.evaluations) == 3 and not ls.failed
        np.testing.assert_allclose(ls.grad, jax.grad(f)(x - t * 3 * jax.grad(f)(x)), rtol=1e-14)


@pytest.mark.parametrize("make", [gk.zoom_linesearch, gk.backtracking_linesearch])
def test_uphill_direction_gives_a_zero_step_and_failed(make):
    f = lambda x: jnp.sum(x**2)
    x = jnp.array([1.0, 2.0])
    t, ls = search(make(), f, x, jax.grad(f)(x))
    assert t == 0.0 and bool(ls.failed) and int(ls.evaluations) == 0
    np.testing.assert_array_equal(ls.value, f(x))


@pytest.mark.parametrize("make", [gk.zoom_linesearch, gk.backtracking_linesearch])
def test_nan_gradient_propagates_into_the_update(make):
    f = lambda x: jnp.sum(x**2)
    x = jnp.array([1.0, 2.0])
    tx = make()
    d = jnp.array([jnp.nan, -1.0])
    updates, _ = tx.update(d, tx.init(x), x, value=f(x), grad=jnp.array([jnp.nan, 1.0]), value_fn=f)
    assert np.isnan(updates).all()


def test_no_decrease_within_max_steps_gives_a_zero_step():
    # d points downhill only infinitesimally: every trial of a non-smooth bowl is higher than f(x).
    f = lambda x: jnp.sum(jnp.abs(x - 1.0)) + 10.0 * jnp.abs(x[0])
    x = jnp.array([0.0, 0.0])
    tx = gk.backtracking_linesearch(max_steps=3)
    updates, state = tx.update(
        jnp.array([1.0, 0.0]), tx.init(x), x, value=f(x), grad=jnp.array([-1.0, 0.0]), value_fn=f
    )
    assert np.all(updates == 0) and bool(state.failed) and int(state.evaluations) == 3


def test_value_and_grad_from_state_reuses_the_search():
    calls = []
    f = lambda x: (jax.debug.callback(lambda: calls.append(1)), jnp.sum((x - 3.0) ** 2))[1]
    tx = gk.lbfgs()
    value_and_grad = jax.jit(gk.value_and_grad_from_state(f))
    x = jnp.array([1.0, -1.0])
    state = tx.init(x)
    value, grad = value_and_grad(x, state=state)  # before the first search: evaluated
    assert len(calls) == 1
    updates, state = jax.jit(lambda g, s, x: tx.update(g, s, x, value=value, grad=g, value_fn=f))(grad, state, x)
    searched = len(calls)
    x = gk.apply_updates(x, updates)
    value, grad = value_and_grad(x, state=state)  # after: read from the state
    assert len(calls) == searched
    np.testing.assert_allclose(value, f(x), rtol=1e-6)
    np.testing.assert_allclose(grad, jax.grad(f)(x), rtol=1e-6)


def test_value_and_grad_from_state_needs_a_line_search():
    with pytest.raises(ValueError, match="ends in a line search"):
        gk.value_and_grad_from_state(jnp.sum)(jnp.ones(2), state=gk.adam().init(jnp.ones(2)))


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [gk.zoom_linesearch, gk.backtracking_linesearch])
def test_missing_value_fn_is_named(make):
    tx = make()
    x = jnp.ones(2)
    with pytest.raises(ValueError, match="needs value_fn: call tx.update"):
        tx.update(-x, tx.init(x), x, value=jnp.sum(x), grad=x)
    with pytest.raises(ValueError, match="needs value, grad"):
        tx.update(-x, tx.init(x), x, value_fn=jnp.sum)


@pytest.mark.parametrize("make", [gk.zoom_linesearch, gk.backtracking_linesearch])
def test_non_scalar_value_is_named(make):
    tx = make()
    x = jnp.ones(2)
    with pytest.raises(
        ValueError, match=r"value must be a scalar \(the loss at params\), got an array of shape \(2,\)"
    ):
        tx.update(-x, tx.init(x), x, value=x, grad=x, value_fn=jnp.sum)
    with pytest.raises(ValueError, match="value_fn must return a scalar loss"):
        tx.update(-x, tx.init(x), x, value=jnp.sum(x), grad=x, value_fn=lambda p: p)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gk.zoom_linesearch(max_steps=0), "max_steps must be an integer >= 1, got 0"),
        (lambda: gk.zoom_linesearch(c1=0.0), r"c1 must be in \(0, 1\), got 0.0"),
        (lambda: gk.zoom_linesearch(c2=1.0), r"c2 must be in \(0, 1\), got 1.0"),
        (lambda: gk.zoom_linesearch(c1=0.5, c2=0.4), "c1 must be < c2"),
        (lambda: gk.backtracking_linesearch(decrease=1.0), r"decrease must be in \(0, 1\), got 1.0"),
        (lambda: gk.backtracking_linesearch(max_steps=2.5), "max_steps must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_constants_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
