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
from jax.typing import ArrayLike

from gradkit import _checks, _precise, _tree
from gradkit.core import EmptyState, GradientTransformation, Params, Stepped, Updates, chain, described, increment

Schedule = Callable[[ArrayLike], jax.Array]  # step -> lr; the step may be an int, a float or an array
Scalar = Any  # a Python float or a JAX scalar


# -- shared moment helpers ------------------------------------------------------------------------


def update_moment(g: Updates, moment: Updates, decay: Scalar, order: int, wide: bool = False) -> Updates:
    """Exponential moving average of ``g**order``: ``m <- decay*m + (1-decay)*g^order``, in the moment's dtype.

    For ``order=2`` the power is ``|g|^2 = g*conj(g)``, so complex gradients give a real second moment.
    The sum is formed in float32 or wider and rounded to the moment's dtype once: a bfloat16 moment gets
    one rounding per step, not three (and XLA fuses the step into fewer loops). ``wide=True`` returns the
    unrounded sum (float32 or wider) so the caller can use it before storing it rounded, as optax does.
    """
    _tree.check_like(g, moment, "optimizer state", same_kind=order == 1)
    power = (lambda x: x) if order == 1 else _tree.abs_sq
    complement = _precise.one_minus(decay)  # 1 - decay without float32 cancellation for injected decays

    def ema(m: jax.Array, x: jax.Array) -> jax.Array:
        wide = jnp.promote_types(m.dtype, jnp.float32)  # low-precision moments are rounded once, at the end
        return decay * m.astype(wide) + complement * power(x.astype(jnp.promote_types(x.dtype, wide)))

    if wide:
        return jax.tree.map(ema, moment, g)
    return _tree.map_like(ema, moment, g)


def bias_correction(moment: Updates, decay: Scalar, t: jax.Array) -> Updates:
    """``m_hat = m / (1 - decay**t)``, the factor computed once, in float32 or wider (also for bfloat16/float16 moments)."""
    dtype = _tree.real_dtype(jnp.result_type(jnp.float32, *jax.tree.leaves(moment)))
    correction = 1 - jnp.asarray(decay, dtype) ** t.astype(dtype)
    return jax.tree.map(lambda m: m / correction, moment)


def _divide_by_root(g: jax.Array, h: jax.Array, eps: Scalar = 0.0, eps_root: Scalar = 0.0) -> jax.Array:
    """``g / (sqrt(h + eps_root) + eps)``, the shared denominator of AdaGrad, RMSProp and Adam.

    The numerical policy (docs/numerics.md): a denominator that is exactly 0 (``h = 0`` with no eps,
    so ``g`` was 0 too) gives a 0 update, not 0/0; an ``h`` that overflowed to inf (a gradient beyond
    ``sqrt(max float)``) gives NaN, not a silent 0 step; a NaN ``h`` or ``g`` gives NaN.
    """
    root = jnp.sqrt(h + eps_root) + eps
    quotient = g / jnp.where(root == 0, 1, root)
    return jnp.where(root == 0, 0, jnp.where(jnp.isposinf(h), jnp.nan, quotient))


def _sign(x: jax.Array) -> jax.Array:
    """``sign(x)``, except that a non-finite ``x`` stays itself: an inf gradient is not hidden as a unit step."""
    return jnp.where(jnp.isfinite(x), jnp.sign(x), x)


# -- stateless ------------------------------------------------------------------------------------


@described
def scale(factor: Scalar) -> GradientTransformation:
    """Multiply by a constant: ``u = factor * g``.

    >>> tx = gk.scale(-0.1)   # plain gradient descent with lr 0.1
    """
    _checks.number("factor", factor)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_state(state, EmptyState)
        return _tree.map_like(lambda g: factor * g, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


@described
def scale_by_learning_rate(learning_rate: Scalar | Schedule) -> GradientTransformation:
    """Step downhill: ``u = -lr * g``, with ``lr`` a number or a schedule ``step -> lr`` (step counted from 0).

    >>> tx = gk.scale_by_learning_rate(gk.schedules.cosine_annealing(0.1, total_steps=1000))
    """
    _checks.learning_rate(learning_rate)
    if not callable(learning_rate):
        return scale(-learning_rate)

    def update(updates: Updates, state: EmptyState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, EmptyState)
        lr: jax.Array = learning_rate(count)  # pyright: ignore[reportAssignmentType]  (pyright types callable(Any) as returning object)
        return _tree.map_like(lambda g: -lr * g, updates), state

    return chain(Stepped(lambda params: EmptyState(), update))


@described
def clip_by_global_norm(max_norm: Scalar) -> GradientTransformation:
    """Rescale so the norm of all updates together is at most ``max_norm``: ``u = g * min(1, max_norm / ||g||)``.

    torch's ``clip_grad_norm_`` divides by ``||g|| + 1e-6``; this divides by ``||g||`` exactly, as optax does.

    >>> tx = gk.chain(gk.clip_by_global_norm(1.0), gk.sgd(0.1))
    """
    _checks.positive("max_norm", max_norm)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_state(state, EmptyState)
        norm = _tree.global_norm(updates)
        factor = jnp.where(norm > max_norm, max_norm / jnp.where(norm > 0, norm, 1), 1)
        return _tree.map_like(lambda g: g * factor, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


@described
def scale_by_schedule(schedule: Schedule) -> GradientTransformation:
    """Multiply by a schedule of the step: ``u = schedule(t - 1) * g`` (the first update uses ``schedule(0)``).

    No sign flip: this is optax's ``scale_by_schedule(step_size_fn)``, same count. For a learning rate
    (``u = -lr(t) * g``) use ``gk.scale_by_learning_rate(schedule)``.

    >>> tx = gk.chain(gk.scale_by_adam(), gk.scale_by_schedule(lambda t: -1e-3 * 0.99**t))
    """
    if not callable(schedule):
        raise TypeError(f"schedule must be a function step -> factor, got {schedule!r}; for a constant use gk.scale")

    def update(updates: Updates, state: EmptyState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, EmptyState)
        factor = schedule(count)
        return _tree.map_like(lambda g: factor * g, updates), state

    return chain(Stepped(lambda params: EmptyState(), update))


@described
def clip(max_delta: Scalar) -> GradientTransformation:
    """Clip each entry to ``[-max_delta, max_delta]``: ``u = min(max(g, -max_delta), max_delta)``.

    optax ``clip(max_delta)``; torch ``nn.utils.clip_grad_value_(params, clip_value=max_delta)``.

    >>> tx = gk.chain(gk.clip(1.0), gk.sgd(0.1))
    """
    _checks.non_negative("max_delta", max_delta)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_state(state, EmptyState)
        return _tree.map_like(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


@described
def clip_by_block_rms(threshold: Scalar) -> GradientTransformation:
    """Rescale each leaf (block) so its root mean square is at most ``threshold``:
    ``u = g / max(1, rms(g) / threshold)``, ``rms(g) = sqrt(mean |g|^2)`` over the leaf.

    optax ``clip_by_block_rms(threshold)`` (the same formula, per leaf).

    >>> tx = gk.chain(gk.clip_by_block_rms(1.0), gk.adam(1e-3))
    """
    _checks.positive("threshold", threshold)

    def block(g: jax.Array) -> jax.Array:
        rms = jnp.sqrt(jnp.mean(_tree.abs_sq(g)))
        return g / jnp.maximum(1.0, rms / threshold)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_per_leaf(updates, "clip_by_block_rms")
        _tree.check_state(state, EmptyState)
        return _tree.map_like(block, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


@described
def add_decayed_weights(weight_decay: Scalar | Schedule, mask: Any = None) -> GradientTransformation:
    """Add the weight-decay term: ``u = g + weight_decay * W`` (needs ``params``).

    ``weight_decay`` is a number or a schedule ``step -> weight_decay`` (evaluated at the number of
    completed updates, like a learning-rate schedule). ``mask`` selects the leaves that decay: a pytree
    of bools shaped like the params, or a function ``params -> tree of bools`` (e.g. to leave biases
    alone). Before the learning rate this is L2 regularization in the gradient; after an adaptive
    scaling it is AdamW's decoupled decay. optax ``add_decayed_weights(weight_decay, mask)``.

    >>> tx = gk.add_decayed_weights(1e-4, mask=lambda p: {"w": True, "b": False})
    """
    _checks.non_negative("weight_decay", weight_decay)

    def decay(updates: Updates, params: Params, rate: Scalar) -> Updates:
        if params is None:
            raise ValueError("add_decayed_weights needs the params: call tx.update(grads, state, params)")
        _tree.check_same_structure(updates, params, "params")
        decays = _tree.resolve_mask(mask, params)
        return _tree.map_like(lambda g, w, d: _tree.where(d, g + rate * w, g), updates, params, decays)

    if callable(weight_decay):

        def update_scheduled(
            updates: Updates, state: EmptyState, params: Params = None, *, count: jax.Array, **extra: Any
        ):
            return decay(updates, params, weight_decay(count)), state

        return chain(Stepped(lambda params: EmptyState(), update_scheduled))

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_state(state, EmptyState)
        return decay(updates, params, weight_decay), state

    return GradientTransformation(lambda params: EmptyState(), update)


# -- with state -----------------------------------------------------------------------------------


class MomentumState(NamedTuple):
    """State of ``scale_by_momentum``.

    ``velocity``: the running sum ``v <- decay*v + g``, one per param (optax's ``TraceState.trace``,
    torch's ``state["momentum_buffer"]``).
    """

    velocity: Updates


@described
def scale_by_momentum(
    decay: Scalar = 0.9, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Heavy-ball momentum: ``v <- decay*v + g``; the update is ``v``, or ``g + decay*v`` with Nesterov.

    This is torch's convention (``dampening=0``); the lecture's ``v <- rho*v - lr*g`` is the same
    trajectory once the learning rate is applied after it (for a constant learning rate).
    ``accumulator_dtype`` stores ``v`` in another dtype (e.g. bfloat16): ``decay*v`` is formed in that
    dtype, ``+ g`` in the wider of it and the gradient's; the update uses that sum and only the stored
    copy is rounded (optax does exactly this). optax ``trace(decay, nesterov, accumulator_dtype)``, whose
    state field is called ``trace``.

    >>> tx = gk.chain(gk.scale_by_momentum(0.9, nesterov=True), gk.scale_by_learning_rate(0.1))
    """
    _checks.unit_interval("decay", decay)
    _checks.flag("nesterov", nesterov)
    _checks.dtype("accumulator_dtype", accumulator_dtype)

    def init(params: Params) -> MomentumState:
        return MomentumState(_tree.zeros_like(params, accumulator_dtype))

    def update(updates: Updates, state: MomentumState, params: Params = None, **extra: Any):
        _tree.check_state(state, MomentumState)
        _tree.check_like(updates, state.velocity, "optimizer state")
        velocity = jax.tree.map(lambda v, g: decay * v + g, state.velocity, updates)
        if nesterov:
            updates = _tree.map_like(lambda g, v: g + decay * v, updates, velocity)
        else:
            updates = _tree.map_like(lambda g, v: v, updates, velocity)
        return updates, MomentumState(_tree.cast_like(velocity, state.velocity))

    return GradientTransformation(init, update)


class RssState(NamedTuple):
    """State of ``scale_by_rss``.

    ``sum_of_squares``: ``h``, the sum of ``|g|^2`` so far, real dtype (optax's ``ScaleByRssState.sum_of_squares``,
    torch Adagrad's ``state["sum"]``).
    """

    sum_of_squares: Updates


@described
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
        _tree.check_state(state, RssState)
        _tree.check_like(updates, state.sum_of_squares, "optimizer state", same_kind=False)
        h = _tree.map_like(lambda h, g: h + _tree.abs_sq(g), state.sum_of_squares, updates)
        return _tree.map_like(lambda g, h: _divide_by_root(g, h, eps), updates, h), RssState(h)

    return GradientTransformation(init, update)


class RmsState(NamedTuple):
    """State of ``scale_by_rms``.

    ``mean_square``: ``h``, the moving average of ``|g|^2``, real dtype (optax's ``ScaleByRmsState.nu``,
    torch RMSprop's ``state["square_avg"]``).
    """

    mean_square: Updates


@described
def scale_by_rms(
    decay: Scalar = 0.999,
    eps: Scalar = 1e-8,
    eps_in_sqrt: bool = False,
    initial_scale: Scalar = 0.0,
    debias: bool = False,
) -> GradientTransformation:
    """RMSProp's scaling: ``h <- decay*h + (1-decay)*g^2``, ``u = g / (sqrt(h) + eps)``.

    ``eps_in_sqrt=True`` gives ``g / sqrt(h + eps)`` (optax's default); the default False is torch's
    ``RMSprop``. torch's ``alpha`` is ``decay``; its default is 0.99 where the lecture's is 0.999.
    ``debias=True`` divides by ``sqrt(h / (1 - decay^t))`` instead, Adam's bias correction without its first
    moment (optax's ``bias_correction=True``; schedule-free AdamW's base step).

    >>> tx = gk.chain(gk.scale_by_rms(decay=0.99), gk.scale_by_learning_rate(1e-3))
    """
    _checks.unit_interval("decay", decay)
    _checks.non_negative("eps", eps)
    _checks.non_negative("initial_scale", initial_scale)
    _checks.flag("eps_in_sqrt", eps_in_sqrt)
    _checks.flag("debias", debias)
    eps, eps_root = (0.0, eps) if eps_in_sqrt else (eps, 0.0)

    def init(params: Params) -> RmsState:
        return RmsState(_tree.zeros_like(params, real=True, fill=initial_scale))

    def update(updates: Updates, state: RmsState, params: Params = None, *, count: Any = None, **extra: Any):
        _tree.check_state(state, RmsState)
        h = update_moment(updates, state.mean_square, decay, order=2)
        h_hat = bias_correction(h, decay, increment(count)) if debias else h
        return _tree.map_like(lambda g, h: _divide_by_root(g, h, eps, eps_root), updates, h_hat), RmsState(h)

    return chain(Stepped(init, update)) if debias else GradientTransformation(init, update)


class AdamState(NamedTuple):
    """State of ``scale_by_adam`` (the step count lives in the enclosing ``ChainState.count``).

    ``mu``: first moment, the running mean of ``g`` (optax ``ScaleByAdamState.mu``, torch ``exp_avg``).
    ``nu``: second moment, the running mean of ``|g|^2``, real dtype (optax ``nu``, torch ``exp_avg_sq``).
    """

    mu: Updates
    nu: Updates


@described
def scale_by_adam(
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    eps_root: Scalar = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam's scaling (Kingma & Ba, 2015), without the learning rate::

        m <- b1*m + (1-b1)*g              first moment (momentum)
        v <- b2*v + (1-b2)*g^2            second moment (RMSProp)
        m_hat = m / (1 - b1^t)            bias correction
        v_hat = v / (1 - b2^t)
        u = m_hat / (sqrt(v_hat + eps_root) + eps)

    ``nesterov=True`` looks the first moment one step ahead (NAdam, Dozat 2016, as optax's
    ``nesterov=True``): ``m_hat = b1 * m / (1 - b1^(t+1)) + (1-b1) * g / (1 - b1^t)``.
    ``mu_dtype`` / ``nu_dtype`` store the moments in another dtype (e.g. bfloat16): the moments are
    formed in float32 or wider, the update uses them unrounded and only the stored copies are rounded
    (optax does the same for ``mu_dtype``); the bias correction is computed in float32 or wider either
    way. Same as optax's ``scale_by_adam``; torch computes ``m/(1-b1^t) / (sqrt(v)/sqrt(1-b2^t) + eps)``,
    the same number up to rounding.

    >>> tx = gk.chain(gk.scale_by_adam(), gk.scale_by_learning_rate(1e-3))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)
    _checks.non_negative("eps", eps)
    _checks.non_negative("eps_root", eps_root)
    _checks.dtype("mu_dtype", mu_dtype)
    _checks.dtype("nu_dtype", nu_dtype)
    _checks.flag("nesterov", nesterov)

    def init(params: Params) -> AdamState:
        return AdamState(_tree.zeros_like(params, mu_dtype), _tree.zeros_like(params, nu_dtype, real=True))

    def update(updates: Updates, state: AdamState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, AdamState)
        t = increment(count)
        mu = update_moment(updates, state.mu, b1, order=1, wide=True)
        nu = update_moment(updates, state.nu, b2, order=2, wide=True)
        if nesterov:
            ahead, now = bias_correction(mu, b1, increment(t)), bias_correction(updates, b1, t)
            mu_hat = jax.tree.map(lambda m, g: b1 * m + _precise.one_minus(b1) * g, ahead, now)
        else:
            mu_hat = bias_correction(mu, b1, t)
        nu_hat = bias_correction(nu, b2, t)
        updates = _tree.map_like(lambda g, m, v: _divide_by_root(m, v, eps, eps_root), updates, mu_hat, nu_hat)
        return updates, AdamState(_tree.cast_like(mu, state.mu), _tree.cast_like(nu, state.nu))

    return chain(Stepped(init, update))


__all__ = [
    "AdamState",
    "MomentumState",
    "RmsState",
    "RssState",
    "add_decayed_weights",
    "bias_correction",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_momentum",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "update_moment",
]


# -- beyond the lecture: adaptive variants, large batch, Adafactor, Muon, schedule-free --------------
# (issue 17; each is a paper's update written on arrays, with the torch/optax conventions it follows)


def _scalar_dtype(tree: Any) -> Any:
    """The dtype of per-tree scalars (step-size products, weights): float32 or wider, real."""
    return _tree.real_dtype(jnp.result_type(jnp.float32, *jax.tree.leaves(tree)))


def _leaf_norm(x: jax.Array) -> jax.Array:
    """``||x||`` over all entries, accumulated in float32 or wider."""
    return _tree.global_norm(x)


def _rms(x: jax.Array) -> jax.Array:
    """``||x|| / sqrt(size)``, the root mean square of the entries (0 for an empty leaf)."""
    return _leaf_norm(x) / jnp.sqrt(max(jnp.size(x), 1))


class NadamState(NamedTuple):
    """State of ``scale_by_nadam`` (the step count lives in the enclosing ``ChainState.count``).

    ``mu``: first moment, the running mean of ``g`` (torch ``exp_avg``).
    ``nu``: second moment, the running mean of ``|g|^2``, real dtype (torch ``exp_avg_sq``).
    ``mu_product``: ``prod_{i<=t} mu_i``, the running product of the momentum schedule, a scalar (torch
    ``mu_product``; optax's ``nadam`` has no momentum schedule and keeps no such product).
    """

    mu: Updates
    nu: Updates
    mu_product: jax.Array


@described
def scale_by_nadam(
    b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8, momentum_decay: Scalar = 4e-3
) -> GradientTransformation:
    """NAdam's scaling (Dozat, 2016): Adam with Nesterov momentum and Dozat's momentum schedule::

        mu_t = b1 * (1 - 0.5 * 0.96^(t * momentum_decay))      momentum schedule
        m <- b1*m + (1-b1)*g,   v <- b2*v + (1-b2)*g^2
        v_hat = v / (1 - b2^t)
        u = ((1-mu_t) / (1 - prod_{i<=t} mu_i) * g + mu_{t+1} / (1 - prod_{i<=t+1} mu_i) * m) / (sqrt(v_hat) + eps)

    torch ``NAdam(betas=(b1, b2), eps, momentum_decay)`` exactly. optax's ``nadam`` drops the schedule
    (``mu_t = b1``, so ``u = (b1*m/(1-b1^(t+1)) + (1-b1)*g/(1-b1^t)) / (sqrt(v_hat) + eps)``): 6% apart after
    50 steps at the defaults; ``momentum_decay`` has no optax counterpart.

    >>> tx = gk.chain(gk.scale_by_nadam(), gk.scale_by_learning_rate(2e-3))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)
    _checks.non_negative("eps", eps)
    _checks.non_negative("momentum_decay", momentum_decay)

    def init(params: Params) -> NadamState:
        one = _tree.scalar_like(params, 1.0, _scalar_dtype(params))
        return NadamState(_tree.zeros_like(params), _tree.zeros_like(params, real=True), one)

    def update(updates: Updates, state: NadamState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, NadamState)
        t = increment(count)
        step = t.astype(state.mu_product.dtype)
        mu_t = b1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        product = (state.mu_product * mu_t).astype(state.mu_product.dtype)
        product_next = product * mu_next
        mu = update_moment(updates, state.mu, b1, order=1)
        nu = update_moment(updates, state.nu, b2, order=2)
        nu_hat = bias_correction(nu, b2, t)

        def nesterov(g: jax.Array, m: jax.Array, v: jax.Array) -> jax.Array:
            look_ahead = (1 - mu_t) / (1 - product) * g + mu_next / (1 - product_next) * m
            return _divide_by_root(look_ahead, v, eps)

        return _tree.map_like(nesterov, updates, mu, nu_hat), NadamState(mu, nu, product)

    return chain(Stepped(init, update))


@described
def scale_by_radam(
    b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8, threshold: Scalar = 5.0
) -> GradientTransformation:
    """RAdam's scaling (Liu et al., 2020): Adam whose adaptive step is switched on as its variance becomes tractable::

        m, v, m_hat, v_hat as Adam's
        rho_inf = 2/(1-b2) - 1,   rho_t = rho_inf - 2 t b2^t / (1 - b2^t)      length of the SMA
        r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))  variance rectification
        u = r_t * m_hat / (sqrt(v_hat) + eps)   if rho_t > threshold,   else m_hat

    optax ``scale_by_radam(b1, b2, eps, threshold=threshold)`` (optax switches at ``rho_t >= threshold``).
    torch ``RAdam`` adds ``eps`` to ``sqrt(v)`` before the bias correction, i.e. divides by
    ``sqrt(v_hat) + eps / sqrt(1 - b2^t)``: the same at ``eps=0``, 1.6e-7 apart at the default.

    >>> tx = gk.chain(gk.scale_by_radam(), gk.scale_by_learning_rate(1e-3))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)
    _checks.non_negative("eps", eps)
    _checks.number("threshold", threshold)

    def init(params: Params) -> AdamState:
        return AdamState(_tree.zeros_like(params), _tree.zeros_like(params, real=True))

    def update(updates: Updates, state: AdamState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, AdamState)
        t = increment(count)
        step = t.astype(_scalar_dtype(updates))
        mu = update_moment(updates, state.mu, b1, order=1)
        nu = update_moment(updates, state.nu, b2, order=2)
        mu_hat, nu_hat = bias_correction(mu, b1, t), bias_correction(nu, b2, t)
        b2_t = jnp.asarray(b2, step.dtype) ** step
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * b2_t / (1 - b2_t)
        r_t = jnp.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        tractable = rho_t > threshold
        updates = _tree.map_like(
            lambda g, m, v: jnp.where(tractable, r_t * m / (jnp.sqrt(v) + eps), m), updates, mu_hat, nu_hat
        )
        return updates, AdamState(mu, nu)

    return chain(Stepped(init, update))


class AmsgradState(NamedTuple):
    """State of ``scale_by_amsgrad`` (the step count lives in the enclosing ``ChainState.count``).

    ``mu``: first moment, the running mean of ``g`` (optax ``ScaleByAmsgradState.mu``, torch ``exp_avg``).
    ``nu``: second moment, the running mean of ``|g|^2``, real dtype (optax ``nu``, torch ``exp_avg_sq``).
    ``nu_max``: the largest ``nu`` seen so far, before bias correction (torch ``max_exp_avg_sq``; optax's
    ``nu_max`` is the largest bias-corrected one).
    """

    mu: Updates
    nu: Updates
    nu_max: Updates


@described
def scale_by_amsgrad(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8) -> GradientTransformation:
    """AMSGrad's scaling (Reddi et al., 2018): Adam dividing by the largest second moment seen so far::

        m, v as Adam's
        v_max <- max(v_max, v)
        u = (m / (1-b1^t)) / (sqrt(v_max / (1-b2^t)) + eps)

    torch ``Adam(amsgrad=True)`` exactly: the maximum is taken of the raw moments and then bias
    corrected. optax's ``scale_by_amsgrad`` takes the maximum of the bias-corrected ``v_hat`` (whose
    early values are larger), 16% apart after 50 default steps.

    >>> tx = gk.chain(gk.scale_by_amsgrad(), gk.scale_by_learning_rate(1e-3))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)
    _checks.non_negative("eps", eps)

    def init(params: Params) -> AmsgradState:
        nu = _tree.zeros_like(params, real=True)
        return AmsgradState(_tree.zeros_like(params), nu, nu)

    def update(updates: Updates, state: AmsgradState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, AmsgradState)
        t = increment(count)
        mu = update_moment(updates, state.mu, b1, order=1)
        nu = update_moment(updates, state.nu, b2, order=2)
        nu_max = _tree.map_like(jnp.maximum, state.nu_max, nu)
        mu_hat, nu_max_hat = bias_correction(mu, b1, t), bias_correction(nu_max, b2, t)
        updates = _tree.map_like(lambda g, m, v: _divide_by_root(m, v, eps), updates, mu_hat, nu_max_hat)
        return updates, AmsgradState(mu, nu, nu_max)

    return chain(Stepped(init, update))


@described
def scale_by_adamax(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8) -> GradientTransformation:
    """Adamax's scaling (Kingma & Ba, 2015, sec. 7.1): Adam with the infinity norm in place of the second moment::

        m <- b1*m + (1-b1)*g
        u_inf <- max(b2 * u_inf, |g| + eps)
        u = (m / (1-b1^t)) / u_inf

    torch ``Adamax(betas=(b1, b2), eps)`` and optax ``scale_by_adamax(b1, b2, eps)`` alike. ``u_inf``
    is real for complex ``g``; with ``eps=0`` an entry whose gradients were all zero gets a zero update.

    >>> tx = gk.chain(gk.scale_by_adamax(), gk.scale_by_learning_rate(2e-3))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)
    _checks.non_negative("eps", eps)

    def init(params: Params) -> AdamState:
        return AdamState(_tree.zeros_like(params), _tree.zeros_like(params, real=True))

    def update(updates: Updates, state: AdamState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, AdamState)
        mu = update_moment(updates, state.mu, b1, order=1)
        nu = _tree.map_like(lambda u, g: jnp.maximum(b2 * u, jnp.abs(g) + eps), state.nu, updates)
        mu_hat = bias_correction(mu, b1, increment(count))
        updates = _tree.map_like(lambda g, m, u: jnp.where(u == 0, 0, m / jnp.where(u == 0, 1, u)), updates, mu_hat, nu)
        return updates, AdamState(mu, nu)

    return chain(Stepped(init, update))


class AdadeltaState(NamedTuple):
    """State of ``scale_by_adadelta``.

    ``mean_square``: ``h``, the running mean of ``g^2``, real dtype (optax ``ScaleByAdaDeltaState.e_g``,
    torch ``square_avg``).
    ``mean_square_delta``: ``s``, the running mean of the squared steps ``delta^2`` (optax ``e_x``, torch
    ``acc_delta``).
    """

    mean_square: Updates
    mean_square_delta: Updates


@described
def scale_by_adadelta(rho: Scalar = 0.9, eps: Scalar = 1e-6) -> GradientTransformation:
    """Adadelta's scaling (Zeiler, 2012): the step is the ratio of the RMS of past steps to the RMS of gradients::

        h <- rho*h + (1-rho)*g^2
        delta = sqrt(s + eps) / sqrt(h + eps) * g
        s <- rho*s + (1-rho)*delta^2
        u = delta

    torch ``Adadelta(rho, eps)`` (with ``lr=1``) and optax ``scale_by_adadelta(rho, eps)`` alike.

    >>> tx = gk.chain(gk.scale_by_adadelta(), gk.scale_by_learning_rate(1.0))
    """
    _checks.unit_interval("rho", rho)
    _checks.non_negative("eps", eps)

    def init(params: Params) -> AdadeltaState:
        zeros = _tree.zeros_like(params, real=True)
        return AdadeltaState(zeros, zeros)

    def update(updates: Updates, state: AdadeltaState, params: Params = None, **extra: Any):
        _tree.check_state(state, AdadeltaState)
        h = update_moment(updates, state.mean_square, rho, order=2)
        # An h that overflowed (a huge g) gives NaN rather than a silent 0 step; h = 0 with eps = 0 gives 0.
        delta = _tree.map_like(
            lambda g, h, s: _divide_by_root(jnp.sqrt(s + eps), h, eps_root=eps) * g, updates, h, state.mean_square_delta
        )
        s = update_moment(delta, state.mean_square_delta, rho, order=2)
        return delta, AdadeltaState(h, s)

    return GradientTransformation(init, update)


@described
def scale_by_belief(
    b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-16, eps_root: Scalar = 1e-16
) -> GradientTransformation:
    """AdaBelief's scaling (Zhuang et al., 2020): Adam dividing by the spread of ``g`` around its mean::

        m <- b1*m + (1-b1)*g
        s <- b2*s + (1-b2)*(g - m)^2 + eps_root       the "belief": how far g is from the prediction m
        u = (m / (1-b1^t)) / (sqrt(s / (1-b2^t)) + eps)

    optax ``scale_by_belief(b1, b2, eps, eps_root)`` exactly (``eps_root`` is added to the stored ``s``,
    as in the paper's Algorithm 2). torch has no AdaBelief.

    >>> tx = gk.chain(gk.scale_by_belief(), gk.scale_by_learning_rate(1e-3))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)
    _checks.non_negative("eps", eps)
    _checks.non_negative("eps_root", eps_root)

    def init(params: Params) -> AdamState:
        return AdamState(_tree.zeros_like(params), _tree.zeros_like(params, real=True))

    def update(updates: Updates, state: AdamState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, AdamState)
        t = increment(count)
        mu = update_moment(updates, state.mu, b1, order=1)
        surprise = _tree.map_like(lambda g, m: g - m, updates, mu)
        nu = _tree.map_like(lambda s: s + eps_root, update_moment(surprise, state.nu, b2, order=2))
        mu_hat, nu_hat = bias_correction(mu, b1, t), bias_correction(nu, b2, t)
        updates = _tree.map_like(lambda g, m, s: _divide_by_root(m, s, eps), updates, mu_hat, nu_hat)
        return updates, AdamState(mu, nu)

    return chain(Stepped(init, update))


class LionState(NamedTuple):
    """State of ``scale_by_lion``.

    ``mu``: the momentum ``m <- b2*m + (1-b2)*g``, one per param (optax ``ScaleByLionState.mu``).
    """

    mu: Updates


@described
def scale_by_lion(b1: Scalar = 0.9, b2: Scalar = 0.99) -> GradientTransformation:
    """Lion's scaling (Chen et al., 2023): the sign of an interpolated momentum::

        u = sign(b1*m + (1-b1)*g)       every entry of the step is +-1 (or 0; a NaN/inf entry stays itself)
        m <- b2*m + (1-b2)*g

    optax ``scale_by_lion(b1, b2)`` exactly. torch has no Lion. For complex ``g``, ``sign`` is ``z/|z|``.

    >>> tx = gk.chain(gk.scale_by_lion(), gk.scale_by_learning_rate(1e-4))
    """
    _checks.unit_interval("b1", b1)
    _checks.unit_interval("b2", b2)

    def init(params: Params) -> LionState:
        return LionState(_tree.zeros_like(params))

    def update(updates: Updates, state: LionState, params: Params = None, **extra: Any):
        _tree.check_state(state, LionState)
        _tree.check_same_structure(updates, state.mu, "optimizer state")
        signs = _tree.map_like(lambda g, m: _sign(b1 * m + (1 - b1) * g), updates, state.mu)
        return signs, LionState(update_moment(updates, state.mu, b2, order=1))

    return GradientTransformation(init, update)


@described
def scale_by_trust_ratio(
    trust_coefficient: Scalar = 1.0, eps: Scalar = 0.0, mask: Any = None
) -> GradientTransformation:
    """The layer-wise trust ratio of LARS and LAMB (You et al., 2017 and 2020), leaf by leaf (needs ``params``)::

        u = g * trust_coefficient * ||W|| / (||g|| + eps)       (u = g where ||W|| or ||g|| is 0)

    optax ``scale_by_trust_ratio(trust_coefficient=..., eps=...)`` (``min_norm=0``). ``mask`` selects the
    leaves that are rescaled (as ``gk.add_decayed_weights``; optax wraps the transform in ``masked``).

    >>> tx = gk.chain(gk.add_decayed_weights(1e-4), gk.scale_by_trust_ratio(1e-3), gk.sgd(0.1, momentum=0.9))
    """
    _checks.non_negative("trust_coefficient", trust_coefficient)
    _checks.non_negative("eps", eps)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_per_leaf(updates, "scale_by_trust_ratio")
        _tree.check_state(state, EmptyState)
        if params is None:
            raise ValueError("scale_by_trust_ratio needs the params: call tx.update(grads, state, params)")
        _tree.check_same_structure(updates, params, "params")
        selected = _tree.resolve_mask(mask, params)

        def rescale(g: jax.Array, w: jax.Array, on: bool) -> jax.Array:
            w_norm, g_norm = _leaf_norm(w), _leaf_norm(g)
            either_zero = (w_norm == 0) | (g_norm == 0)
            ratio = trust_coefficient * w_norm / jnp.where(either_zero, 1, g_norm + eps)
            return g * jnp.where(either_zero, 1, ratio) if on else g

        return _tree.map_like(rescale, updates, params, selected), state

    return GradientTransformation(lambda params: EmptyState(), update)


class FactoredRmsState(NamedTuple):
    """State of ``scale_by_factored_rms`` (the step count lives in the enclosing ``ChainState.count``).

    ``row``: for a matrix ``(..., R, C)``, the running mean over each row of ``g^2``, shape ``(..., R)``; a
    ``(0,)`` placeholder for vectors and scalars (optax ``FactoredState.v_row``, torch ``row_var``).
    ``col``: for a matrix, the running mean over each column of ``g^2``, shape ``(..., C)``; else a ``(0,)``
    placeholder (optax ``v_col``, torch ``col_var``).
    ``full``: for vectors and scalars, the running mean of ``g^2``, the leaf's shape; a ``(0,)`` placeholder
    for matrices (optax ``v``, torch ``variance``).
    """

    row: Updates
    col: Updates
    full: Updates


@described
def scale_by_factored_rms(decay_exponent: Scalar = 0.8, eps: Scalar | None = None) -> GradientTransformation:
    """Adafactor's scaling (Shazeer & Stern, 2018): RMS scaling with a rank-1 (row x column) second moment::

        b2_t = 1 - t^(-decay_exponent)                         increasing decay, 0 at the first step
        leaves with >= 2 dims, factored over the last two (R rows, C columns):
            r <- b2_t*r + (1-b2_t)*mean_cols(g^2)               (..., R)
            c <- b2_t*c + (1-b2_t)*mean_rows(g^2)               (..., C)
            V = r c^T / max(mean(r), eps)
        vectors and scalars:  V <- b2_t*V + (1-b2_t)*g^2
        u = g / sqrt(max(V, eps^2))

    ``eps`` defaults to the machine epsilon of each leaf's dtype. State is ``R + C`` numbers per matrix
    instead of ``R * C``. torch ``Adafactor(beta2_decay=-decay_exponent, eps=(eps, ...))`` exactly. optax's
    ``scale_by_factored_rms(decay_rate=decay_exponent)`` factors only the two *largest* dims, only when both
    are >= ``min_dim_size_to_factor`` (128), and adds its ``epsilon`` (1e-30) to ``g^2`` instead of clamping.

    >>> tx = gk.chain(gk.scale_by_factored_rms(), gk.clip_by_block_rms(1.0), gk.scale_by_learning_rate(1e-2))
    """
    _checks.non_negative("decay_exponent", decay_exponent)
    if eps is not None:
        _checks.non_negative("eps", eps)

    def floor(x: jax.Array) -> Any:
        return jnp.finfo(x.dtype).eps if eps is None else eps

    def init(params: Params) -> FactoredRmsState:
        def zeros(p: jax.Array, shape: tuple) -> jax.Array:
            return _tree.replicated_zeros(p, shape, _tree.real_dtype(jnp.result_type(p)))

        matrix = lambda p: jnp.ndim(p) >= 2
        row = jax.tree.map(lambda p: zeros(p, p.shape[:-1] if matrix(p) else (0,)), params)
        col = jax.tree.map(lambda p: zeros(p, p.shape[:-2] + p.shape[-1:] if matrix(p) else (0,)), params)
        # The unfactored second moment of a vector mirrors its param (and its sharding).
        full = jax.tree.map(lambda p: zeros(p, (0,)) if matrix(p) else _tree.zeros_like(p, real=True), params)
        return FactoredRmsState(row, col, full)

    def update(updates: Updates, state: FactoredRmsState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_per_leaf(updates, "scale_by_factored_rms")
        _tree.check_state(state, FactoredRmsState)
        _tree.check_same_structure(updates, state.full, "optimizer state")
        step = increment(count).astype(_scalar_dtype(updates))
        b2_t = 1 - step ** (-decay_exponent)
        ema = lambda old, new: b2_t * old + (1 - b2_t) * new
        square = lambda g: _tree.abs_sq(g.astype(jnp.promote_types(g.dtype, jnp.float32)))
        mean = lambda x, axis: jnp.sum(x, axis) / max(x.shape[axis], 1)  # an empty axis gives 0, not NaN
        row = _tree.map_like(lambda r, g: ema(r, mean(square(g), -1)) if g.ndim >= 2 else r, state.row, updates)
        col = _tree.map_like(lambda c, g: ema(c, mean(square(g), -2)) if g.ndim >= 2 else c, state.col, updates)
        full = _tree.map_like(lambda v, g: v if g.ndim >= 2 else ema(v, square(g)), state.full, updates)

        def scaled(g: jax.Array, r: jax.Array, c: jax.Array, v: jax.Array) -> jax.Array:
            if g.ndim >= 2:
                mean_r = jnp.maximum(jnp.sum(r, -1, keepdims=True) / max(r.shape[-1], 1), floor(g))
                # mean_r = 0 (eps = 0, all rows 0) means r = 0: V = 0, not 0/0.
                v = r[..., :, None] * c[..., None, :] / jnp.where(mean_r == 0, 1, mean_r)[..., None]
            # A V that overflowed (a huge g) gives NaN rather than a silent 0 step; V = 0 with eps = 0 gives 0.
            return _divide_by_root(g, jnp.maximum(v, floor(g) ** 2))

        return _tree.map_like(scaled, updates, row, col, full), FactoredRmsState(row, col, full)

    return chain(Stepped(init, update))


@described
def scale_by_relative_step(learning_rate: Scalar | Schedule, eps2: Scalar = 1e-3) -> GradientTransformation:
    """Adafactor's relative step size, divided by the learning rate that follows it (needs ``params``)::

        u = min(1, 1 / (lr_t * sqrt(t))) * max(eps2, RMS(W)) * g

    so that after ``scale_by_learning_rate(lr)`` the step is ``min(lr_t, 1/sqrt(t)) * max(eps2, RMS(W)) * g``:
    steps are relative to the size of the weights, and the learning rate is capped by ``1/sqrt(t)``. torch
    ``Adafactor(lr, eps=(..., eps2))``; optax's ``adafactor`` has no ``1/sqrt(t)`` cap (its
    ``multiply_by_parameter_scale`` is the ``max(1e-3, RMS(W))`` factor alone).

    >>> tx = gk.chain(gk.scale_by_relative_step(1e-2), gk.scale_by_learning_rate(1e-2))
    """
    _checks.learning_rate(learning_rate)
    _checks.non_negative("eps2", eps2)

    def update(updates: Updates, state: EmptyState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_per_leaf(updates, "scale_by_relative_step")
        _tree.check_state(state, EmptyState)
        if params is None:
            raise ValueError("scale_by_relative_step needs the params: call tx.update(grads, state, params)")
        _tree.check_same_structure(updates, params, "params")
        lr: jax.Array = learning_rate(count) if callable(learning_rate) else learning_rate  # pyright: ignore[reportAssignmentType]  (pyright types callable(Any) as returning object)
        cap = jnp.minimum(1, 1 / (lr * jnp.sqrt(increment(count).astype(_scalar_dtype(updates)))))
        return _tree.map_like(lambda g, w: cap * jnp.maximum(eps2, _rms(w)) * g, updates, params), state

    return chain(Stepped(lambda params: EmptyState(), update))


# Newton-Schulz coefficients (a, b, c) of Keller Jordan's Muon: the quintic with the steepest slope at 0.
MUON_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def _as_matrix(x: jax.Array) -> jax.Array:
    """The matrix a leaf stands for: ``(d_0 * ... * d_{k-2}, d_{k-1})``, all leading axes as rows (fan-in x fan-out)."""
    if x.ndim < 2:
        raise ValueError(
            f"orthogonalise needs leaves with at least 2 dims, got shape {x.shape}; gk.muon sends vectors and "
            "scalars to AdamW"
        )
    return x.reshape(-1, x.shape[-1])


def newton_schulz(x: jax.Array, coefficients: Any = MUON_COEFFICIENTS, steps: int = 5, eps: Scalar = 1e-7) -> jax.Array:
    """The orthogonal factor of a matrix (approximately ``U V^T`` of its SVD) by ``steps`` Newton-Schulz iterations::

        X = x / max(||x||_F, eps)
        repeat steps:   A = X X^T,   X <- a X + (b A + c A^2) X

    With Muon's coefficients the singular values land in about [0.7, 1.2] rather than exactly 1. The
    iteration runs on the wide side (``x^T`` when ``x`` has more rows than columns) and in ``x``'s dtype.

    >>> gk.newton_schulz(jnp.eye(3) * 2.0)   # about the identity
    """
    a, b, c = coefficients
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.T
    x = x / jnp.maximum(_leaf_norm(x), eps).astype(x.dtype)
    for _ in range(steps):
        gram = x @ x.conj().T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


@described
def orthogonalise(
    ns_coefficients: Any = MUON_COEFFICIENTS, ns_steps: int = 5, eps: Scalar = 1e-7
) -> GradientTransformation:
    """Muon's orthogonalisation (Jordan et al., 2024), leaf by leaf: ``u = NS(g)``, see ``gk.newton_schulz``.

    Reshape rule: a leaf of shape ``(d_0, ..., d_{k-1})`` is the matrix ``(d_0 * ... * d_{k-2}, d_{k-1})``
    (JAX/flax layout ``(..., fan_in, fan_out)``: a conv kernel ``(h, w, in, out)`` becomes ``(h*w*in, out)``);
    stacked layers ``(layers, in, out)`` would be one matrix, so vmap ``orthogonalise`` over them instead.
    Leaves with fewer than 2 dims raise. torch's ``Muon`` uses the same iteration (``ns_coefficients``,
    ``ns_steps``, ``eps`` clamping the norm) but runs it in bfloat16 (0.3-0.5% from this float evaluation);
    optax's ``orthogonalize_via_newton_schulz`` divides by ``||x|| + eps`` (its default eps 1e-8).

    >>> tx = gk.chain(gk.scale_by_momentum(0.95), gk.orthogonalise(), gk.scale_by_learning_rate(0.02))
    """
    _checks.integer("ns_steps", ns_steps)
    _checks.non_negative("eps", eps)
    if len(ns_coefficients) != 3:
        raise ValueError(f"ns_coefficients must be three numbers (a, b, c), got {ns_coefficients!r}")
    for name, value in zip("abc", ns_coefficients):
        _checks.number(f"ns_coefficients {name}", value)

    def orthogonal(g: jax.Array) -> jax.Array:
        return newton_schulz(_as_matrix(g), ns_coefficients, int(ns_steps), eps).reshape(g.shape)

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_per_leaf(updates, "orthogonalise")
        _tree.check_state(state, EmptyState)
        return _tree.map_like(orthogonal, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


@described
def scale_by_fan_ratio() -> GradientTransformation:
    """Muon's shape factor: ``u = sqrt(max(1, fan_out / fan_in)) * g``, with ``(fan_in, fan_out)`` as ``orthogonalise`` reads a leaf.

    It keeps the RMS of an orthogonalised update of a wide layer comparable to a square one. torch's ``Muon``
    computes ``sqrt(max(1, A/B))`` for a weight of shape ``(A, B)`` = ``(fan_out, fan_in)`` (its layout): the
    same factor for the transposed weight. optax's ``scale_by_shape`` is this (its layout is ours).

    >>> tx = gk.chain(gk.orthogonalise(), gk.scale_by_fan_ratio(), gk.scale_by_learning_rate(0.02))
    """

    def factor(g: jax.Array) -> jax.Array:
        fan_in, fan_out = _as_matrix(g).shape
        return g * max(1.0, fan_out / max(fan_in, 1)) ** 0.5

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_per_leaf(updates, "scale_by_fan_ratio")
        _tree.check_state(state, EmptyState)
        return _tree.map_like(factor, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


class ScheduleFreeState(NamedTuple):
    """State of ``schedule_free`` (optax ``contrib.ScheduleFreeState``; its ``step_count`` is our ``ChainState.count``).

    ``z``: the base optimizer's iterate (the SGD/Adam sequence), one per param (optax ``z``).
    ``b1``: the interpolation weight, a scalar kept for ``schedule_free_eval_params`` (optax ``b1``).
    ``weight_sum``: the sum of ``lr_max^weight_lr_power`` over the steps so far (optax ``weight_sum``).
    ``max_lr``: the largest learning rate seen so far (optax ``max_lr``).
    ``base``: the base optimizer's state (optax ``base_optimizer_state``).
    """

    z: Params
    b1: jax.Array
    weight_sum: jax.Array
    max_lr: jax.Array
    base: Any


@described
def schedule_free(
    base: GradientTransformation, learning_rate: Scalar | Schedule, b1: Scalar = 0.9, weight_lr_power: Scalar = 2.0
) -> GradientTransformation:
    """Schedule-free learning (Defazio et al., 2024): averaging in place of a learning-rate schedule (needs ``params``).

    The params ``y`` (where gradients are taken) interpolate between the base optimizer's iterate ``z``
    and the running average ``x`` of the ``z``'s::

        z <- z + base(g)                                        a base step (e.g. -lr * g) from z
        c = lr_max^p / sum_{i<=t} lr_max,i^p                    averaging weight (0 while every lr was 0)
        x <- (1-c) x + c z                                      x = (y - (1-b1) z) / b1 is not stored
        y <- b1 x + (1-b1) z

    Evaluate the model at ``x = gk.schedule_free_eval_params(state, params)``, not at the params. ``base``
    must end with its learning rate (``learning_rate`` here only weighs the average). optax
    ``contrib.schedule_free(base, learning_rate, b1, weight_lr_power)`` exactly, except that optax calls a
    schedule at ``t + 1`` for the weights where gradkit uses the step the base optimizer sees (``t``).

    >>> tx = gk.schedule_free(gk.sgd(1.0), learning_rate=1.0)
    >>> x = gk.schedule_free_eval_params(state, params)
    """
    _checks.transformation("base", base)
    _checks.learning_rate(learning_rate)
    _checks.within("b1", b1, 0, 1, open_low=True)
    _checks.non_negative("weight_lr_power", weight_lr_power)

    def init(params: Params) -> ScheduleFreeState:
        dtype = _scalar_dtype(params)
        zero = _tree.scalar_like(params, 0.0, dtype)
        z = jax.tree.map(jnp.array, params)  # a copy, so donating the params leaves z intact
        return ScheduleFreeState(z, zero + jnp.asarray(b1, dtype), zero, zero, base.init(params))

    def update(updates: Updates, state: ScheduleFreeState, params: Params = None, *, count: jax.Array, **extra: Any):
        _tree.check_state(state, ScheduleFreeState)
        if params is None:
            raise ValueError("schedule_free needs the params: call tx.update(grads, state, params)")
        _tree.check_same_structure(updates, params, "params")
        lr: jax.Array = learning_rate(count) if callable(learning_rate) else learning_rate  # pyright: ignore[reportAssignmentType]  (pyright types callable(Any) as returning object)
        max_lr = jnp.maximum(state.max_lr, lr).astype(state.max_lr.dtype)
        weight = max_lr**weight_lr_power
        weight_sum = state.weight_sum + weight
        c = jnp.where(weight_sum == 0, 0, weight / jnp.where(weight_sum == 0, 1, weight_sum))
        steps, base_state = base.update(updates, state.base, params, **extra)
        z = _tree.map_like(lambda z, u: z + u, state.z, steps)
        x = _tree.map_like(lambda y, z_old, z: (1 - c) * ((y - (1 - b1) * z_old) / b1) + c * z, params, state.z, z)
        y = _tree.map_like(lambda y, x, z: b1 * x + (1 - b1) * z, params, x, z)
        updates = _tree.map_like(lambda u, y_new, y: y_new - y, updates, y, params)
        return updates, ScheduleFreeState(z, state.b1, weight_sum, max_lr, base_state)

    return chain(Stepped(init, update))


def schedule_free_eval_params(state: Any, params: Params) -> Params:
    """The averaged params ``x = (y - (1-b1) z) / b1`` to evaluate a schedule-free model at.

    ``state`` is the optimizer state (a chain's state holding one ``ScheduleFreeState``), ``params`` the
    params being trained (``y``). optax ``contrib.schedule_free_eval_params``.

    >>> x = gk.schedule_free_eval_params(state, params)
    """
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, ScheduleFreeState))
        if isinstance(s, ScheduleFreeState)
    ]
    if len(found) != 1:
        raise ValueError(
            f"schedule_free_eval_params needs the state of a schedule-free optimizer, got {type(state).__name__} "
            f"holding {len(found)} ScheduleFreeState; pass the state of gk.schedule_free_adamw/sgd (or gk.schedule_free)"
        )
    sf = found[0]
    _tree.check_same_structure(params, sf.z, "optimizer state", name="params")
    return _tree.map_like(lambda y, z: (y - (1 - sf.b1) * z) / sf.b1, params, sf.z)


__all__ += [
    "MUON_COEFFICIENTS",
    "AdadeltaState",
    "AmsgradState",
    "FactoredRmsState",
    "LionState",
    "NadamState",
    "ScheduleFreeState",
    "newton_schulz",
    "orthogonalise",
    "scale_by_adadelta",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_factored_rms",
    "scale_by_fan_ratio",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_relative_step",
    "scale_by_trust_ratio",
    "schedule_free",
    "schedule_free_eval_params",
]
