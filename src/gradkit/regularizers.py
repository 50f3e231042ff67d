"""Regularization of lecture 3, chapter 2: ``L = L_data + lambda * R(W)``.

Penalties ``R`` are functions of a param tree returning a scalar (add ``lambda * R(params)`` to your
loss). ``mask`` picks the leaves that are penalized: a tree of bools shaped like the params, or a
function ``params -> tree of bools`` (e.g. ``lambda p: {"w": True, "b": False}`` to spare biases).

Plain L1 through the gradient (the subgradient ``lambda * sign(W)``) only makes small weights jitter
around zero. ``prox_l1`` is the proximal step instead: chained after the learning rate it soft-thresholds
the weights, so those L1 wants at zero are exactly zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradkit import _checks, _tree
from gradkit.core import EmptyState, GradientTransformation, Params, Stepped, Updates, chain, described

Mask = Any  # None, a tree of bools shaped like the params, or params -> tree of bools
Scalar = Any
Schedule = Callable[[jax.Array], jax.Array]


def _penalized(params: Params, mask: Mask) -> list[jax.Array]:
    """The leaves of ``params`` that ``mask`` selects (all of them without a mask)."""
    _tree.check_floating(params, "penalized")
    selected = _tree.resolve_mask(mask, params)
    pairs = zip(jax.tree.leaves(params), jax.tree.leaves(selected))
    # a per-element selection (packed params) zeroes the unselected elements; a bool drops the leaf
    return [_tree.where(keep, p, jnp.zeros_like(p)) for p, keep in pairs if keep is not False]


def _total(values: list[jax.Array]) -> jax.Array:
    return sum(values, jnp.zeros((), jnp.float32))


def _accumulate(x: jax.Array) -> jax.Array:
    """``x`` in at least float32, so a bfloat16 tree does not lose its sum."""
    return x.astype(jnp.promote_types(_tree.real_dtype(x.dtype), jnp.float32))


def l2(params: Params, mask: Mask = None) -> jax.Array:
    """L2 penalty (weight decay): ``R(W) = sum_i W_i^2``, over the masked leaves.

    No factor 1/2: the gradient is ``2 W``. ``add_decayed_weights(wd)`` (torch's ``weight_decay=wd``)
    adds ``wd * W``, the gradient of ``(wd / 2) * l2(params)``. optax's ``l2_loss`` is ``0.5 * x^2``.

    >>> gk.regularizers.l2({"w": jnp.array([0.25, 0.25, 0.25, 0.25])})   # 0.25
    """
    return _total([jnp.sum(_tree.abs_sq(_accumulate(p))) for p in _penalized(params, mask)])


def l1(params: Params, mask: Mask = None) -> jax.Array:
    """L1 penalty (sparsity): ``R(W) = sum_i |W_i|``, over the masked leaves.

    Its gradient is ``sign(W)``; for exact zeros use ``prox_l1`` rather than this gradient.

    >>> gk.regularizers.l1({"w": jnp.array([1.0, -2.0])})   # 3.0
    """
    return _total([jnp.sum(jnp.abs(_accumulate(p))) for p in _penalized(params, mask)])


def elastic_net(params: Params, *, l1: Scalar, l2: Scalar, mask: Mask = None) -> jax.Array:
    """Elastic net: ``R(W) = l1 * sum |W_i| + l2 * sum W_i^2`` (the lecture's ``beta1 |W| + beta2 W^2``).

    >>> gk.regularizers.elastic_net(params, l1=1e-4, l2=1e-3)
    """
    _checks.non_negative("l1", l1)
    _checks.non_negative("l2", l2)
    return l1 * _l1(params, mask) + l2 * _l2(params, mask)


_l1, _l2 = l1, l2  # elastic_net's keyword arguments shadow the functions


def soft_threshold(x: jax.Array, threshold: Scalar) -> jax.Array:
    """The proximal operator of ``threshold * |x|``: ``sign(x) * max(|x| - threshold, 0)``.

    Shrinks every entry by ``threshold`` and sets those within ``threshold`` of zero to exactly 0.

    >>> gk.regularizers.soft_threshold(jnp.array([0.3, -0.05, -1.0]), 0.1)   # [0.2, 0., -0.9]
    """
    _checks.non_negative("threshold", threshold)
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - threshold, 0)


@described
def prox_l1(strength: Scalar, learning_rate: Scalar | Schedule, mask: Mask = None) -> GradientTransformation:
    """Proximal L1 (ISTA): the step that makes ``W <- soft_threshold(W + u, lr * strength)``.

    Put it last in a chain, after the learning rate, with the same ``learning_rate`` (number or
    schedule ``step -> lr``, read at the same step); it needs ``params``. Given the updates ``u``
    it returns ``soft_threshold(W + u, lr * strength) - W``, so ``apply_updates`` lands exactly on the
    thresholded weights: exact zeros, minimizing ``L_data + strength * sum |W|`` without the
    subgradient's jitter. Unmasked leaves pass through unchanged.

    >>> tx = gk.chain(gk.sgd(0.1), gk.regularizers.prox_l1(1e-3, 0.1, mask=lambda p: {"w": True, "b": False}))
    """
    _checks.non_negative("strength", strength)
    _checks.learning_rate(learning_rate)

    def threshold_step(updates: Updates, params: Params, lr: Scalar) -> Updates:
        if params is None:
            raise ValueError("prox_l1 needs the params: call tx.update(grads, state, params)")
        _tree.check_same_structure(updates, params, "params")
        keep = _tree.resolve_mask(mask, params)

        def step(u: jax.Array, w: jax.Array, penalized: Any) -> jax.Array:
            return _tree.where(penalized, soft_threshold(w + u, lr * strength) - w, u)

        return _tree.map_like(step, updates, params, keep)

    if not callable(learning_rate):

        def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
            _tree.check_state(state, EmptyState)
            return threshold_step(updates, params, learning_rate), state

        return GradientTransformation(lambda params: EmptyState(), update)

    def stepped_update(updates: Updates, state: EmptyState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, EmptyState)
        return threshold_step(updates, params, learning_rate(count)), state

    return chain(Stepped(lambda params: EmptyState(), stepped_update))


__all__ = ["elastic_net", "l1", "l2", "prox_l1", "soft_threshold"]
