"""Every primitive and optimizer against optax, step for step, on nested pytrees.

Argument mapping (gradkit -> optax) where conventions differ:
- scale_by_momentum(d, nesterov)          -> optax.trace(decay=d, nesterov=nesterov)
- scale_by_rss(a, eps=0)                  -> optax.scale_by_rss(initial_accumulator_value=a, eps=0): optax puts eps
                                             inside the root (rsqrt(h + eps)), gradkit outside (sqrt(h) + eps), as
                                             torch; they agree exactly only at eps=0 (torch parity covers eps > 0)
- scale_by_rms(d, eps, eps_in_sqrt=F)     -> optax.scale_by_rms(d, eps, eps_in_sqrt=False) (optax defaults to True)
- adagrad(lr, a, eps=0)                   -> optax.adagrad(lr, initial_accumulator_value=a, eps=0)
- rmsprop(lr, d, eps)                     -> optax.rmsprop(lr, d, eps, eps_in_sqrt=False)
- sgd(lr, m, nesterov, weight_decay=wd)   -> optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, m, nesterov))
- adam(lr, ..., weight_decay=wd)          -> optax.chain(optax.add_decayed_weights(wd), optax.adam(lr, ...))
- adamw(lr, ..., weight_decay=wd, mask)   -> optax.adamw(lr, ..., weight_decay=wd, mask=mask) (optax's default wd is 1e-4)
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_tree

import gradkit as gk

STEPS = 50


def not_bias(params):
    """Mask: decay every leaf except the dense bias."""
    mask = jax.tree.map(lambda _: True, params)
    mask["dense"]["b"] = False
    return mask


CASES = {
    "identity": (gk.identity, optax.identity),
    "scale": (lambda: gk.scale(-0.3), lambda: optax.scale(-0.3)),
    "scale_by_learning_rate": (lambda: gk.scale_by_learning_rate(0.05), lambda: optax.scale_by_learning_rate(0.05)),
    "scale_by_learning_rate_schedule": (
        lambda: gk.scale_by_learning_rate(lambda t: 0.1 / (1.0 + t)),
        lambda: optax.scale_by_learning_rate(lambda t: 0.1 / (1.0 + t)),
    ),
    "clip_by_global_norm": (lambda: gk.clip_by_global_norm(0.5), lambda: optax.clip_by_global_norm(0.5)),
    "scale_by_momentum": (lambda: gk.scale_by_momentum(0.9), lambda: optax.trace(decay=0.9)),
    "scale_by_momentum_nesterov": (
        lambda: gk.scale_by_momentum(0.8, nesterov=True),
        lambda: optax.trace(decay=0.8, nesterov=True),
    ),
    "scale_by_rss": (
        lambda: gk.scale_by_rss(initial_accumulator_value=0.1, eps=0.0),
        lambda: optax.scale_by_rss(initial_accumulator_value=0.1, eps=0.0),
    ),
    "scale_by_rms": (
        lambda: gk.scale_by_rms(decay=0.9, eps=1e-3),
        lambda: optax.scale_by_rms(decay=0.9, eps=1e-3, eps_in_sqrt=False),
    ),
    "scale_by_rms_eps_in_sqrt": (
        lambda: gk.scale_by_rms(decay=0.9, eps=1e-3, eps_in_sqrt=True, initial_scale=0.5),
        lambda: optax.scale_by_rms(decay=0.9, eps=1e-3, eps_in_sqrt=True, initial_scale=0.5),
    ),
    "scale_by_adam": (
        lambda: gk.scale_by_adam(b1=0.8, b2=0.95, eps=1e-4, eps_root=1e-6),
        lambda: optax.scale_by_adam(b1=0.8, b2=0.95, eps=1e-4, eps_root=1e-6),
    ),
    "add_decayed_weights": (
        lambda: gk.add_decayed_weights(0.1, mask=not_bias),
        lambda: optax.add_decayed_weights(0.1, mask=not_bias),
    ),
    "sgd": (lambda: gk.sgd(0.05), lambda: optax.sgd(0.05)),
    "sgd_momentum": (lambda: gk.sgd(0.05, momentum=0.9), lambda: optax.sgd(0.05, momentum=0.9)),
    "sgd_nesterov_weight_decay": (
        lambda: gk.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2, mask=not_bias),
        lambda: optax.chain(
            optax.add_decayed_weights(1e-2, mask=not_bias), optax.sgd(0.05, momentum=0.9, nesterov=True)
        ),
    ),
    "adagrad": (
        lambda: gk.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
        lambda: optax.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
    ),
    "rmsprop": (
        lambda: gk.rmsprop(0.01, decay=0.9, eps=1e-6),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-6, eps_in_sqrt=False),
    ),
    "adam": (lambda: gk.adam(0.01), lambda: optax.adam(0.01)),
    "adam_l2": (
        lambda: gk.adam(0.01, weight_decay=0.1, mask=not_bias),
        lambda: optax.chain(optax.add_decayed_weights(0.1, mask=not_bias), optax.adam(0.01)),
    ),
    "adamw": (
        lambda: gk.adamw(0.01, weight_decay=0.1, mask=not_bias),
        lambda: optax.adamw(0.01, weight_decay=0.1, mask=not_bias),
    ),
    "composed": (
        lambda: gk.chain(
            gk.clip_by_global_norm(1.0),
            gk.scale_by_adam(),
            gk.add_decayed_weights(0.01),
            gk.scale_by_learning_rate(1e-2),
        ),
        lambda: optax.chain(
            optax.clip_by_global_norm(1.0), optax.scale_by_adam(), optax.add_decayed_weights(0.01), optax.scale(-1e-2)
        ),
    ),
}


def gradients(params, step):
    """A gradient that depends on the params (so trajectories couple) and on the step (so moments see change).

    The params enter linearly with a contracting factor, so rounding differences are not amplified step to step.
    """

    def leaf(p):
        wave = jnp.sin(jnp.arange(p.size, dtype=p.real.dtype).reshape(p.shape) + step)
        return 0.5 * p + wave.astype(p.dtype)

    return jax.tree.map(leaf, params)


# Cases whose updates descend (they end with a negative learning rate): their closed-loop trajectories are compared.
# The others (e.g. scale_by_rms alone adds +g/rms) would push params away, so they are compared open loop.
DESCENDING = {n for n in CASES if not n.startswith(("identity", "scale", "clip", "add_decayed"))} | {
    "scale_by_learning_rate",
    "scale_by_learning_rate_schedule",
}


def run(tx, params, jit: bool, closed_loop: bool):
    """The params after each step (closed loop) or the updates of each step at fixed params (open loop)."""

    def step(params, state, t):
        updates, state = tx.update(gradients(params, t), state, params)
        return updates, state

    chex.clear_trace_counter()  # the counter is keyed by source, so both libraries' runs would share it
    step = jax.jit(chex.assert_max_traces(step, n=1)) if jit else step
    state = tx.init(params)
    outputs = []
    for t in range(STEPS):
        updates, state = step(params, state, jnp.asarray(t, params["dense"]["w"].dtype))
        if closed_loop:
            params = gk.apply_updates(params, updates)
        outputs.append(params if closed_loop else updates)
    return outputs


def compare(name, dtype, jit, rtol):
    ours, theirs = CASES[name]
    params = random_tree(1, dtype)
    closed = name in DESCENDING
    for a, b in zip(run(ours(), params, jit, closed), run(theirs(), params, jit, closed)):
        # An entry is a sum of O(scale) terms, so its rounding error is relative to the scale, not to itself.
        scale = max([1.0] + [float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(b) if x.size])
        chex.assert_trees_all_close(a, b, rtol=rtol, atol=rtol * scale)
        chex.assert_trees_all_equal_dtypes(a, params)


# The two libraries do the same arithmetic up to the order and lowering of a few operations (optax multiplies by
# rsqrt(h + eps) where gradkit divides by sqrt(h + eps); bias corrections use different pow lowerings), so each step
# may differ by an ulp or two (measured on CPU: all cases within 3e-7). 1e-6 is ~8 float32 ulps; float64 is held to 1e-12.
@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_float32(name, jit):
    compare(name, jnp.float32, jit, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_float64(name):
    with jax.enable_x64(True):
        compare(name, jnp.float64, jit=True, rtol=1e-12)


def test_mixes_with_optax_both_ways():
    """A gradkit transformation inside optax.chain and an optax one inside gk.chain give the same updates."""
    params = random_tree(2)
    grads = gradients(params, 0.0)
    a = optax.chain(gk.clip_by_global_norm(0.5), optax.adam(1e-2))
    b = gk.chain(optax.clip_by_global_norm(0.5), gk.adam(1e-2))
    sa, sb = a.init(params), b.init(params)
    for t in range(3):
        ua, sa = a.update(grads, sa, params)
        ub, sb = b.update(grads, sb, params)
        chex.assert_trees_all_close(ua, ub, rtol=1e-6)


def test_complex_params_match_optax():
    """Second moments use |g|^2 = g conj(g); gradkit stores them as real arrays, optax as complex with 0 imaginary part."""
    rng = np.random.default_rng(0)
    params = {"z": jnp.asarray(rng.normal(size=5) + 1j * rng.normal(size=5), jnp.complex64)}
    for ours, theirs in [
        (gk.adam(0.01), optax.adam(0.01)),
        (gk.rmsprop(0.01, decay=0.9), optax.rmsprop(0.01, decay=0.9, eps_in_sqrt=False)),
    ]:
        sa, sb = ours.init(params), theirs.init(params)
        pa = pb = params
        for t in range(20):
            ua, sa = ours.update(gradients(pa, float(t)), sa, pa)
            ub, sb = theirs.update(gradients(pb, float(t)), sb, pb)
            pa, pb = gk.apply_updates(pa, ua), optax.apply_updates(pb, ub)
        chex.assert_trees_all_close(pa, pb, rtol=1e-5)
        assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(sa.inner[0]) if leaf.dtype != jnp.complex64)
