"""Muon's orthogonalisation and reshape rule, and Adafactor's memory, as specified in their docstrings."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradkit as gk


def test_newton_schulz_squeezes_every_singular_value_into_muons_band():
    """Muon's quintic maps singular values (here spread over a factor 100) to about [0.7, 1.2] and keeps the vectors."""
    x = np.random.default_rng(0).normal(size=(8, 5)) @ np.diag([10.0, 3.0, 1.0, 0.3, 0.1])
    with jax.enable_x64(True):
        o = np.asarray(gk.newton_schulz(jnp.asarray(x)))
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    s = np.linalg.svd(o, compute_uv=False)
    assert s.min() > 0.6 and s.max() < 1.25, s
    # same singular vectors: o = u diag(s') vt, so u^T o vt^T is diagonal
    core = u.T @ o @ vt.T
    np.testing.assert_allclose(core - np.diag(np.diag(core)), 0, atol=1e-10)


def test_leaves_with_more_than_two_dims_are_orthogonalised_as_leading_dims_by_last_dim():
    g = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 4, 8)), jnp.float32)  # a conv kernel (h, w, in, out)
    updates, _ = gk.orthogonalise().update({"k": g}, gk.orthogonalise().init({"k": g}))
    np.testing.assert_allclose(updates["k"], gk.newton_schulz(g.reshape(36, 8)).reshape(g.shape), rtol=1e-6)


def test_orthogonalise_refuses_vectors_and_muon_gives_them_to_adamw():
    v = {"b": jnp.ones(3)}
    try:
        gk.orthogonalise().update(v, gk.orthogonalise().init(v))
        raise AssertionError("a vector was orthogonalised")
    except ValueError as e:
        assert "at least 2 dims" in str(e) and "gk.muon" in str(e)
    params = {"w": jnp.ones((3, 2)), "b": jnp.arange(3.0)}
    grads = {"w": jnp.ones((3, 2)), "b": jnp.array([0.5, -1.0, 2.0])}
    tx, ref = gk.muon(0.1, adam_weight_decay=0.01), gk.adamw(0.1, weight_decay=0.01)
    ours, _ = tx.update(grads, tx.init(params), params)
    theirs, _ = ref.update({"b": grads["b"]}, ref.init({"b": params["b"]}), {"b": params["b"]})
    np.testing.assert_array_equal(ours["b"], theirs["b"])


def gpt2_small(d=768, layers=12, vocab=50257, ctx=1024, ffn=3072):
    """GPT-2 small's parameter shapes (124M float32), as shape structs: nothing is allocated."""
    s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    block = {
        "ln1": {"scale": s(d), "bias": s(d)},
        "qkv": {"w": s(d, 3 * d), "b": s(3 * d)},
        "proj": {"w": s(d, d), "b": s(d)},
        "ln2": {"scale": s(d), "bias": s(d)},
        "fc": {"w": s(d, ffn), "b": s(ffn)},
        "out": {"w": s(ffn, d), "b": s(d)},
    }
    return {"wte": s(vocab, d), "wpe": s(ctx, d), "blocks": [block] * layers, "ln_f": {"scale": s(d), "bias": s(d)}}


def state_bytes(tx, params) -> int:
    """Bytes of the floating-point state (the int32 step counter aside)."""
    leaves = jax.tree.leaves(jax.eval_shape(tx.init, params))
    return sum(x.size * x.dtype.itemsize for x in leaves if jnp.issubdtype(x.dtype, jnp.floating))


def test_adafactor_state_is_rows_plus_columns_a_fraction_of_adams_on_gpt2_small():
    params = gpt2_small()
    n = sum(x.size for x in jax.tree.leaves(params))
    vectors = sum(x.size for x in jax.tree.leaves(params) if len(x.shape) < 2)
    rows_plus_cols = sum(sum(x.shape) for x in jax.tree.leaves(params) if len(x.shape) == 2)
    assert state_bytes(gk.adam(), params) == 2 * 4 * n
    assert state_bytes(gk.adafactor(), params) == 4 * (vectors + rows_plus_cols)
    assert state_bytes(gk.adafactor(), params) < state_bytes(gk.adam(), params) / 500  # measured: 1.23 MiB vs 949 MiB
