"""The building blocks optimizers are chained from, each the formula it is named after.

``g`` is the incoming update (the gradient, for the first link of a chain), ``t`` the step number
counted from 1. Every hyperparameter may be a Python float or a JAX scalar (traced values are
accepted unchecked, so optimizers can be built inside ``jit`` and ``vmap``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradkit import _checks, _tree
from gradkit.core import EmptyState, GradientTransformation, Params, Stepped, Updates, chain, increment

Schedule = Callable[[jax.Array], jax.Array]
Scalar = Any  # a Python float or a JAX scalar


# -- shared moment helpers ------------------------------------------------------------------------


def update_moment(g: Updates, moment: Updates, decay: Scalar, order: int) -> Updates:
    """Exponential moving average of ``g**order``: ``m <- decay*m + (1-decay)*g^order``, in the moment's dtype.

    For ``order=2`` the power is ``|g|^2 = g*conj(g)``, so complex gradients give a real second moment.
    The sum is formed in float32 or wider and rounded to the moment's dtype once: a bfloat16 moment gets
    one rounding per step, not three (and XLA fuses the step into fewer loops).
    """
    _tree.check_same_structure(g, moment, "optimizer state")
    power = (lambda x: x) if order == 1 else _tree.abs_sq

    def ema(m: jax.Array, x: jax.Array) -> jax.Array:
        wide = jnp.promote_types(m.dtype, jnp.float32)  # low-precision moments are rounded once, at the end
        return decay * m.astype(wide) + (1 - decay) * power(x.astype(jnp.promote_types(x.dtype, wide)))

    return _tree.map_like(ema, moment, g)


def bias_correction(moment: Updates, decay: Scalar, t: jax.Array) -> Updates:
    """``m_hat = m / (1 - decay**t)``, the factor computed once, in float32 or wider (also for bfloat16/float16 moments)."""
    dtype = _tree.real_dtype(jnp.result_type(jnp.float32, *jax.tree.leaves(moment)))
    correction = 1 - jnp.asarray(decay, dtype) ** t.astype(dtype)
    return jax.tree.map(lambda m: m / correction, moment)


def _divide_by_root(g: jax.Array, h: jax.Array, eps: Scalar, eps_in_sqrt: bool) -> jax.Array:
    """``g / (sqrt(h) + eps)``, or ``g / sqrt(h + eps)``; 0 where ``h == 0`` (then ``g`` was 0 too)."""
    root = jnp.sqrt(h + eps) if eps_in_sqrt else jnp.sqrt(h) + eps
    return jnp.where(h > 0, g / jnp.where(h > 0, root, 1), 0)


# -- stateless ------------------------------------------------------------------------------------


def scale(factor: Scalar) -> GradientTransformation:
    """Multiply by a constant: ``u = factor * g``.

    >>> tx = gk.scale(-0.1)   # plain gradient descent with lr 0.1
    """
    _checks.number("factor", factor)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        return _tree.map_like(lambda g: factor * g, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


def scale_by_learning_rate(learning_rate: Scalar | Schedule) -> GradientTransformation:
    """Step downhill: ``u = -lr * g``, with ``lr`` a number or a schedule ``step -> lr`` (step counted from 0).

    >>> tx = gk.scale_by_learning_rate(gk.schedules.cosine_annealing(0.1, total_steps=1000))
    """
    _checks.learning_rate(learning_rate)
    if not callable(learning_rate):
        return scale(-learning_rate)

    def update(updates: Updates, state: EmptyState, params: Params = None, *, count: jax.Array, **extra: Any):
        lr = learning_rate(count)
        return _tree.map_like(lambda g: -lr * g, updates), state

    return chain(Stepped(lambda params: EmptyState(), update))


def clip_by_global_norm(max_norm: Scalar) -> GradientTransformation:
    """Rescale so the norm of all updates together is at most ``max_norm``: ``u = g * min(1, max_norm / ||g||)``.

    torch's ``clip_grad_norm_`` divides by ``||g|| + 1e-6``; this divides by ``||g||`` exactly, as optax does.

    >>> tx = gk.chain(gk.clip_by_global_norm(1.0), gk.sgd(0.1))
    """
    _checks.positive("max_norm", max_norm)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        norm = _tree.global_norm(updates)
        factor = jnp.where(norm > max_norm, max_norm / jnp.where(norm > 0, norm, 1), 1)
        return _tree.map_like(lambda g: g * factor, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


def add_decayed_weights(weight_decay: Scalar, mask: Any = None) -> GradientTransformation:
    """Add the weight-decay term: ``u = g + weight_decay * W`` (needs ``params``).

    ``mask`` selects the leaves that decay: a pytree of bools shaped like the params, or a function
    ``params -> tree of bools`` (e.g. to leave biases alone). Before the learning rate this is L2
    regularization in the gradient; after an adaptive scaling it is AdamW's decoupled decay.

    >>> tx = gk.add_decayed_weights(1e-4, mask=lambda p: {"w": True, "b": False})
    """
    _checks.non_negative("weight_decay", weight_decay)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        if params is None:
            raise ValueError("add_decayed_weights needs the params: call tx.update(grads, state, params)")
        _tree.check_same_structure(updates, params, "params")
        decays = _tree.resolve_mask(mask, params)
        return _tree.map_like(lambda g, w, d: _tree.where(d, g + weight_decay * w, g), updates, params, decays), state

    return GradientTransformation(lambda params: EmptyState(), update)


# -- with state -----------------------------------------------------------------------------------


class MomentumState(NamedTuple):
    velocity: Updates


def scale_by_momentum(decay: Scalar = 0.9, nesterov: bool = False) -> GradientTransformation:
    """Heavy-ball momentum: ``v <- decay*v + g``; the update is ``v``, or ``g + decay*v`` with Nesterov.

    This is torch's convention (``dampening=0``); the lecture's ``v <- rho*v - lr*g`` is the same
    trajectory once the learning rate is applied after it (for a constant learning rate).

    >>> tx = gk.chain(gk.scale_by_momentum(0.9, nesterov=True), gk.scale_by_learning_rate(0.1))
    """
    _checks.unit_interval("decay", decay)

    def init(params: Params) -> MomentumState:
        return MomentumState(_tree.zeros_like(params))

    def update(updates: Updates, state: MomentumState, params: Params = None, **extra: Any):
        _tree.check_same_structure(updates, state.velocity, "optimizer state")
        velocity = _tree.map_like(lambda v, g: decay * v + g, state.velocity, updates)
        if nesterov:
            updates = _tree.map_like(lambda g, v: g + decay * v, updates, velocity)
        else:
            updates = _tree.map_like(lambda g, v: v, updates, velocity)
        return updates, MomentumState(velocity)

    return GradientTransformation(init, update)


class RssState(NamedTuple):
    sum_of_squares: Updates


def scale_by_rss(initial_accumulator_value: Scalar = 0.0, eps: Scalar = 1e-7) -> GradientTransformation:
    """AdaGrad's scaling: ``h <- h + g^2``, ``u = g / (sqrt(h) + eps)``.

    ``h`` starts at ``initial_accumulator_value`` (torch's default 0; optax's ``scale_by_rss`` starts
    at 0.1). ``eps`` sits outside the root, as in torch; optax puts it inside (``rsqrt(h + eps)``).

    >>> tx = gk.chain(gk.scale_by_rss(), gk.scale_by_learning_rate(0.1))
    """
    _checks.non_negative("initial_accumulator_value", initial_accumulator_value)
    _checks.non_negative("eps", eps)

    def init(params: Params) -> RssState:
        return RssState(_tree.zeros_like(params, real=True, fill=initial_accumulator_value))

    def update(updates: Updates, state: RssState, params: Params = None, **extra: Any):
        _tree.check_same_structure(updates, state.sum_of_squares, "optimizer state")
        h = _tree.map_like(lambda h, g: h + _tree.abs_sq(g), state.sum_of_squares, updates)
        return _tree.map_like(lambda g, h: _divide_by_root(g, h, eps, False), updates, h), RssState(h)

    return GradientTransformation(init, update)


class RmsState(NamedTuple):
    mean_square: Updates


def scale_by_rms(
    decay: Scalar = 0.999, eps: Scalar = 1e-8, eps_in_sqrt: bool = False, initial_scale: Scalar = 0.0
) -> GradientTransformation:
    """RMSProp's scaling: ``h <- decay*h + (1-decay)*g^2``, ``u = g / (sqrt(h) + eps)``.

    ``eps_in_sqrt=True`` gives ``g / sqrt(h + eps)`` (optax's default); the default False is torch's
    ``RMSprop``. torch's ``alpha`` is ``decay``; its default is 0.99 where the lecture's is 0.999.

    >>> tx = gk.chain(gk.scale_by_rms(decay=0.99), gk.scale_by_learning_rate(1e-3))
    """
    _checks.unit_interval("decay", decay)
    _checks.non_negative("eps", eps)
    _checks.non_negative("initial_scale", initial_scale)

    def init(params: Params) -> RmsState:
        return RmsState(_tree.zeros_like(params, real=True, fill=initial_scale))

    def update(updates: Updates, state: RmsState, params: Params = None, **extra: Any):
        h = update_moment(updates, state.mean_square, decay, order=2)
        return _tree.map_like(lambda g, h: _divide_by_root(g, h, eps, eps_in_sqrt), updates, h), RmsState(h)

    return GradientTransformation(init, update)


class AdamState(NamedTuple):
    mu: Updates  # first moment: running mean of g
    nu: Updates  # second moment: running mean of |g|^2


def scale_by_adam(
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    eps_root: Scalar = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam's scaling (Kingma & Ba, 2015), without the learning rate::

        m <- b1*m + (1-b1)*g              first moment (momentum)
        v <- b2*v + (1-b2)*g^2            second moment (RMSProp)
        m_hat = m / (1 - b1^t)            bias correction
        v_hat = v / (1 - b2^t)
        u = m_hat / (sqrt(v_hat + eps_root) + eps)

    ``mu_dtype`` / ``nu_dtype`` store the moments in another dtype (e.g. bfloat16); the bias correction
    is computed in float32 or wider either way. Same as optax's ``scale_by_adam``; torch computes
    ``m/(1-b1^t) / (sqrt(v)/sqrt(1-b2^t) + eps)``, the same number up to rounding.

    >>> tx = gk.chain(gk.scale_by_adam(), gk.scale_by_learning_rate(1e-3))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)
    _checks.non_negative("eps", eps)
    _checks.non_negative("eps_root", eps_root)

    def init(params: Params) -> AdamState:
        return AdamState(_tree.zeros_like(params, mu_dtype), _tree.zeros_like(params, nu_dtype, real=True))

    def update(updates: Updates, state: AdamState, params: Params = None, *, count: jax.Array, **extra: Any):
        t = increment(count)
        mu = update_moment(updates, state.mu, b1, order=1)
        nu = update_moment(updates, state.nu, b2, order=2)
        mu_hat, nu_hat = bias_correction(mu, b1, t), bias_correction(nu, b2, t)
        updates = _tree.map_like(lambda g, m, v: m / (jnp.sqrt(v + eps_root) + eps), updates, mu_hat, nu_hat)
        return updates, AdamState(mu, nu)

    return chain(Stepped(init, update))


__all__ = [
    "AdamState",
    "MomentumState",
    "RmsState",
    "RssState",
    "add_decayed_weights",
    "bias_correction",
    "clip_by_global_norm",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_momentum",
    "scale_by_rms",
    "scale_by_rss",
    "update_moment",
]
