"""Argument validation shared by every constructor.

Checks run on concrete values only: a traced value (inside ``jit`` or ``vmap``) passes, so
hyperparameters stay data (its shape is still checked: it is static). A value of the wrong type (a
string, a list, a bool where a number is meant, a non-floating dtype) is a ``TypeError``; a number out
of range (negative, NaN, infinite, not a scalar) is a ``ValueError``. Each message names the argument
as the user wrote it and the value: a constructor that passes its arguments on to another under
another name (``sgd``'s ``momentum`` becomes ``scale_by_momentum``'s ``decay``) builds it inside
``with aliases(decay="momentum"):``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, NoReturn

import jax
import numpy as np
from jax.core import Tracer

_ALIASES: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("gradkit_check_aliases", default=None)


@contextlib.contextmanager
def aliases(**public: str) -> Iterator[None]:
    """Inside this block, a failing check on argument ``name`` reports it as ``public[name]``.

    >>> with aliases(decay="momentum"):   # sgd's momentum is scale_by_momentum's decay
    ...     scale_by_momentum(momentum)
    """
    outer = _ALIASES.get() or {}
    token = _ALIASES.set({**outer, **{k: outer.get(v, v) for k, v in public.items()}})
    try:
        yield
    finally:
        _ALIASES.reset(token)


def public_name(name: str) -> str:
    """``name`` as the user wrote it (see ``aliases``)."""
    return (_ALIASES.get() or {}).get(name, name)


def concrete(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy float64 array, or None when it is traced (or not numeric)."""
    if isinstance(value, (Tracer, str, bytes)):
        return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def is_zero(value: Any) -> bool:
    """True when ``value`` is concretely zero, so a term it scales can be left out entirely.

    ``False`` is not zero here: the term is built and its own check rejects the bool.
    """
    if _is_bool(value):
        return False
    v = concrete(value)
    return v is not None and bool(np.all(v == 0))


def _fail(name: str, rule: str, value: Any, error: type[Exception] = ValueError) -> NoReturn:
    raise error(f"{public_name(name)} must be {rule}, got {value!r}")


def _is_schedule(value: Any) -> bool:
    return callable(value) and not hasattr(value, "dtype")


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) or (hasattr(value, "dtype") and np.dtype(value.dtype) == np.bool_)


def number(name: str, value: Any, finite: bool = True) -> np.ndarray | None:
    """A real scalar (not NaN, and finite unless ``finite=False``) or a traced scalar.

    Returns the concrete value, or None when it is traced or a schedule (a callable passes unchecked).
    """
    if _is_schedule(value):
        return None
    if _is_bool(value):
        _fail(name, "a number, not a bool", value, TypeError)
    if isinstance(value, Tracer):
        if np.ndim(value) != 0 or not np.issubdtype(value.dtype, np.number):
            _fail(name, "a real scalar", value, ValueError if np.ndim(value) else TypeError)
        return None
    if isinstance(value, (str, bytes, list, tuple, dict, set)) or value is None:
        _fail(name, "a number (a float or a JAX scalar)", value, TypeError)
    if np.iscomplexobj(value):
        _fail(name, "a real number", value, TypeError)
    v = concrete(value)
    if v is None:
        _fail(name, "a number (a float or a JAX scalar)", value, TypeError)
    if v.ndim != 0:
        _fail(name, f"a scalar, not an array of shape {v.shape}", value)
    if np.isnan(v):
        _fail(name, "a number (not NaN)", value)
    if finite and np.isinf(v):
        _fail(name, "finite", value)
    return v


def non_negative(name: str, value: Any) -> None:
    """``0 <= value < inf``."""
    v = number(name, value)
    if v is not None and v < 0:
        _fail(name, ">= 0", value)


def positive(name: str, value: Any) -> None:
    """``0 < value < inf``."""
    v = number(name, value)
    if v is not None and v <= 0:
        _fail(name, "> 0", value)


def unit_interval(name: str, value: Any) -> None:
    """``0 <= value < 1``: a decay rate or a momentum coefficient."""
    within(name, value, 0, 1, open_high=True)


def learning_rate(value: Any, name: str = "learning_rate") -> None:
    """A learning rate is a finite number ``>= 0`` or a schedule ``step -> lr``."""
    if not callable(value) or hasattr(value, "dtype"):
        non_negative(name, value)


def integer(name: str, value: Any, minimum: int = 0) -> None:
    """A finite integer-valued number ``>= minimum``: a length, a count, a step (``10`` or ``10.0``, not ``10.5``)."""
    v = number(name, value)
    if v is not None and (v != np.floor(v) or v < minimum):
        _fail(name, f"an integer >= {minimum}", value)


def within(name: str, value: Any, low: float, high: float, open_low: bool = False, open_high: bool = False) -> None:
    """``low <= value <= high``; ``open_low`` / ``open_high`` exclude the ends, e.g. ``(0, 1)`` for a fraction."""
    v = number(name, value, finite=not (np.isinf(low) or np.isinf(high)))
    if v is not None and ((v < low) | (v > high) | (open_low & (v == low)) | (open_high & (v == high))):
        _fail(name, f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}", value)


def flag(name: str, value: Any) -> None:
    """A switch: ``True`` or ``False`` (not ``'yes'``, not ``1``)."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(name, "True or False", value, TypeError)


def dtype(name: str, value: Any) -> None:
    """None or a floating (or complex) dtype: the storage dtype of an optimizer's state."""
    if value is None:
        return
    try:
        d = np.dtype(jax.dtypes.canonicalize_dtype(value)) if not isinstance(value, str) else np.dtype(value)
    except TypeError:
        _fail(name, "None or a floating dtype such as jnp.float32", value, TypeError)
    if not jax.numpy.issubdtype(d, jax.numpy.inexact):
        _fail(name, "None or a floating dtype such as jnp.float32 or jnp.bfloat16", value, TypeError)


def one_of(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """``value`` is one of ``choices`` (a string option such as ``anneal='cos'``)."""
    if not isinstance(value, str) or value not in choices:
        _fail(
            name, "one of " + ", ".join(map(repr, choices)), value, ValueError if isinstance(value, str) else TypeError
        )


def transformation(name: str, value: Any) -> None:
    """A gradient transformation: any object with ``init`` and ``update`` (gradkit's, optax's)."""
    if not (hasattr(value, "init") and hasattr(value, "update")):
        raise TypeError(f"{name} must be a gradient transformation (an object with init and update), got {value!r}")
