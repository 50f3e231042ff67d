"""gk.landscapes: each function against closed forms (minima, gradients, curvature) or scipy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk
from gradkit import landscapes

ALL = list(landscapes.LANDSCAPES)


@pytest.mark.parametrize("name", ALL)
def test_global_minima_have_value_zero_and_zero_gradient(name):
    land = landscapes.get(name)
    assert land.minima, "every built-in landscape knows its minima"
    for m in land.minima:
        p = jnp.asarray(m, jnp.float32)
        # Himmelblau's three irrational minima are given to 6 decimals: f ~ 1e-10, |grad| ~ 1e-4 there.
        assert abs(float(land.f(p))) < 1e-8
        np.testing.assert_allclose(np.asarray(jax.grad(land.f)(p)), 0.0, atol=2e-4)


@pytest.mark.parametrize("name", ALL)
def test_start_and_minima_lie_inside_the_plotting_bounds(name):
    land = landscapes.get(name)
    (x0, x1), (y0, y1) = land.bounds
    for x, y in (land.start, *land.minima):
        assert x0 <= x <= x1 and y0 <= y <= y1
    assert float(land.f(jnp.asarray(land.start))) > 0.1, "the start is not already at a minimum"


@pytest.mark.parametrize("name", ALL)
def test_function_is_jittable_and_returns_a_scalar(name):
    land = landscapes.get(name)
    p = jnp.asarray([0.3, -0.7], jnp.float32)
    out = jax.jit(land.f)(p)
    assert out.shape == ()
    np.testing.assert_allclose(float(out), float(land.f(p)), rtol=1e-6)


def test_rosenbrock_matches_scipy():
    optimize = pytest.importorskip("scipy.optimize", reason="scipy (a scikit-learn dependency) gives the reference")
    rng = np.random.default_rng(0)
    land = landscapes.rosenbrock()
    for p in rng.uniform(-2, 2, size=(20, 2)):
        np.testing.assert_allclose(float(land.f(jnp.asarray(p))), optimize.rosen(p), rtol=1e-5)
        grad = np.asarray(jax.grad(land.f)(jnp.asarray(p)))
        np.testing.assert_allclose(grad, optimize.rosen_der(p), rtol=1e-4, atol=1e-3)


def test_beale_matches_hand_computed_values():
    # f(0, 0) = 1.5^2 + 2.25^2 + 2.625^2 = 14.203125; f(1, 0) = 0.5^2 + 1.25^2 + 1.625^2 = 4.453125.
    land = landscapes.beale()
    assert float(land.f(jnp.zeros(2))) == pytest.approx(14.203125, rel=1e-7)
    assert float(land.f(jnp.asarray([1.0, 0.0]))) == pytest.approx(4.453125, rel=1e-7)


def test_saddle_is_a_saddle_at_the_origin():
    land = landscapes.saddle()
    h = np.asarray(jax.hessian(land.f)(jnp.zeros(2)))
    np.testing.assert_allclose(np.asarray(jax.grad(land.f)(jnp.zeros(2))), 0.0)
    np.testing.assert_allclose(np.linalg.eigvalsh(h), [-1.0, 2.0], rtol=1e-6)


@pytest.mark.parametrize("condition", [10.0, 50.0, 1000.0])
def test_narrow_valley_condition_number_is_the_hessian_ratio(condition):
    land = landscapes.narrow_valley(condition)
    eig = np.linalg.eigvalsh(np.asarray(jax.hessian(land.f)(jnp.asarray([0.4, -0.2]))))
    assert eig.max() / eig.min() == pytest.approx(condition, rel=1e-6)


def test_himmelblau_has_four_distinct_minima():
    land = landscapes.himmelblau()
    pts = np.asarray(land.minima)
    assert len(pts) == 4
    assert min(np.linalg.norm(a - b) for i, a in enumerate(pts) for b in pts[i + 1 :]) > 1.0
    for m in pts:  # each is a minimum: the Hessian there is positive definite
        assert np.linalg.eigvalsh(np.asarray(jax.hessian(land.f)(jnp.asarray(m, jnp.float32)))).min() > 0


def test_unknown_landscape_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown landscape 'bael'; known landscapes: beale, rosenbrock"):
        landscapes.get("bael")


def test_bad_parameters_are_rejected_before_use():
    with pytest.raises(ValueError, match="condition must be > 0, got -1.0"):
        landscapes.narrow_valley(-1.0)
    with pytest.raises(ValueError, match="b must be > 0, got 0.0"):
        landscapes.rosenbrock(b=0.0)


def test_any_function_can_be_a_landscape():
    bowl = lambda p: jnp.sum((p - 1.0) ** 2)
    land = gk.landscapes.Landscape("bowl", bowl, start=(-1.0, 0.0), bounds=((-2, 2), (-2, 2)), minima=((1.0, 1.0),))
    r = gk.race.race(land, {"SGD": gk.race.optimizer("sgd")}, [0.25], steps=50)
    # Gradient descent on |p - 1|^2 with lr 1/4 halves the distance each step: p_t = 1 + (p_0 - 1) / 2^t.
    t = np.arange(51)[:, None]
    np.testing.assert_allclose(r.paths[0, 0], 1 + (np.array([-1.0, 0.0]) - 1) / 2.0**t, atol=1e-6)
