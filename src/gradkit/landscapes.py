"""2-D loss landscapes for the optimizer race (lecture chapter 9).

A landscape is a function ``f: R^2 -> R`` (a ``jnp`` array of shape ``(2,)`` in, a scalar out, jit-able)
with the facts a race needs: its global minima, a start point and the box to plot. Any ``f`` becomes one
with ``gk.landscapes.Landscape("mine", f, start=(1.0, 1.0), bounds=((-2, 2), (-2, 2)))``.

>>> land = gk.landscapes.rosenbrock()
>>> float(land.f(jnp.array([1.0, 1.0])))
0.0
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax

from gradkit import _checks

Point = tuple[float, float]
Box = tuple[tuple[float, float], tuple[float, float]]


class Landscape(NamedTuple):
    """A 2-D loss surface: ``f(xy) -> scalar`` with its global ``minima`` (may be empty when unknown),
    the race's ``start`` point and the plotting ``bounds`` ``((x_min, x_max), (y_min, y_max))``."""

    name: str
    f: Callable[[jax.Array], jax.Array]
    start: Point
    bounds: Box
    minima: tuple[Point, ...] = ()


def beale() -> Landscape:
    """Beale's function, a curved narrow valley with steep walls; minimum 0 at ``(3, 0.5)``::

    f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2
    """

    def f(p: jax.Array) -> jax.Array:
        x, y = p[0], p[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return Landscape("beale", f, start=(1.0, 1.5), bounds=((-1.0, 4.5), (-1.5, 2.0)), minima=((3.0, 0.5),))


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    """Rosenbrock's banana valley: ``f = (a - x)^2 + b (y - x^2)^2``, minimum 0 at ``(a, a^2)``.

    Steep across the parabola ``y = x^2`` (curvature ~ ``b``), nearly flat along its bottom.
    """
    _checks.positive("b", b)

    def f(p: jax.Array) -> jax.Array:
        x, y = p[0], p[1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    return Landscape("rosenbrock", f, start=(-1.5, 2.0), bounds=((-2.0, 2.0), (-1.0, 3.0)), minima=((a, a * a),))


def saddle() -> Landscape:
    """A saddle, curved in ``x`` and flat in ``y`` near the origin; minima 0 at ``(0, +-1)``::

        f = x^2 + (y^2 - 1)^2 / 4          (f_yy = -1 at the saddle point (0, 0))

    The start sits almost on the ridge ``y = 0``, so the gradient along ``y`` is tiny: ``y`` grows by a factor
    of about ``1 + lr`` per plain gradient step.
    """

    def f(p: jax.Array) -> jax.Array:
        x, y = p[0], p[1]
        return x**2 + (y**2 - 1) ** 2 / 4

    minima = ((0.0, 1.0), (0.0, -1.0))
    return Landscape("saddle", f, start=(-2.0, 1e-3), bounds=((-2.5, 2.5), (-2.0, 2.0)), minima=minima)


def narrow_valley(condition: float = 50.0) -> Landscape:
    """An ill-conditioned elongated quadratic: ``f = (x^2 + condition * y^2) / 2``, minimum 0 at the origin.

    ``condition`` is the ratio of the largest to the smallest curvature (the Hessian is ``diag(1, condition)``);
    plain gradient descent needs ``lr < 2 / condition`` and then crawls along ``x`` at ``(1 - lr)^t``.
    """
    _checks.positive("condition", condition)

    def f(p: jax.Array) -> jax.Array:
        x, y = p[0], p[1]
        return (x**2 + condition * y**2) / 2

    return Landscape("narrow_valley", f, start=(-4.5, 1.0), bounds=((-5.0, 5.0), (-2.0, 2.0)), minima=((0.0, 0.0),))


def himmelblau() -> Landscape:
    """Himmelblau's function, four global minima of value 0::

    f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2
    """

    def f(p: jax.Array) -> jax.Array:
        x, y = p[0], p[1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    minima = ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126))
    return Landscape("himmelblau", f, start=(-0.5, -4.5), bounds=((-5.0, 5.0), (-5.0, 5.0)), minima=minima)


LANDSCAPES: dict[str, Callable[[], Landscape]] = {
    "beale": beale,
    "rosenbrock": rosenbrock,
    "saddle": saddle,
    "narrow_valley": narrow_valley,
    "himmelblau": himmelblau,
}


@functools.cache
def get(name: str) -> Landscape:
    """The built-in landscape called ``name`` (with its default parameters); the same object on every call.

    >>> gk.landscapes.get("beale").minima
    ((3.0, 0.5),)
    """
    if name not in LANDSCAPES:
        raise ValueError(f"unknown landscape {name!r}; known landscapes: {', '.join(LANDSCAPES)}")
    return LANDSCAPES[name]()


__all__ = ["LANDSCAPES", "Landscape", "beale", "get", "himmelblau", "narrow_valley", "rosenbrock", "saddle"]
