"""gk.losses against jax.nn, optax.losses, torch and closed forms (lecture 3, chapter 3; lecture 2's SVM loss)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import requires_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import gradkit as gk

L = gk.losses
RNG = np.random.default_rng(0)


def logits_and_labels(batch=(4, 3), classes=5, scale=3.0):
    logits = jnp.asarray(scale * RNG.normal(size=(*batch, classes)), jnp.float32)
    labels = jnp.asarray(RNG.integers(0, classes, size=batch), jnp.int32)
    return logits, labels


def np_softmax(s):
    s = np.asarray(s, np.float64)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# -- softmax ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax_match_jax_nn(axis):
    s, _ = logits_and_labels()
    np.testing.assert_allclose(L.softmax(s, axis=axis), jax.nn.softmax(s, axis=axis), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(L.log_softmax(s, axis=axis), jax.nn.log_softmax(s, axis=axis), rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (5,), elements=st.floats(allow_nan=False, allow_infinity=False, width=32)))
def test_softmax_is_a_finite_distribution_for_any_finite_scores(scores):
    p = np.asarray(L.softmax(jnp.asarray(scores)), np.float64)
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p, np_softmax(scores), atol=1e-6)  # float64 closed form
    logp = np.asarray(L.log_softmax(jnp.asarray(scores)), np.float64)
    np.testing.assert_allclose(np.exp(logp), p, atol=1e-6)


def test_log_softmax_of_a_nearly_certain_class_is_exact():
    # log p_top = -log(1 + e^-12) = -6.144e-6; log(sum exp) in float32 rounds it to a multiple of 6e-8.
    exact = -np.log1p(np.exp(-12.0))
    np.testing.assert_allclose(L.log_softmax(jnp.array([12.0, 0.0]))[0], exact, rtol=1e-6)
    assert abs(float(jax.nn.log_softmax(jnp.array([12.0, 0.0]))[0]) / exact - 1) > 1e-6  # the rounding avoided


def test_softmax_reproduces_lecture_worked_example():
    p = L.softmax(jnp.array([3.2, 1.3, 2.2]))
    # The lecture rounds to three decimals: [0.659, 0.099, 0.243]; float64 closed form to float32 precision.
    np.testing.assert_allclose(p, [0.659, 0.099, 0.243], atol=6e-4)
    np.testing.assert_allclose(p, np_softmax([3.2, 1.3, 2.2]), rtol=1e-6)


def test_softmax_is_finite_and_exact_for_huge_scores():
    p = L.softmax(jnp.array([1000.0, 999.0, 998.0]))
    assert np.isfinite(p).all()
    # Shift invariance: the same as softmax([2, 1, 0]) computed in float64.
    np.testing.assert_allclose(p, np_softmax([2.0, 1.0, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(L.softmax(jnp.array([-1e30, 0.0, -1e30])), [0.0, 1.0, 0.0])
    naive = jnp.exp(jnp.array([1000.0, 999.0])) / jnp.sum(jnp.exp(jnp.array([1000.0, 999.0])))
    assert np.isnan(naive).all()  # what the max subtraction prevents


def test_softmax_handles_infinite_masks_where_the_math_allows():
    # -inf entries get probability 0; +inf entries share all the mass (the limit); all -inf has no distribution.
    np.testing.assert_allclose(L.softmax(jnp.array([1.0, -jnp.inf, 1.0])), [0.5, 0.0, 0.5])
    np.testing.assert_allclose(L.softmax(jnp.array([jnp.inf, 3.0, jnp.inf, -jnp.inf])), [0.5, 0.0, 0.5, 0.0])
    assert np.isnan(L.softmax(jnp.array([-jnp.inf, -jnp.inf]))).all()
    np.testing.assert_allclose(L.log_softmax(jnp.array([0.0, -jnp.inf])), [0.0, -np.inf])


def test_log_softmax_is_exact_in_the_tails():
    # log softmax([1000, 0]) = [-log(1 + e^-1000), -1000 - log(1 + e^-1000)] = [0, -1000] in float32.
    np.testing.assert_allclose(L.log_softmax(jnp.array([1000.0, 0.0])), [0.0, -1000.0])
    with np.errstate(divide="ignore"):
        assert np.isneginf(np.log(L.softmax(jnp.array([1000.0, 0.0]))[1]))  # why log(softmax) is not enough


# -- cross-entropy ---------------------------------------------------------------------------------


def test_cross_entropy_with_integer_labels_matches_optax_values_and_gradients():
    s, y = logits_and_labels()
    ours = lambda s: L.softmax_cross_entropy(s, y)
    ref = lambda s: optax.losses.softmax_cross_entropy_with_integer_labels(s, y)
    # gradkit's log1p form matches the float64 closed form at rtol 1e-6. optax computes
    # log(sum exp(s - max)) - (s_y - max), whose error is a few ulps of log Z ~ 1 in absolute terms
    # (measured: 1.9e-7 on a loss of 0.075, 1.5e-9 on a loss of 1.07e-4, i.e. 1.4% relative), so
    # against optax the tolerance carries atol 3e-7.
    closed_form = -np.log(np_softmax(s))[np.arange(4)[:, None], np.arange(3), np.asarray(y)]
    np.testing.assert_allclose(ours(s), closed_form, rtol=1e-6)
    np.testing.assert_allclose(ours(s), ref(s), rtol=1e-6, atol=3e-7)
    np.testing.assert_allclose(jax.grad(lambda s: ours(s).sum())(s), jax.grad(lambda s: ref(s).sum())(s), atol=1e-6)


def test_cross_entropy_with_probability_labels_matches_optax_values_and_gradients():
    s, _ = logits_and_labels()
    q = jax.nn.softmax(jnp.asarray(RNG.normal(size=s.shape), jnp.float32))
    ours = lambda s: L.softmax_cross_entropy(s, q)
    ref = lambda s: optax.losses.softmax_cross_entropy(s, q)
    np.testing.assert_allclose(ours(s), ref(s), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda s: ours(s).sum())(s), jax.grad(lambda s: ref(s).sum())(s), atol=1e-6)


@requires_torch
def test_cross_entropy_matches_torch_for_indices_and_probabilities():
    import torch

    s, y = logits_and_labels(batch=(6,))
    q = np.asarray(jax.nn.softmax(jnp.asarray(RNG.normal(size=s.shape), jnp.float32)))
    st = torch.tensor(np.asarray(s))
    ref_idx = torch.nn.functional.cross_entropy(st, torch.tensor(np.asarray(y, np.int64)), reduction="none")
    ref_prob = torch.nn.functional.cross_entropy(st, torch.tensor(q), reduction="none")
    # atol 3e-7: like optax, torch's error is a few ulps of log(sum exp) in absolute terms (see above).
    np.testing.assert_allclose(L.softmax_cross_entropy(s, y), ref_idx.numpy(), rtol=1e-6, atol=3e-7)
    np.testing.assert_allclose(L.softmax_cross_entropy(s, jnp.asarray(q)), ref_prob.numpy(), rtol=1e-6, atol=3e-7)


@pytest.mark.parametrize("scale", [1.0, 1e4, 1e30])
def test_cross_entropy_gradient_is_softmax_minus_onehot_even_for_huge_logits(scale):
    s, y = logits_and_labels(scale=scale)
    grad = jax.grad(lambda s: L.softmax_cross_entropy(s, y).sum())(s)
    expected = np_softmax(s) - np.eye(s.shape[-1])[np.asarray(y)]
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_cross_entropy_is_4_6_when_the_correct_class_gets_p_001():
    loss = L.softmax_cross_entropy(jnp.log(jnp.array([0.01, 0.99])), jnp.array(0))
    np.testing.assert_allclose(loss, -np.log(0.01), rtol=1e-6)  # the lecture's 4.6
    loss = L.softmax_cross_entropy(jnp.array([5.0, 0.0]), jnp.array(0))
    np.testing.assert_allclose(loss, np.log1p(np.exp(-5.0)), rtol=1e-6)


def test_cross_entropy_ignores_masked_classes_without_label_mass():
    s = jnp.array([[1.0, -jnp.inf, 0.5, 2.0]])
    q = jnp.array([[0.25, 0.0, 0.25, 0.5]])
    unmasked = jnp.array([[1.0, 0.5, 2.0]])
    for labels, reference in ((jnp.array([3]), jnp.array([2])), (q, q[:, [0, 2, 3]])):
        loss, grad = jax.value_and_grad(lambda s, labels=labels: L.softmax_cross_entropy(s, labels).sum())(s)
        ref_loss, ref_grad = jax.value_and_grad(lambda s, r=reference: L.softmax_cross_entropy(s, r).sum())(unmasked)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
        np.testing.assert_allclose(grad[:, [0, 2, 3]], ref_grad, atol=1e-7)
        assert grad[0, 1] == 0


# -- multiclass hinge ------------------------------------------------------------------------------


def test_multiclass_hinge_reproduces_lecture_2_example():
    # CS231n lecture 2: scores [3.2, 5.1, -1.7] for a cat (class 0): max(0, 5.1-3.2+1) + max(0, -1.7-3.2+1) = 2.9.
    np.testing.assert_allclose(L.multiclass_hinge(jnp.array([3.2, 5.1, -1.7]), jnp.array(0)), 2.9, rtol=1e-6)
    np.testing.assert_allclose(L.multiclass_hinge(jnp.array([1.3, 4.9, 2.0]), jnp.array(1)), 0.0)


@requires_torch
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_multiclass_hinge_matches_torch_multi_margin_loss_times_classes(margin):
    import torch

    s, y = logits_and_labels(batch=(8,))
    torch_loss = torch.nn.MultiMarginLoss(margin=margin, reduction="none")
    ref = torch_loss(torch.tensor(np.asarray(s)), torch.tensor(np.asarray(y, np.int64)))
    np.testing.assert_allclose(L.multiclass_hinge(s, y, margin), s.shape[-1] * ref.numpy(), rtol=1e-5, atol=1e-6)


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [L.softmax_cross_entropy, L.multiclass_hinge])
@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_labels_raise_naming_the_value(loss, bad):
    with pytest.raises(ValueError, match=rf"labels must be class indices in \[0, 3\), got \[{bad}\]"):
        loss(jnp.zeros((2, 3)), jnp.array([0, bad]))


@pytest.mark.parametrize("loss", [L.softmax_cross_entropy, L.multiclass_hinge])
def test_out_of_range_labels_under_jit_give_nan_not_a_plausible_number(loss):
    s, y = logits_and_labels(batch=(3,), classes=4)
    bad_labels = y.at[1].set(4).at[2].set(-1)
    value, grad = jax.jit(jax.value_and_grad(lambda s, y: loss(s, y).sum()))(s, bad_labels)
    per_example = jax.jit(loss)(s, bad_labels)
    assert np.isfinite(per_example[0]) and np.isnan(per_example[1:]).all()
    np.testing.assert_allclose(per_example[0], loss(s[:1], y[:1])[0], rtol=1e-6)
    assert np.isnan(value)
    assert np.isfinite(grad[0]).all() and np.isnan(grad[1:]).all()


def test_label_shape_mismatches_raise_with_both_shapes():
    with pytest.raises(ValueError, match=r"shape logits.shape\[:-1\] = \(2,\), got \(3,\)"):
        L.softmax_cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape of the logits \(2, 4\), got \(2, 3\)"):
        L.softmax_cross_entropy(jnp.zeros((2, 4)), jnp.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="summing to 1"):
        L.softmax_cross_entropy(jnp.zeros((2, 2)), jnp.array([[0.5, 0.6], [0.5, 0.5]]))


def test_wrong_dtypes_and_margin_raise():
    with pytest.raises(TypeError, match="logits must be floating point, got dtype int32"):
        L.softmax_cross_entropy(jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1]))
    with pytest.raises(TypeError, match="labels must be integer class indices or float probabilities, got dtype bool"):
        L.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 3), bool))
    with pytest.raises(TypeError, match="labels must be integer class indices, got dtype float32"):
        L.multiclass_hinge(jnp.zeros((2, 3)), jnp.zeros((2,)))
    with pytest.raises(ValueError, match="margin must be >= 0, got -1.0"):
        L.multiclass_hinge(jnp.zeros((2, 3)), jnp.array([0, 1]), margin=-1.0)
