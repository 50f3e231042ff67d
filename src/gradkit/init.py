"""Weight initializers of lecture 10: every one is ``(key, shape, dtype=float32) -> array``.

Fans (the lecture's ``n_in`` and ``n_out``) follow JAX's layout, the last axis being the outputs:

    dense  (n_in, n_out)            fan_in = n_in,             fan_out = n_out
    conv   (kh, kw, c_in, c_out)    fan_in = kh * kw * c_in,   fan_out = kh * kw * c_out

(in general ``fan_in = shape[-2] * prod(shape[:-2])``). torch stores weights as ``(out, in, ...)``,
so a torch ``(n_out, n_in)`` weight has the same fans as a gradkit ``(n_in, n_out)`` one.

Differences from ``jax.nn.initializers`` on purpose: ``glorot_normal`` and ``he_normal`` there draw
from a normal truncated at two standard deviations (rescaled to keep the variance); here the
normal initializers are the lecture's plain, untruncated ``N(0, sigma^2)``. The uniform ones have
the same distribution as ``glorot_uniform`` / ``he_uniform``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Shape = Sequence[int]


def _check_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of ints >= 0; a negative, float or bool dimension is an error naming it."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"shape must be a tuple of ints such as (784, 256), got {shape!r}")
    shape = tuple(shape)
    for i, d in enumerate(shape):
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"shape[{i}] must be an int, got {d!r} in shape {shape!r}")
        if d < 0:
            raise ValueError(f"shape[{i}] must be >= 0, got {d!r} in shape {shape!r}")
    return tuple(int(d) for d in shape)


def fans(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape``: ``(shape[-2] * r, shape[-1] * r)``, ``r = prod(shape[:-2])``.

    >>> gk.init.fans((3, 3, 16, 32))   # (144, 288)
    """
    shape = _check_shape(shape)
    if len(shape) < 2:
        raise ValueError(
            f"shape must have at least 2 dims, (n_in, n_out) or (kh, kw, c_in, c_out), to define fans, got {shape}; "
            "initialise biases with gk.init.zeros"
        )
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    if fan_in == 0 or fan_out == 0:
        raise ValueError(f"shape {shape} has a zero-sized dimension, so its fans are 0 and its variance undefined")
    return fan_in, fan_out


def _check_dtype(dtype: Any) -> Any:
    try:
        floating = jnp.issubdtype(dtype, jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise TypeError(f"dtype must be a floating dtype, got {jnp.dtype(dtype)}")
    return dtype


def _normal(key: Array, shape: Shape, dtype: Any, variance: float) -> Array:
    return math.sqrt(variance) * jax.random.normal(key, _check_shape(shape), _check_dtype(dtype))


def _uniform(key: Array, shape: Shape, dtype: Any, variance: float) -> Array:
    # U(-a, a) has variance a^2 / 3.
    limit = math.sqrt(3 * variance)
    return jax.random.uniform(key, _check_shape(shape), _check_dtype(dtype), -limit, limit)


def zeros(key: Array, shape: Shape, dtype: Any = jnp.float32) -> Array:
    """All zeros (``key`` is ignored): for biases. Never for weights: every unit would stay identical.

    >>> b = gk.init.zeros(key, (128,))
    """
    return jnp.zeros(_check_shape(shape), _check_dtype(dtype))


def xavier_normal(key: Array, shape: Shape, dtype: Any = jnp.float32) -> Array:
    """Glorot & Bengio (2010), for tanh/sigmoid: ``W ~ N(0, 2 / (fan_in + fan_out))``, untruncated.

    torch's ``nn.init.xavier_normal_``; ``jax.nn.initializers.glorot_normal`` truncates at 2 std.

    >>> w = gk.init.xavier_normal(jax.random.key(0), (784, 256))
    """
    fan_in, fan_out = fans(shape)
    return _normal(key, shape, dtype, 2 / (fan_in + fan_out))


def xavier_uniform(key: Array, shape: Shape, dtype: Any = jnp.float32) -> Array:
    """Glorot uniform: ``W ~ U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``, so ``Var W = 2 / (fan_in + fan_out)``.

    Same distribution as torch's ``xavier_uniform_`` and ``jax.nn.initializers.glorot_uniform()``.

    >>> w = gk.init.xavier_uniform(jax.random.key(0), (784, 256))
    """
    fan_in, fan_out = fans(shape)
    return _uniform(key, shape, dtype, 2 / (fan_in + fan_out))


def kaiming_normal(key: Array, shape: Shape, dtype: Any = jnp.float32) -> Array:
    """He et al. (2015), for ReLU: ``W ~ N(0, 2 / fan_in)``, untruncated.

    torch's ``kaiming_normal_`` (defaults: fan_in, gain sqrt(2)); ``jax.nn.initializers.he_normal``
    truncates at 2 std.

    >>> w = gk.init.kaiming_normal(jax.random.key(0), (3, 3, 16, 32))
    """
    fan_in, _ = fans(shape)
    return _normal(key, shape, dtype, 2 / fan_in)


def kaiming_uniform(key: Array, shape: Shape, dtype: Any = jnp.float32) -> Array:
    """He uniform: ``W ~ U(-a, a)``, ``a = sqrt(6 / fan_in)``, so ``Var W = 2 / fan_in``.

    torch's ``kaiming_uniform_(w, a=0)``; not torch's ``nn.Linear`` default, which is
    ``kaiming_uniform_(a=sqrt(5))``, i.e. ``Var W = 1 / (3 fan_in)``.

    >>> w = gk.init.kaiming_uniform(jax.random.key(0), (784, 256))
    """
    fan_in, _ = fans(shape)
    return _uniform(key, shape, dtype, 2 / fan_in)


__all__ = ["fans", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "zeros"]
