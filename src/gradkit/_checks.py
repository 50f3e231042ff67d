"""Argument validation shared by every constructor.

Checks run on concrete values only: a traced value (inside ``jit`` or ``vmap``) passes, so
hyperparameters stay data. Each failure is a ``ValueError`` naming the argument and the value.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def concrete(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy array, or None when it is traced (or not numeric)."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def is_zero(value: Any) -> bool:
    """True when ``value`` is concretely zero, so a term it scales can be left out entirely."""
    v = concrete(value)
    return v is not None and bool(np.all(v == 0))


def _fail(name: str, rule: str, value: Any) -> None:
    raise ValueError(f"{name} must be {rule}, got {value!r}")


def number(name: str, value: Any) -> np.ndarray | None:
    """A number (not NaN) or a traced value; returns the concrete values, or None when traced or a schedule."""
    if callable(value):
        return None
    v = concrete(value)
    if v is None and not isinstance(value, jax.core.Tracer):
        _fail(name, "a number or a JAX scalar", value)
    if v is not None and np.any(np.isnan(v)):
        _fail(name, "a number (not NaN)", value)
    return v


def non_negative(name: str, value: Any) -> None:
    """``value >= 0`` (and not NaN)."""
    v = number(name, value)
    if v is not None and np.any(v < 0):
        _fail(name, ">= 0", value)


def positive(name: str, value: Any) -> None:
    """``value > 0`` (and not NaN)."""
    v = number(name, value)
    if v is not None and np.any(v <= 0):
        _fail(name, "> 0", value)


def unit_interval(name: str, value: Any) -> None:
    """``0 <= value < 1``: a decay rate or a momentum coefficient."""
    within(name, value, 0, 1, open_high=True)


def learning_rate(value: Any) -> None:
    """A learning rate is a non-negative number or a schedule ``step -> lr``."""
    if not callable(value):
        non_negative("learning_rate", value)


def integer(name: str, value: Any, minimum: int = 0) -> None:
    """An integer-valued number ``>= minimum``: a length, a count, a step (``10`` or ``10.0``, not ``10.5``)."""
    v = number(name, value)
    if v is not None and np.any((v != np.floor(v)) | (v < minimum)):
        _fail(name, f"an integer >= {minimum}", value)


def within(name: str, value: Any, low: float, high: float, open_low: bool = False, open_high: bool = False) -> None:
    """``low <= value <= high``; ``open_low`` / ``open_high`` exclude the ends, e.g. ``(0, 1)`` for a fraction."""
    v = number(name, value)
    if v is not None and np.any((v < low) | (v > high) | (open_low & (v == low)) | (open_high & (v == high))):
        _fail(name, f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}", value)


def transformation(name: str, value: Any) -> None:
    """A gradient transformation: any object with ``init`` and ``update`` (gradkit's, optax's)."""
    if not (hasattr(value, "init") and hasattr(value, "update")):
        raise TypeError(f"{name} must be a gradient transformation (an object with init and update), got {value!r}")
