"""Hyperparameters held as arrays without losing the precision a Python float has.

A primitive written ``(1 - decay) * g`` computes ``1 - 0.999`` in double precision when ``decay`` is a
Python float and rounds once; when ``decay`` is a float32 array (a hyperparameter kept in optimizer
state, so it can change without recompiling) it computes ``1 - float32(0.999)``, which is 4.7e-5 off
in relative terms, and Adam's trajectory drifts (optax #583, #1532). ``gk.with_hyperparams`` therefore
keeps each value as ``hi + lo`` (two float32 numbers, about 48 bits) and registers ``lo`` for ``hi``
while the inner optimizer is traced; ``one_minus`` uses it. Products need no help: ``decay * m`` with a
Python float already multiplies by ``float32(decay) = hi``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

# id(hi) -> (hi, lo); hi is kept in the value so the id cannot be reused while registered.
_LOW_PARTS: contextvars.ContextVar[dict[int, tuple[Any, Any]] | None] = contextvars.ContextVar(
    "gradkit_low_parts", default=None
)


def split(value: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` in ``dtype`` with ``hi = dtype(value)`` and ``hi + lo`` equal to ``value`` to about twice the bits."""
    exact = np.float64(value)
    hi = np.asarray(exact, dtype)
    return hi, np.asarray(exact - np.float64(hi), dtype)


@contextlib.contextmanager
def low_parts(pairs: Iterable[tuple[Any, Any]]) -> Iterator[None]:
    """While active, ``one_minus(hi)`` uses ``hi + lo`` for each ``(hi, lo)`` (matched by the very object ``hi``)."""
    token = _LOW_PARTS.set({**(_LOW_PARTS.get() or {}), **{id(hi): (hi, lo) for hi, lo in pairs}})
    try:
        yield
    finally:
        _LOW_PARTS.reset(token)


def one_minus(x: Any) -> Any:
    """``1 - x``, rounded once from the exact value: in double precision for a Python float, and from ``hi + lo``
    for a value registered by ``low_parts`` (otherwise plain ``1 - x``)."""
    entry = (_LOW_PARTS.get() or {}).get(id(x))
    if entry is None or entry[0] is not x:
        return 1 - x
    hi, lo = entry
    # Fast2Sum: for |hi| <= 1, c + e == 1 - hi exactly, so the only rounding is the final one.
    c = 1 - hi
    e = (1 - c) - hi
    return c + (e - lo)
