"""gk.init: the lecture's variances on large draws, fans against torch, the difference from jax.nn.initializers."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import requires_torch

import gradkit as gk

I = gk.init
KEY = jax.random.key(0)
DENSE, CONV = (1000, 500), (3, 3, 64, 128)  # 500k and 74k draws


def expected_variance(name, shape):
    fan_in, fan_out = I.fans(shape)
    return {"xavier": 2 / (fan_in + fan_out), "kaiming": 2 / fan_in}[name.split("_")[0]]


@pytest.mark.parametrize("shape", [DENSE, CONV])
@pytest.mark.parametrize("name", ["xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform"])
def test_empirical_variance_matches_the_lecture_formula(name, shape):
    w = np.asarray(getattr(I, name)(KEY, shape), np.float64)
    var = expected_variance(name, shape)
    # The sample variance of n draws has relative std sqrt(2/n) <= 0.6% here (sqrt(0.8/n) for uniform); 3% is 5 sigma.
    assert w.shape == shape and w.dtype == np.float64
    np.testing.assert_allclose(w.var(), var, rtol=0.03)
    assert abs(w.mean()) < 5 * math.sqrt(var / w.size)


def test_fans_for_dense_and_conv_shapes():
    assert I.fans((784, 256)) == (784, 256)
    assert I.fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32)
    assert I.fans((5, 7, 3, 16, 32)) == (5 * 7 * 3 * 16, 5 * 7 * 3 * 32)


@requires_torch
@pytest.mark.parametrize("shape, torch_shape", [((784, 256), (256, 784)), ((3, 3, 16, 32), (32, 16, 3, 3))])
def test_fans_match_torch_for_its_transposed_layout(shape, torch_shape):
    import torch

    assert I.fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_shape))


@requires_torch
def test_kaiming_normal_variance_equals_torch_kaiming_normal():
    import torch

    torch.manual_seed(0)
    reference = torch.nn.init.kaiming_normal_(torch.empty(500, 1000)).double().var().item()  # (out, in)
    ours = float(np.asarray(I.kaiming_normal(KEY, (1000, 500)), np.float64).var())
    np.testing.assert_allclose(ours, reference, rtol=0.03)
    np.testing.assert_allclose(reference, 2 / 1000, rtol=0.03)


@requires_torch
def test_torch_linear_default_is_not_the_lectures_kaiming():
    # The lecture says PyTorch uses Kaiming by default for linear layers; nn.Linear actually calls
    # kaiming_uniform_(a=sqrt(5)), a variance of 1/(3 fan_in), a sixth of Kaiming's 2/fan_in.
    import torch

    torch.manual_seed(0)
    weight = torch.nn.Linear(1000, 500).weight.detach().double()
    np.testing.assert_allclose(weight.var().item(), 1 / (3 * 1000), rtol=0.03)
    assert weight.var().item() < (2 / 1000) / 5


def test_normal_initializers_are_untruncated_unlike_jax_nn():
    # jax.nn.initializers.he_normal / glorot_normal draw a normal truncated at 2 (rescaled by 1/0.8796 to keep
    # the variance), so no |w| exceeds 2/0.8796 = 2.27 std; an untruncated normal puts 2(1 - Phi(2.27)) = 2.3% there.
    shape = DENSE
    for ours, theirs, var in (
        (I.kaiming_normal, jax.nn.initializers.he_normal(), 2 / shape[0]),
        (I.xavier_normal, jax.nn.initializers.glorot_normal(), 2 / sum(shape)),
    ):
        w, v = np.asarray(ours(KEY, shape)), np.asarray(theirs(KEY, shape))
        bound = 2 / 0.87962566103423978 * math.sqrt(var)
        np.testing.assert_allclose([w.var(), v.var()], [var, var], rtol=0.03)  # same variance...
        assert np.abs(v).max() <= bound * (1 + 1e-6)  # ...but jax's is truncated
        beyond = np.mean(np.abs(w) > bound)
        np.testing.assert_allclose(beyond, math.erfc(2 / 0.87962566103423978 / math.sqrt(2)), rtol=0.05)
        assert np.abs(w).max() > 4 * math.sqrt(var)  # 500k untruncated draws reach past 4 std


def test_uniform_initializers_have_the_lecture_bound_and_jax_nn_distribution():
    for ours, theirs, var in (
        (I.kaiming_uniform, jax.nn.initializers.he_uniform(), 2 / DENSE[0]),
        (I.xavier_uniform, jax.nn.initializers.glorot_uniform(), 2 / sum(DENSE)),
    ):
        w, v = np.asarray(ours(KEY, DENSE)), np.asarray(theirs(jax.random.key(1), DENSE))
        limit = math.sqrt(3 * var)  # U(-a, a): a = sqrt(6 / fan_in) (Kaiming), sqrt(6 / (fan_in + fan_out)) (Xavier)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.999 * limit
        # Same distribution: quantiles of two independent 500k samples agree to 1% of the bound.
        q = np.linspace(0.01, 0.99, 25)
        np.testing.assert_allclose(np.quantile(w, q), np.quantile(v, q), atol=0.01 * limit)


def test_zeros_and_dtypes():
    assert not np.asarray(I.zeros(KEY, (3, 4))).any() and I.zeros(KEY, (3,)).dtype == jnp.float32
    assert I.kaiming_normal(KEY, (8, 4), jnp.bfloat16).dtype == jnp.bfloat16
    with jax.enable_x64(True):
        assert I.xavier_uniform(KEY, (8, 4), jnp.float64).dtype == jnp.float64


def test_initializers_work_under_jit_with_a_static_shape():
    w = jax.jit(partial(I.kaiming_normal, shape=(16, 8)))(KEY)
    # Same draws; jit fuses the normal's inverse-erf with the scaling, which can move the last bit (1 ulp).
    np.testing.assert_allclose(w, I.kaiming_normal(KEY, (16, 8)), rtol=2.5e-7)


def test_bad_shapes_and_dtypes_raise():
    with pytest.raises(ValueError, match=r"at least 2 dims.*got \(5,\); initialise biases with gk.init.zeros"):
        I.kaiming_normal(KEY, (5,))
    with pytest.raises(ValueError, match="zero-sized dimension"):
        I.xavier_normal(KEY, (0, 5))
    with pytest.raises(TypeError, match="dtype must be a floating dtype, got int32"):
        I.kaiming_uniform(KEY, (4, 4), jnp.int32)
