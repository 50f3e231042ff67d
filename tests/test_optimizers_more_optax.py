"""The optimizers beyond the lecture against optax, step for step on a nested pytree, 50 steps.

float32 to 1e-6 relative (jitted), float64 to 1e-12. Argument mapping (gradkit -> optax):
- adabelief(lr, b1, b2, eps, eps_root)           -> optax.adabelief(lr, b1, b2, eps, eps_root) (same defaults)
- lion(lr, b1, b2, weight_decay, mask)           -> optax.lion(lr, b1, b2, weight_decay=..., mask=...) (same defaults)
- lars(lr, weight_decay, trust_coefficient, eps, momentum, nesterov, mask, trust_ratio_mask)
      -> optax.lars(lr, weight_decay, weight_decay_mask=mask, trust_coefficient, eps, trust_ratio_mask, momentum,
         nesterov) (gradkit's mask=None means every leaf, optax's True)
- lamb(lr, b1, b2, eps, eps_root, weight_decay, mask) -> optax.lamb(lr, b1, b2, eps, eps_root, weight_decay, mask)
- radam(lr, b1, b2, eps, threshold)              -> optax.radam(lr, b1, b2, eps, threshold=threshold)
- adamax(lr, b1, b2, eps)                        -> optax.adamax(lr, b1, b2, eps)
- adadelta(lr, rho, eps, weight_decay, mask)     -> optax.adadelta(lr, rho, eps, weight_decay, weight_decay_mask=mask)
- schedule_free_sgd(lr, b1, weight_decay, weight_lr_power)
      -> optax.contrib.schedule_free_sgd(lr, b1=b1, weight_decay=weight_decay, weight_lr_power=...)
- schedule_free_adamw(lr, b1, b2, eps, weight_decay, weight_lr_power)
      -> optax.contrib.schedule_free_adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=..., weight_lr_power=...)
- schedule_free(base, lr_schedule)               -> optax.contrib.schedule_free(base, lambda t: lr_schedule(t - 1)):
                                                    optax calls the schedule at t + 1 for the averaging weights
- schedule_free_eval_params(state, params)       -> optax.contrib.schedule_free_eval_params(state, params)
- scale_by_trust_ratio(c, eps), clip_by_block_rms(d) -> optax.scale_by_trust_ratio(trust_coefficient=c, eps=eps),
                                                    optax.clip_by_block_rms(d)
Adafactor, NAdam, AMSGrad and Muon follow torch (tests/test_optimizers_more_torch.py); optax's conventions differ
(documented in their docstrings).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from conftest import random_tree

import gradkit as gk

STEPS = 50


def warmup(t):
    """A linear warmup to 0.1 over 10 steps (from 0 at step 0), the same function for both libraries."""
    return 0.1 * jnp.minimum(t, 10) / 10


def not_bias(params):
    mask = jax.tree.map(lambda _: True, params)
    mask["dense"]["b"] = False
    return mask


CASES = {
    "adabelief": (lambda: gk.adabelief(1e-2), lambda: optax.adabelief(1e-2)),
    "lion_masked_decay": (
        lambda: gk.lion(1e-3, b1=0.8, b2=0.95, weight_decay=0.1, mask=not_bias),
        lambda: optax.lion(1e-3, b1=0.8, b2=0.95, weight_decay=0.1, mask=not_bias),
    ),
    "lars_decay_nesterov": (
        lambda: gk.lars(0.5, 1e-2, 0.01, 1e-6, 0.8, nesterov=True, mask=not_bias, trust_ratio_mask=not_bias),
        lambda: optax.lars(0.5, 1e-2, not_bias, 0.01, 1e-6, not_bias, 0.8, nesterov=True),
    ),
    "lamb_decay": (
        lambda: gk.lamb(1e-2, 0.8, 0.99, 1e-4, 1e-8, weight_decay=0.1, mask=not_bias),
        lambda: optax.lamb(1e-2, 0.8, 0.99, 1e-4, 1e-8, weight_decay=0.1, mask=not_bias),
    ),
    "radam_threshold": (
        lambda: gk.radam(1e-2, b1=0.8, b2=0.95, eps=1e-4, threshold=3.0),
        lambda: optax.radam(1e-2, b1=0.8, b2=0.95, eps=1e-4, threshold=3.0),
    ),
    "adamax": (lambda: gk.adamax(1e-2), lambda: optax.adamax(1e-2)),
    "adadelta": (
        lambda: gk.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.1, mask=not_bias),
        lambda: optax.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.1, weight_decay_mask=not_bias),
    ),
    "schedule_free_sgd": (
        lambda: gk.schedule_free_sgd(0.1, b1=0.8, weight_decay=1e-2),
        lambda: optax.contrib.schedule_free_sgd(0.1, b1=0.8, weight_decay=1e-2),
    ),
    "schedule_free_adamw": (
        lambda: gk.schedule_free_adamw(1e-2, weight_decay=1e-2, weight_lr_power=1.0),
        lambda: optax.contrib.schedule_free_adamw(1e-2, weight_decay=1e-2, weight_lr_power=1.0),
    ),
    "schedule_free_warmup": (
        lambda: gk.schedule_free(gk.sgd(warmup), warmup, b1=0.8),
        lambda: optax.contrib.schedule_free(optax.sgd(warmup), lambda t: warmup(t - 1), b1=0.8),
    ),
    "trust_ratio_and_block_rms": (
        lambda: gk.chain(
            gk.scale_by_trust_ratio(0.1, eps=1e-3), gk.clip_by_block_rms(0.5), gk.scale_by_learning_rate(0.1)
        ),
        lambda: optax.chain(
            optax.scale_by_trust_ratio(trust_coefficient=0.1, eps=1e-3),
            optax.clip_by_block_rms(0.5),
            optax.scale_by_learning_rate(0.1),
        ),
    ),
}


def small_tree(dtype=jnp.float32):
    """Three leaves (a matrix, a vector, a 3-D leaf): odd trees are covered in tests/test_optimizers_by_name.py."""
    tree = random_tree(1, dtype)
    return {"dense": tree["dense"], "layers": [tree["layers"][0]]}


def gradients(params, step):
    """A gradient that depends on the params (contracting, so rounding is not amplified) and on the step."""

    def leaf(p):
        wave = jnp.sin(jnp.arange(p.size, dtype=p.real.dtype).reshape(p.shape) + step)
        return 0.5 * p + wave.astype(p.dtype)

    return jax.tree.map(leaf, params)


def trajectory(tx, params):
    """The params after each of STEPS steps, from one compiled step (traced once)."""

    def step(params, state, t):
        updates, state = tx.update(gradients(params, t), state, params)
        return gk.apply_updates(params, updates), state

    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(step, n=1))
    state, out = tx.init(params), []
    for t in range(STEPS):
        params, state = step(params, state, jnp.asarray(t, params["dense"]["w"].dtype))
        out.append(params)
    return out, state


def compare(name, dtype, rtol):
    ours, theirs = CASES[name]
    params = small_tree(dtype)
    (a, _), (b, _) = trajectory(ours(), params), trajectory(theirs(), params)
    for x, y in zip(a, b):
        scale = max([1.0] + [float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(y) if leaf.size])
        chex.assert_trees_all_close(x, y, rtol=rtol, atol=rtol * scale)
        chex.assert_trees_all_equal_dtypes(x, params)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_float32(name):
    compare(name, jnp.float32, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_float64(name):
    with jax.enable_x64(True):
        compare(name, jnp.float64, rtol=1e-12)


def test_schedule_free_eval_params_match_optax():
    params = small_tree()
    (a, state_a), (b, state_b) = (
        trajectory(gk.schedule_free_adamw(1e-2), params),
        trajectory(optax.contrib.schedule_free_adamw(1e-2), params),
    )
    ours = gk.schedule_free_eval_params(state_a, a[-1])
    theirs = optax.contrib.schedule_free_eval_params(state_b, b[-1])
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-6)
    # and they are not the training params: x and y differ once z has moved
    assert float(jnp.max(jnp.abs(ours["dense"]["w"] - a[-1]["dense"]["w"]))) > 1e-4
