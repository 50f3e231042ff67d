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
from jax.core import Tracer

from gradkit import _checks

Array = jax.Array


def _check_scores(name: str, scores: Any) -> Array:
    if isinstance(scores, (str, bytes)):
        raise TypeError(f"{name} must be a floating-point array, got {scores!r}")
    scores = jnp.asarray(scores)
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise TypeError(f"{name} must be floating point, got dtype {scores.dtype}; cast with .astype(jnp.float32)")
    if scores.ndim == 0 or scores.shape[-1] == 0:
        raise ValueError(
            f"{name} must have a class axis: shape (..., C) with C >= 1, got shape {scores.shape}. "
            "For one example pass a vector of C scores."
        )
    return scores


def _check_indices(labels: Array, scores: Array) -> None:
    """Integer labels: shape ``scores.shape[:-1]``, and (when concrete) each in ``[0, C)``."""
    num_classes = scores.shape[-1]
    if labels.shape != scores.shape[:-1]:
        raise ValueError(
            f"integer labels must have shape logits.shape[:-1] = {scores.shape[:-1]}, got {labels.shape}. "
            "Pass one class index per example, or float probability vectors of shape logits.shape."
        )
    if not isinstance(labels, Tracer):
        values = np.asarray(labels)
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            raise ValueError(f"labels must be class indices in [0, {num_classes}), got {values[bad][:5].tolist()}")


# -- kernels: jitted, so an eager call compiles once per shape instead of dispatching op by op --------


def _shifted(scores: Array) -> tuple[Array, Array]:
    """``(s - m, is_max)`` over the last axis, ``m = max s``, taking the limit in rows whose max is +inf.

    Such rows become 0 at their +inf entries and -inf elsewhere (the +inf entries share the mass); a
    row of only -inf keeps ``m = -inf`` and gives NaN downstream (no distribution exists).
    """
    top = jnp.max(scores, axis=-1, keepdims=True)
    infinite_top = jnp.isposinf(top)
    scores = jnp.where(infinite_top, jnp.where(jnp.isposinf(scores), 0, -jnp.inf).astype(scores.dtype), scores)
    top = jnp.where(infinite_top, 0, top)
    return scores - top, scores == top  # -inf - (-inf) is NaN: an all -inf row stays NaN


@jax.custom_jvp
def _softmax_last(scores: Array) -> Array:
    e = jnp.exp(_shifted(scores)[0])
    return e / jnp.sum(e, axis=-1, keepdims=True)


@_softmax_last.defjvp
def _softmax_jvp(primals: tuple, tangents: tuple) -> tuple[Array, Array]:
    # dp_k = p_k (ds_k - sum_j p_j ds_j): the max subtracted in the forward pass has no derivative.
    (scores,), (ds,) = primals, tangents
    p = _softmax_last(scores)
    return p, p * (ds - jnp.sum(p * ds, axis=-1, keepdims=True))


@jax.custom_jvp
def _log_softmax_last(scores: Array) -> Array:
    centered, is_top = _shifted(scores)
    # log Z - max = log(1 + sum_{j not a max} e^{s_j - max} + (ties - 1)), through log1p: exact near 0.
    ties = jnp.sum(is_top, axis=-1, keepdims=True).astype(scores.dtype) - 1
    rest = jnp.sum(jnp.exp(jnp.where(is_top, -jnp.inf, centered)), axis=-1, keepdims=True) + ties
    return centered - jnp.log1p(rest)


@_log_softmax_last.defjvp
def _log_softmax_jvp(primals: tuple, tangents: tuple) -> tuple[Array, Array]:
    # d log p_k = ds_k - sum_j p_j ds_j; for cross-entropy this makes the gradient softmax - onehot.
    (scores,), (ds,) = primals, tangents
    logp = _log_softmax_last(scores)
    return logp, ds - jnp.sum(jnp.exp(logp) * ds, axis=-1, keepdims=True)


@jax.jit
def _index_or_nan(labels: Array, scores: Array) -> tuple[Array, Array]:
    """``labels`` as gather indices ``(..., 1)``, and a factor: 1, or NaN where the label is out of range.

    An out-of-range label is computed as class 0 and then poisoned, so both the loss and its gradient
    are NaN for that example (a clamped or wrapped index would give a finite, plausible loss).
    """
    inside = (labels >= 0) & (labels < scores.shape[-1])
    return jnp.where(inside, labels, 0)[..., None], jnp.where(inside, 1.0, jnp.nan).astype(scores.dtype)


@jax.jit
def _cross_entropy_indices(logits: Array, labels: Array) -> Array:
    index, valid = _index_or_nan(labels, logits)
    return -jnp.take_along_axis(_log_softmax_last(logits), index, axis=-1)[..., 0] * valid


@jax.jit
def _cross_entropy_probabilities(logits: Array, q: Array) -> Array:
    # 0 * log 0 is 0 here: a masked class (logit -inf) with no label mass contributes nothing.
    return -jnp.sum(jnp.where(q == 0, 0, q * _log_softmax_last(logits)), axis=-1)


@jax.jit
def _hinge(scores: Array, labels: Array, margin: Array) -> Array:
    index, valid = _index_or_nan(labels, scores)
    correct = jnp.take_along_axis(scores, index, axis=-1)
    margins = jnp.maximum(0, scores - correct + margin)
    # The j = y term is max(0, margin) = margin exactly; remove it rather than mask every entry.
    return (jnp.sum(margins, axis=-1) - jnp.maximum(0, margin)) * valid


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
    a row of only ``-inf`` is NaN (no distribution exists). Same as ``jax.nn.softmax`` for finite
    scores (jax.nn gives NaN for ``+inf``).

    >>> gk.losses.softmax(jnp.array([3.2, 1.3, 2.2]))   # [0.659, 0.099, 0.243]
    """
    return _softmax(_check_scores("scores", scores), axis)


def log_softmax(scores: Any, axis: int = -1) -> Array:
    """Log-probabilities: ``log p_k = (s_k - m) - log1p(sum_{j: s_j < m} exp(s_j - m) + ties - 1)``, ``m = max s``.

    Exact in the tails where ``log(softmax(s))`` underflows to ``-inf``, and through ``log1p`` also
    for a nearly certain top class (``log p ~ -1e-6``), where ``log(sum exp)`` would round to a
    multiple of 6e-8. The gradient is ``ds_k - sum_j p_j ds_j`` exactly (a custom JVP). Otherwise
    the same as ``jax.nn.log_softmax``; also for ``+inf`` scores, where jax.nn gives NaN.

    >>> gk.losses.log_softmax(jnp.array([1000.0, 0.0]))   # [0., -1000.]
    """
    return _log_softmax(_check_scores("scores", scores), axis)


def softmax_cross_entropy(logits: Any, labels: Any, axis: int = -1, where: Any = None) -> Array:
    """Per-example cross-entropy ``L_i = -log p(y_i) = log sum_j exp(s_j) - s_{y_i}``, or ``-sum_k q_k log p_k``.

    ``labels``: integer class indices of shape ``logits.shape`` without ``axis``, or floating probability
    vectors ``q`` of shape ``logits.shape`` (summing to 1 along ``axis``, checked when concrete). The
    gradient with respect to the logits is ``softmax(s) - onehot(y)`` (``softmax(s) - q``), finite for
    any finite logits. Logits of ``-inf`` (masked classes) are allowed where the label puts no mass.

    ``axis``: the class axis (torch's ``F.cross_entropy`` uses 1). ``where``: a bool mask, either one
    entry per example (shape ``logits.shape`` without ``axis``; False rows give loss 0 and gradient 0,
    whatever their labels, e.g. padding) or one per logit (shape ``logits.shape``; False classes are
    left out of the softmax and of the sum, and a row with no class left gives 0). optax splits this
    into ``softmax_cross_entropy(logits, labels, axis, where)`` (probabilities) and
    ``softmax_cross_entropy_with_integer_labels(logits, labels, axis, where)``, with the same ``axis``
    and ``where`` (an int ``axis`` only here); torch's ``F.cross_entropy(..., reduction="none")``
    takes both label forms with the class axis at 1 and ``ignore_index`` for masked rows.

    >>> gk.losses.softmax_cross_entropy(jnp.array([[3.2, 1.3, 2.2]]), jnp.array([0]))   # [0.417]
    """
    logits = _check_scores("logits", logits)
    labels = jnp.asarray(labels)
    if not isinstance(axis, int | np.integer) or not -logits.ndim <= axis < logits.ndim:
        raise ValueError(f"axis must be an int naming an axis of the logits (ndim {logits.ndim}), got {axis!r}")
    floating = jnp.issubdtype(labels.dtype, jnp.floating)
    if floating and labels.shape == logits.shape:
        labels = jnp.moveaxis(labels, axis, -1)
    logits = jnp.moveaxis(logits, axis, -1)
    keep = None if where is None else _class_mask(where, logits, axis)
    concrete_rows = None
    if keep is not None and not isinstance(where, Tracer):  # checked on the rows that count
        w = np.asarray(where)
        if w.ndim == logits.ndim - 1:
            concrete_rows = np.broadcast_to(w, logits.shape[:-1])
        else:
            concrete_rows = np.broadcast_to(np.moveaxis(w, axis, -1), logits.shape).any(-1)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if concrete_rows is None:
            _check_indices(labels, logits)
        else:
            _check_indices(jnp.where(concrete_rows, labels, 0), logits)
        if keep is None:
            return _cross_entropy_indices(logits, labels)
        return _masked_cross_entropy_indices(logits, labels, keep)
    if not floating:
        raise TypeError(f"labels must be integer class indices or float probabilities, got dtype {labels.dtype}")
    if labels.shape != logits.shape:
        raise ValueError(
            f"probability labels must have the shape of the logits {logits.shape}, got {labels.shape}. "
            "For class indices pass an integer array of shape logits.shape without axis."
        )
    if not isinstance(labels, Tracer):
        q = np.asarray(labels, np.float64)
        if concrete_rows is not None:
            q = q[concrete_rows]
        if (q < 0).any() or not np.allclose(q.sum(-1), 1.0, atol=1e-3):
            raise ValueError("probability labels must be >= 0 with each row summing to 1 (to 1e-3)")
    if keep is None:
        return _cross_entropy_probabilities(logits, labels)
    return _masked_cross_entropy_probabilities(logits, labels, keep)


def _class_mask(where: Any, logits: Array, axis: int) -> Array:
    """``where`` as a bool mask of the (class-last) logits' shape; a per-example mask covers its whole row."""
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"where must be a bool array, got dtype {where.dtype}")
    if where.ndim == logits.ndim - 1:
        where = where[..., None]
    elif where.ndim == logits.ndim:
        where = jnp.moveaxis(where, axis, -1)
    try:
        return jnp.broadcast_to(where, logits.shape)
    except ValueError:
        raise ValueError(
            f"where must have one entry per example (logits.shape without axis) or per logit ({logits.shape} "
            f"with the class axis last), got shape {where.shape}"
        ) from None


def _masked_scores(logits: Array, keep: Array) -> tuple[Array, Array]:
    """Logits with masked classes at -inf; a row with nothing kept becomes zeros (finite, so its gradient is 0)."""
    rows = jnp.any(keep, axis=-1)
    return jnp.where(keep, logits, jnp.where(rows[..., None], -jnp.inf, 0).astype(logits.dtype)), rows


@jax.jit
def _masked_cross_entropy_indices(logits: Array, labels: Array, keep: Array) -> Array:
    scores, rows = _masked_scores(logits, keep)
    # A masked row's label may be anything (padding): it is replaced before it can poison the gradient.
    return jnp.where(rows, _cross_entropy_indices(scores, jnp.where(rows, labels, 0)), 0)


@jax.jit
def _masked_cross_entropy_probabilities(logits: Array, q: Array, keep: Array) -> Array:
    scores, rows = _masked_scores(logits, keep)
    q = jnp.where(keep, q, 0)
    return jnp.where(rows, _cross_entropy_probabilities(scores, q), 0)


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
