"""The race engine against a plain Python loop, separate runs and closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk
from gradkit import landscapes
from gradkit.race import LECTURE, optimizer, race

LECTURE_MAKES = {r.label: optimizer(r.name, **r.kwargs) for r in LECTURE}
LECTURE_LRS = {r.label: [r.learning_rate] for r in LECTURE}


def python_loop(land, make, lr, steps):
    """The reference: a Python for-loop of jitted single steps (no scan, no vmap, no divergence bookkeeping).

    The learning rate is passed in as data, as the engine does, so both compile the same arithmetic.
    """

    @jax.jit
    def step(lr, p, state):
        updates, state = make(lr).update(jax.grad(land.f)(p), state, p)
        return gk.apply_updates(p, updates), state

    lr = jnp.float32(lr)
    p = jnp.asarray(land.start, jnp.float32)
    state, points = make(lr).init(p), [p]
    for _ in range(steps):
        p, state = step(lr, p, state)
        points.append(p)
    return np.asarray(points)


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "saddle"])
def test_engine_trajectories_match_a_plain_python_loop(name):
    land, steps = landscapes.get(name), 150
    r = race(land, LECTURE_MAKES, LECTURE_LRS, steps=steps)
    assert (r.diverged_at == -1).all()
    for i, spec in enumerate(LECTURE):
        ref = python_loop(land, LECTURE_MAKES[spec.label], spec.learning_rate, steps)
        if spec.name == "adam":
            # Adam leaves bit-equality after 7 to 76 steps (measured max difference 4.8e-7 over 150 steps,
            # i.e. a few float32 ulp at |p| < 4): inside the scan XLA fuses the bias-corrected update
            # differently from the stand-alone step. SGD, Momentum and RMSProp stay bit-identical.
            np.testing.assert_allclose(r.paths[i, 0], ref, rtol=0, atol=2e-6)
        else:
            np.testing.assert_array_equal(r.paths[i, 0], ref)
        np.testing.assert_allclose(r.losses[i, 0], jax.vmap(land.f)(jnp.asarray(ref)), rtol=1e-5, atol=1e-6)


def test_vmapped_grid_equals_separate_runs():
    land = landscapes.rosenbrock()
    grid = np.logspace(-4, -1, 4)
    together = race(land, LECTURE_MAKES, grid, steps=300)
    for j, lr in enumerate(grid):
        alone = race(land, LECTURE_MAKES, [lr], steps=300)
        # A batch of 4 and a batch of 1 are compiled to different (SIMD vs scalar) CPU loops whose float32
        # rounding differs by an ulp now and then; measured max difference 8.3e-7 after 300 steps.
        np.testing.assert_allclose(together.paths[:, j], alone.paths[:, 0], rtol=0, atol=5e-6)
        np.testing.assert_array_equal(together.converged_at[:, j], alone.converged_at[:, 0])
        np.testing.assert_array_equal(together.diverged_at[:, j], alone.diverged_at[:, 0])


def test_converged_at_matches_the_closed_form_of_gradient_descent_on_a_quadratic():
    # On f = (x^2 + k y^2)/2, SGD gives x_t = x0 (1 - lr)^t and y_t = y0 (1 - lr k)^t.
    k, lr, tol = 10.0, 0.05, 1e-2
    land = landscapes.narrow_valley(k)
    r = race(land, {"SGD": optimizer("sgd")}, [lr], steps=400, tol=tol)
    t = np.arange(401)
    x = land.start[0] * (1 - lr) ** t
    y = land.start[1] * (1 - lr * k) ** t
    np.testing.assert_allclose(r.paths[0, 0], np.stack([x, y], 1), atol=1e-5)
    assert r.converged_at[0, 0] == np.argmax(np.hypot(x, y) <= tol)
    assert r.diverged_at[0, 0] == -1


def test_diverged_at_matches_the_closed_form_and_the_run_stops_there():
    # lr k > 2: |y_t| = |y0| |1 - lr k|^t grows until it leaves the escape box (|y| > 2 + 4 = 6 here).
    k, lr = 50.0, 0.05
    land = landscapes.narrow_valley(k)
    r = race(land, {"SGD": optimizer("sgd")}, [lr], steps=100)
    box = gk.race.escape_box(land)
    assert box[1].tolist() == [-6.0, 6.0]
    t = np.arange(101)
    expected = int(np.argmax(abs(land.start[1]) * abs(1 - lr * k) ** t > 6.0))
    assert r.diverged_at[0, 0] == expected
    frozen = r.paths[0, 0, expected - 1]
    np.testing.assert_array_equal(r.paths[0, 0, expected:], np.broadcast_to(frozen, r.paths[0, 0, expected:].shape))
    assert r.converged_at[0, 0] == -1


def test_non_finite_steps_count_as_divergence():
    # f = |p|^2 in a box far wider than float32 steps: SGD with lr 1e20 multiplies p by (1 - 2e20) per step,
    # so |x| = 2e20 after one step (finite, inside) and 4e40 = inf in float32 after two.
    huge = ((-1e30, 1e30), (-1e30, 1e30))
    land = landscapes.Landscape("bowl", lambda p: jnp.sum(p**2), start=(1.0, 0.0), bounds=huge)
    r = race(land, {"SGD": optimizer("sgd")}, [1e20], steps=5)
    assert r.diverged_at[0, 0] == 2
    np.testing.assert_allclose(r.paths[0, 0, 1:], [[-2e20, 0.0]] * 5, rtol=1e-6)


def test_path_length_of_a_straight_run_is_the_distance_covered():
    land = landscapes.narrow_valley(50.0)._replace(start=(-4.5, 0.0))
    r = race(land, {"SGD": optimizer("sgd"), "Adam": optimizer("adam")}, [0.01, 0.1], steps=200)
    # Every step moves along the x axis towards 0 without overshooting (checked), so the length is |x_T - x_0|.
    for i in range(2):
        for j in range(2):
            x = r.paths[i, j, :, 0]
            if (np.diff(x) >= 0).all():
                assert r.path_length[i, j] == pytest.approx(x[-1] - x[0], rel=1e-5)
    assert (np.diff(r.paths[0, :, :, 0], axis=-1) >= 0).all()


def test_learning_rate_is_traced_data_one_compile_for_a_new_grid():
    land = landscapes.saddle()
    makes = {"Adam": optimizer("adam")}
    race(land, makes, [0.1, 0.2], steps=20)
    program = gk.race.engine._program(land, tuple(makes.values()), 20, 1e-2)
    before = program._cache_size()
    race(land, makes, [0.3, 0.4], steps=20)
    assert program._cache_size() == before


def test_unknown_optimizer_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'; known optimizers: .*adam, adamax, adamw.*sgd"):
        optimizer("adamm")


def test_bad_optimizer_keyword_fails_before_the_race():
    with pytest.raises(TypeError, match="gk.sgd does not accept {'momentun': 0.9}"):
        optimizer("sgd", momentun=0.9)
    with pytest.raises(ValueError, match="momentum must be in \\[0, 1\\), got 1.5"):
        optimizer("sgd", momentum=1.5)


def test_bad_landscape_fields_name_the_field_and_value():
    bowl = lambda p: jnp.sum(p**2)
    with pytest.raises(ValueError, match=r"start must be two finite numbers \(x, y\), got \(1.0, 2.0, 3.0\)"):
        race(landscapes.Landscape("b", bowl, (1.0, 2.0, 3.0), ((-1, 1), (-1, 1))), {"SGD": optimizer("sgd")}, [0.1])
    with pytest.raises(ValueError, match=r"bounds must be .* with min < max, got \(\(1, -1\), \(-1, 1\)\)"):
        race(landscapes.Landscape("b", bowl, (0.0, 0.0), ((1, -1), (-1, 1))), {"SGD": optimizer("sgd")}, [0.1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rates": [-0.1]}, r"learning_rates must be finite and >= 0, got \[\[-0.1"),
        ({"learning_rates": [0.1], "steps": 0}, "steps must be a positive integer, got 0"),
        ({"learning_rates": [0.1], "tol": -1.0}, "tol must be > 0, got -1.0"),
        ({"learning_rates": {"SGD": [0.1, 0.2], "Adam": [0.1]}}, "same length, got \\[2, 1\\]"),
        ({"learning_rates": {"Adam": [0.1]}}, "no grid for \\['SGD'\\]"),
    ],
)
def test_bad_race_arguments_name_the_argument_and_value(kwargs, message):
    makes = {"SGD": optimizer("sgd"), "Adam": optimizer("adam")}
    with pytest.raises(ValueError, match=message):
        race(landscapes.saddle(), makes, **kwargs)
