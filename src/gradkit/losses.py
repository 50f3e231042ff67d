"""Classification losses of lectures 2 and 3: stable softmax, cross-entropy, the multiclass SVM (hinge) loss.

Every loss is per example: ``logits`` has shape ``(..., C)`` and the result has shape ``(...)``; take
``jnp.mean`` yourself. Softmax is always computed in the max-subtracted form
``exp(s - max s) / sum exp(s - max s)``, so scores of 1000 or -1e30 and ``-inf`` masks are safe.

Labels are integer class indices of shape ``(...)`` or, for cross-entropy, probability vectors of
shape ``(..., C)``: the dtype decides (integer -> indices, floating -> probabilities).

Out-of-range labels: concrete labels raise a ``ValueError``. Under ``jit`` the labels are traced and
cannot be checked, so an out-of-range (or negative) label gives a NaN loss and NaN gradients for that
example, never a plausible number (``jnp.take`` would silently clamp or wrap the index).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import _checks

Array = jax.Array


def _check_scores(name: str, scores: Any) -> Array:
    scores = jnp.asarray(scores)
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise TypeError(f"{name} must be floating point, got dtype {scores.dtype}; cast with .astype(jnp.float32)")
    return scores


def _check_indices(labels: Array, scores: Array) -> None:
    """Integer labels: shape ``scores.shape[:-1]``, and (when concrete) each in ``[0, C)``."""
    num_classes = scores.shape[-1]
    if labels.shape != scores.shape[:-1]:
        raise ValueError(
            f"integer labels must have shape logits.shape[:-1] = {scores.shape[:-1]}, got {labels.shape}. "
            "Pass one class index per example, or float probability vectors of shape logits.shape."
        )
    if not isinstance(labels, jax.core.Tracer):
        values = np.asarray(labels)
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            raise ValueError(f"labels must be class indices in [0, {num_classes}), got {values[bad][:5].tolist()}")


# -- kernels: jitted, so an eager call compiles once per shape instead of dispatching op by op --------


def _shift(scores: Array) -> Array:
    """``s - max(s)`` over the last axis; where the max is +inf, 0 at the +inf entries and -inf elsewhere.

    The max is a constant for the gradient: softmax is shift-invariant, so its derivative through the
    max is exactly zero, and stopping it avoids splitting the gradient between tied maxima.
    """
    top = jax.lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True))
    finite_top = jnp.where(jnp.isfinite(top), top, 0)
    return jnp.where(jnp.isposinf(top), jnp.where(jnp.isposinf(scores), 0.0, -jnp.inf), scores - finite_top)


def _softmax_last(scores: Array) -> Array:
    e = jnp.exp(_shift(scores))
    return e / jnp.sum(e, axis=-1, keepdims=True)


def _log_softmax_last(scores: Array) -> Array:
    top_index = jnp.argmax(scores, axis=-1, keepdims=True)
    top = jnp.take_along_axis(scores, top_index, axis=-1)  # differentiable: d log p / d s_top is exact
    finite = jnp.isfinite(top)
    centered = scores - jnp.where(finite, top, 0)
    is_top = jnp.arange(scores.shape[-1]) == top_index
    rest = jnp.sum(jnp.where(is_top, 0, jnp.exp(centered)), axis=-1, keepdims=True)
    # An infinite max: the limit (+inf entries share the mass) or NaN (all -inf), from the plain shifted form.
    shifted = _shift(scores)
    limit = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))
    return jnp.where(finite, centered - jnp.log1p(rest), limit)


@jax.jit
def _onehot_or_nan(labels: Array, scores: Array) -> tuple[Array, Array]:
    """One-hot of ``labels`` over the classes, and a factor: 1, or NaN where the label is out of range.

    An out-of-range label is computed as class 0 and then poisoned, so both the loss and its gradient
    are NaN for that example (a one-hot of zeros would give a finite, plausible loss).
    """
    num_classes = scores.shape[-1]
    inside = (labels >= 0) & (labels < num_classes)
    onehot = jnp.where(inside, labels, 0)[..., None] == jnp.arange(num_classes)
    return onehot, jnp.where(inside, 1.0, jnp.nan).astype(scores.dtype)


@jax.jit
def _cross_entropy_indices(logits: Array, labels: Array) -> Array:
    onehot, valid = _onehot_or_nan(labels, logits)
    return -jnp.sum(jnp.where(onehot, _log_softmax_last(logits), 0), axis=-1) * valid


@jax.jit
def _cross_entropy_probabilities(logits: Array, q: Array) -> Array:
    # 0 * log 0 is 0 here: a masked class (logit -inf) with no label mass contributes nothing.
    return -jnp.sum(jnp.where(q == 0, 0, q * _log_softmax_last(logits)), axis=-1)


@jax.jit
def _hinge(scores: Array, labels: Array, margin: Array) -> Array:
    onehot, valid = _onehot_or_nan(labels, scores)
    correct = jnp.sum(jnp.where(onehot, scores, 0), axis=-1, keepdims=True)
    margins = jnp.where(onehot, 0, jnp.maximum(0, scores - correct + margin))
    return jnp.sum(margins, axis=-1) * valid


# -- public ------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames="axis")
def _softmax(scores: Array, axis: int) -> Array:
    return jnp.moveaxis(_softmax_last(jnp.moveaxis(scores, axis, -1)), -1, axis)


@partial(jax.jit, static_argnames="axis")
def _log_softmax(scores: Array, axis: int) -> Array:
    return jnp.moveaxis(_log_softmax_last(jnp.moveaxis(scores, axis, -1)), -1, axis)


def softmax(scores: Any, axis: int = -1) -> Array:
    """Probabilities from scores: ``p_k = exp(s_k - max s) / sum_j exp(s_j - max s)``.

    Finite for huge scores; ``-inf`` entries get probability 0; entries of ``+inf`` share all the mass;
    a row of only ``-inf`` is NaN (no distribution exists). Same as ``jax.nn.softmax``.

    >>> gk.losses.softmax(jnp.array([3.2, 1.3, 2.2]))   # [0.659, 0.099, 0.243]
    """
    return _softmax(_check_scores("scores", scores), axis)


def log_softmax(scores: Any, axis: int = -1) -> Array:
    """Log-probabilities: ``log p_k = (s_k - m) - log(1 + sum_{j != argmax} exp(s_j - m))``, ``m = max s``.

    Exact in the tails where ``log(softmax(s))`` underflows to ``-inf``, and through ``log1p`` also
    for a nearly certain top class (``log p ~ -1e-6``), where ``log(sum exp)`` would round to a
    multiple of 6e-8. Otherwise the same as ``jax.nn.log_softmax``.

    >>> gk.losses.log_softmax(jnp.array([1000.0, 0.0]))   # [0., -1000.]
    """
    return _log_softmax(_check_scores("scores", scores), axis)


def softmax_cross_entropy(logits: Any, labels: Any) -> Array:
    """Per-example cross-entropy ``L_i = -log p(y_i) = log sum_j exp(s_j) - s_{y_i}``, or ``-sum_k q_k log p_k``.

    ``labels``: integer class indices of shape ``logits.shape[:-1]``, or floating probability vectors
    ``q`` of shape ``logits.shape`` (rows summing to 1, checked when concrete). The gradient with
    respect to the logits is ``softmax(s) - onehot(y)`` (``softmax(s) - q``), finite for any finite
    logits. Logits of ``-inf`` (masked classes) are allowed where the label puts no mass.
    optax splits this into ``softmax_cross_entropy`` (probabilities) and
    ``softmax_cross_entropy_with_integer_labels``; torch's ``F.cross_entropy(..., reduction="none")``
    takes both forms but with the class axis at 1.

    >>> gk.losses.softmax_cross_entropy(jnp.array([[3.2, 1.3, 2.2]]), jnp.array([0]))   # [0.417]
    """
    logits = _check_scores("logits", logits)
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        _check_indices(labels, logits)
        return _cross_entropy_indices(logits, labels)
    if not jnp.issubdtype(labels.dtype, jnp.floating):
        raise TypeError(f"labels must be integer class indices or float probabilities, got dtype {labels.dtype}")
    if labels.shape != logits.shape:
        raise ValueError(
            f"probability labels must have the shape of the logits {logits.shape}, got {labels.shape}. "
            "For class indices pass an integer array of shape logits.shape[:-1]."
        )
    if not isinstance(labels, jax.core.Tracer):
        q = np.asarray(labels, np.float64)
        if (q < 0).any() or not np.allclose(q.sum(-1), 1.0, atol=1e-3):
            raise ValueError("probability labels must be >= 0 with each row summing to 1 (to 1e-3)")
    return _cross_entropy_probabilities(logits, labels)


def multiclass_hinge(scores: Any, labels: Any, margin: float = 1.0) -> Array:
    """The multiclass SVM loss of lecture 2: ``L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + margin)``.

    ``labels`` are integer class indices of shape ``scores.shape[:-1]``. torch's
    ``MultiMarginLoss(margin=margin, reduction="none")`` is this divided by the number of classes;
    optax's ``multiclass_hinge_loss`` is the Crammer-Singer max, not this sum.

    >>> gk.losses.multiclass_hinge(jnp.array([3.2, 5.1, -1.7]), jnp.array(0))   # 2.9
    """
    scores = _check_scores("scores", scores)
    _checks.non_negative("margin", margin)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    _check_indices(labels, scores)
    return _hinge(scores, labels, margin)


__all__ = ["log_softmax", "multiclass_hinge", "softmax", "softmax_cross_entropy"]
