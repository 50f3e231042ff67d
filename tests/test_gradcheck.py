"""gk.gradcheck: passes correct gradients, catches planted wrong ones, on any pytree in float32 and float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk

C = gk.gradcheck


def mlp_params(dtype, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "hidden": {"w": gk.init.kaiming_normal(k1, (6, 5), dtype), "b": jnp.full((5,), 0.1, dtype)},
        "out": [gk.init.xavier_normal(k2, (5, 3), dtype), jnp.zeros((3,), dtype)],
    }


def mlp_loss(params, x=None, y=None):
    y = jnp.array([0, 2, 1, 2]) if y is None else y
    x = jnp.linspace(-1, 1, 24).reshape(4, 6).astype(params["out"][0].dtype) if x is None else x
    hidden = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
    logits = hidden @ params["out"][0] + params["out"][1]
    return jnp.mean(gk.losses.softmax_cross_entropy(logits, y))


def test_correct_gradients_pass_in_float32():
    report = C.check_grads(mlp_loss, mlp_params(jnp.float32))
    assert set(report.leaves) == {"['hidden']['b']", "['hidden']['w']", "['out'][0]", "['out'][1]"}
    assert report.passed and all(c.rel_error < 1e-2 for c in report.leaves.values())


def test_correct_gradients_pass_in_float64_at_the_lectures_tolerance():
    with jax.enable_x64(True):
        report = C.check_grads(mlp_loss, mlp_params(jnp.float64))
    # CS231n: relative error < 1e-7 means the gradient is right.
    assert max(c.rel_error for c in report.leaves.values()) < 1e-7


def test_numeric_gradient_matches_a_closed_form():
    # f(w) = sum w^3 has gradient 3 w^2; the centered difference adds exactly h^2 = 1e-10 for a cubic,
    # below the rounding noise eps * |f| / h ~ 1e-9 relative here.
    with jax.enable_x64(True):
        w = jnp.linspace(0.5, 2.0, 7, dtype=jnp.float64)
        c = C.check_grads(lambda p: jnp.sum(p**3), w).leaves[""]
        i = c.worst_index[0]
        np.testing.assert_allclose(c.analytic, 3 * float(w[i]) ** 2, rtol=1e-12)
        np.testing.assert_allclose(c.numeric, 3 * float(w[i]) ** 2, rtol=1e-8)
        # Through zero: at w = 0 the analytic gradient is 0 and the difference is h^2; not a failure.
        assert C.check_grads(lambda p: jnp.sum(p**3), jnp.linspace(-2.0, 2.0, 7, dtype=jnp.float64)).passed


@jax.custom_vjp
def planted_tanh(x):
    return jnp.tanh(x)


planted_tanh.defvjp(lambda x: (jnp.tanh(x), x), lambda x, g: (g * (1 - jnp.tanh(x)) ** 2,))  # bug: (1-t)^2, not 1-t^2


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_a_planted_wrong_gradient_is_caught_and_its_leaf_named(dtype):
    def buggy_loss(params):
        x = jnp.linspace(-1, 1, 24).reshape(4, 6).astype(dtype)
        hidden = planted_tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
        logits = hidden @ params["out"][0] + params["out"][1]
        return jnp.mean(gk.losses.softmax_cross_entropy(logits, jnp.array([0, 2, 1, 2])))

    with (
        jax.enable_x64(dtype == jnp.float64),
        pytest.raises(C.GradCheckError, match=r"params\['hidden'\]\['(w|b)'\] has relative error") as caught,
    ):
        C.check_grads(buggy_loss, mlp_params(dtype))
    report = caught.value.report
    assert report.worst in ("['hidden']['w']", "['hidden']['b']")
    assert report.leaves["['out'][0]"].rel_error <= report.leaves["['out'][0]"].tolerance  # the correct leaves pass
    assert report.leaves["['hidden']['w']"].rel_error > 0.1


def test_large_leaves_are_checked_on_a_random_subset_that_still_catches_a_bug():
    # float64: in float32 the centred difference of a 10,000-term sum carries rounding noise of a few
    # percent where cos(w) is small, so the measured error would depend on which coordinates are drawn
    # (it did: jax 0.8 draws other normals than 0.10 and measured 0.0506 instead of 0.0476).
    with jax.enable_x64(True):
        w = jax.random.normal(jax.random.key(1), (100, 100), jnp.float64)

        @jax.custom_vjp
        def f(w):
            return jnp.sum(jnp.sin(w))

        f.defvjp(lambda w: (f(w), w), lambda w, g: (g * jnp.cos(w) * 1.05,))  # 5% too large everywhere
        report = C.check_grads(f, w, max_coords=20, raise_on_failure=False)
        c = report.leaves[""]
        assert (c.checked, c.size) == (20, 10_000) and not report.passed
        np.testing.assert_allclose(c.rel_error, 0.05 / 1.05, rtol=1e-4)
        assert C.check_grads(lambda w: jnp.sum(jnp.sin(w)), w, max_coords=20).passed


def test_near_zero_gradients_do_not_give_spurious_relative_errors():
    # At w = 0 the gradient of sum(w^4) is 0 and the centered difference is 0 up to rounding: no failure.
    report = C.check_grads(lambda p: jnp.sum(p**4) + 1.0, jnp.zeros(5))
    assert report.passed


def test_bad_input_raises():
    with pytest.raises(TypeError, match=r"params\['n'\] has dtype int32"):
        C.check_grads(lambda p: jnp.sum(p["w"]), {"w": jnp.ones(2), "n": jnp.array([1, 2])})
    with pytest.raises(TypeError, match="f must return a real scalar, got shape \\(2,\\)"):
        C.check_grads(lambda p: p * 2, jnp.ones(2))
    with pytest.raises(ValueError, match="step must be > 0, got 0.0"):
        C.check_grads(jnp.sum, jnp.ones(2), step=0.0)
    with pytest.raises(TypeError, match="float32 and float64 leaves, got bfloat16"):
        C.check_grads(lambda p: jnp.sum(p.astype(jnp.float32)), jnp.ones(2, jnp.bfloat16))
