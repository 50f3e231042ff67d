"""The race engine: optimizers x learning rates x steps on a 2-D landscape, one compiled program.

Each run is ``lax.scan`` over the steps; the learning-rate grid of each optimizer is ``vmap``ped over
(the optimizer is built inside the vmapped function, so its learning rate is traced data); the
optimizers are unrolled in one ``jit``. A run that leaves the escape box (the plotting box widened by
its own size on every side) or turns non-finite is *diverged*: its step is recorded and it stays at its
last good point from then on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import _checks, _style, optimizers
from gradkit.core import GradientTransformation, apply_updates
from gradkit.landscapes import Landscape
from gradkit.linesearch import find_state, the_state, value_and_grad_from_state

MakeOptimizer = Callable[[Any], GradientTransformation]  # learning rate -> transformation


class RaceResult(NamedTuple):
    """Everything a race measured; arrays are NumPy, indexed ``[optimizer, lr]`` (then ``[step]``).

    ``paths[i, j, t]`` is the point after ``t`` updates (``t = 0`` is the start), ``losses`` is ``f`` there.
    ``converged_at`` is the first ``t`` within ``tol`` (distance) of a global minimum, ``diverged_at`` the
    first ``t`` that was non-finite or outside the escape box; both are -1 when it never happened.
    ``path_length`` is the summed distance travelled (up to divergence). ``evaluations[i, j, t]`` counts the
    gradient (or value-and-gradient) evaluations made to reach point ``t``: ``t`` for optimizers that take one
    gradient per step, every line-search trial for those ending in a line search (``gk.lbfgs``).
    """

    landscape: Landscape
    names: tuple[str, ...]
    learning_rates: np.ndarray  # (n_opt, n_lr)
    paths: np.ndarray  # (n_opt, n_lr, steps + 1, 2)
    losses: np.ndarray  # (n_opt, n_lr, steps + 1)
    converged_at: np.ndarray  # (n_opt, n_lr) int
    diverged_at: np.ndarray  # (n_opt, n_lr) int
    path_length: np.ndarray  # (n_opt, n_lr)
    tol: float
    evaluations: np.ndarray | None = None  # (n_opt, n_lr, steps + 1) int


class Racer(NamedTuple):
    """One contestant: ``gk.<name>(learning_rate, **kwargs)``, shown as ``label`` in ``colour``."""

    label: str
    name: str
    kwargs: dict
    learning_rate: float
    colour: str


# The lecture's four, in colour-blind-safe colours (Okabe-Ito, gradkit._style), the same in every picture.
# The learning rates give comparable first steps from the built-in
# starts (gradient norms 4 to 270): SGD moves lr*|g| = 0.004 to 0.27, RMSProp's first step is
# lr/sqrt(1 - 0.999) = 0.32 per coordinate (no bias correction), Adam's first step is lr = 0.1.
LECTURE: tuple[Racer, ...] = (
    Racer("SGD", "sgd", {}, 1e-3, _style.VERMILLION),
    Racer("Momentum", "sgd", {"momentum": 0.9}, 1e-3, _style.BLUE),
    Racer("RMSProp", "rmsprop", {}, 1e-2, _style.BLUISH_GREEN),
    Racer("Adam", "adam", {}, 1e-1, _style.ORANGE),
)


def escape_box(landscape: Landscape) -> np.ndarray:
    """``[[x_lo, x_hi], [y_lo, y_hi]]``: the plotting bounds widened by their own width on each side."""
    b = np.asarray(landscape.bounds, np.float64)
    width = b[:, 1] - b[:, 0]
    return np.stack([b[:, 0] - width, b[:, 1] + width], axis=1)


def optimizer(name: str, **kwargs: Any) -> MakeOptimizer:
    """``lr -> gk.NAME(lr, **kwargs)``: any gradkit optimizer by name, its learning rate left free.

    Raises a ValueError listing the known names when ``name`` is not one, and builds the optimizer once
    with a concrete learning rate so bad keyword arguments fail here, before any tracing. The same
    name and arguments give the same function, so a second race with them reuses the compiled program.

    >>> momentum = gk.race.optimizer("sgd", momentum=0.9)
    >>> tx = momentum(0.01)
    """
    known = known_optimizers()
    if name not in known:
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {', '.join(sorted(known))}")
    try:
        key = (known[name], tuple(sorted(kwargs.items())))
        hash(key)
    except TypeError:  # unhashable arguments (a mask function's closure, a list): no reuse
        key = None
    if key in _MADE:
        return _MADE[key]
    build = known[name]
    try:
        build(1e-3, **kwargs)
    except TypeError as e:
        raise TypeError(f"gk.{name} does not accept {kwargs}: {e}") from None

    def make(learning_rate: Any) -> GradientTransformation:
        return build(learning_rate, **kwargs)

    make.__name__ = name
    if key is not None:
        _MADE[key] = make
    return make


_MADE: dict[tuple, MakeOptimizer] = {}


def known_optimizers() -> dict[str, Callable[..., GradientTransformation]]:
    """The optimizers a race can name: ``gk.optimizers.BY_NAME``."""
    return dict(optimizers.BY_NAME)


def _run(
    f: Callable,
    make: MakeOptimizer,
    learning_rate: jax.Array,
    start: jax.Array,
    steps: int,
    box: jax.Array,
    minima: jax.Array,
    tol: float,
) -> tuple[jax.Array, ...]:
    """One run: ``steps`` updates of ``make(learning_rate)`` on ``f`` from ``start``."""
    tx = make(learning_rate)
    grad = jax.grad(f)
    # A line search (L-BFGS) needs f itself and leaves f and its gradient at the new point in its state.
    searches = find_state(tx.init(start)) is not None

    def update(p, state):
        if not searches:
            updates, new_state = tx.update(grad(p), state, p)
            return updates, new_state, 1
        value, g = value_and_grad_from_state(f)(p, state=state)
        updates, new_state = tx.update(g, state, p, value=value, grad=g, value_fn=f)
        fresh = (the_state(state).evaluations == 0).astype(jnp.int32)  # value_and_grad evaluated f itself
        return updates, new_state, the_state(new_state).evaluations + fresh

    def step(carry, t):
        p, state, diverged_at, evaluations = carry
        updates, new_state, used = update(p, state)
        q = apply_updates(p, updates)
        bad = ~jnp.all(jnp.isfinite(q)) | jnp.any(q < box[:, 0]) | jnp.any(q > box[:, 1])
        alive = diverged_at < 0
        diverged_at = jnp.where(alive & bad, t + 1, diverged_at)
        # A diverged run stays where it was, with the state it had there.
        keep = alive & ~bad
        p = jnp.where(keep, q, p)
        state = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_state, state)
        evaluations = evaluations + jnp.where(alive, used, 0)
        return (p, state, diverged_at, evaluations), (p, evaluations)

    init = (start, tx.init(start), jnp.array(-1, jnp.int32), jnp.array(0, jnp.int32))
    (_, _, diverged_at, _), (points, evaluations) = jax.lax.scan(step, init, jnp.arange(steps, dtype=jnp.int32))
    path = jnp.concatenate([start[None], points])
    evaluations = jnp.concatenate([jnp.zeros(1, jnp.int32), evaluations])
    losses = jax.vmap(f)(path)
    if minima.shape[0]:
        distance = jnp.min(jnp.linalg.norm(path[:, None, :] - minima[None], axis=-1), axis=1)
        hit = distance <= tol
        converged_at = jnp.where(jnp.any(hit), jnp.argmax(hit), -1).astype(jnp.int32)
    else:
        converged_at = jnp.array(-1, jnp.int32)
    path_length = jnp.sum(jnp.linalg.norm(jnp.diff(path, axis=0), axis=-1))
    return path, losses, converged_at, diverged_at, path_length, evaluations


@functools.lru_cache(maxsize=16)
def _program(landscape: Landscape, makes: tuple[MakeOptimizer, ...], steps: int, tol: float) -> Callable:
    """The compiled race ``grid (n_opt, n_lr) -> arrays``, cached so a second race with the same parts reuses it."""
    start = jnp.asarray(landscape.start, jnp.float32)
    box = jnp.asarray(escape_box(landscape), jnp.float32)
    minima = jnp.asarray(np.asarray(landscape.minima, np.float32).reshape(-1, 2))

    @jax.jit
    def all_runs(grid: jax.Array) -> list[jax.Array]:
        outs = []
        for i, make in enumerate(makes):
            one = lambda lr, make=make: _run(landscape.f, make, lr, start, steps, box, minima, tol)
            outs.append(jax.vmap(one)(grid[i]))
        return [jnp.stack(parts) for parts in zip(*outs)]

    return all_runs


def _normalized(land: Landscape) -> Landscape:
    """``land`` with start, bounds and minima as tuples of floats (hashable, so compiled races are reused)."""
    start = np.asarray(land.start, np.float64)
    bounds = np.asarray(land.bounds, np.float64)
    minima = np.asarray(land.minima, np.float64).reshape(-1, 2) if len(land.minima) else np.zeros((0, 2))
    if start.shape != (2,) or not np.all(np.isfinite(start)):
        raise ValueError(f"landscape start must be two finite numbers (x, y), got {land.start!r}")
    if bounds.shape != (2, 2) or not np.all(bounds[:, 0] < bounds[:, 1]):
        raise ValueError(
            f"landscape bounds must be ((x_min, x_max), (y_min, y_max)) with min < max, got {land.bounds!r}"
        )
    as_points = lambda a: tuple(map(tuple, a.tolist()))
    return land._replace(start=tuple(start.tolist()), bounds=as_points(bounds), minima=as_points(minima))


def race(
    landscape: Landscape,
    optimizers: Mapping[str, MakeOptimizer],
    learning_rates: Sequence[float] | np.ndarray | Mapping[str, Sequence[float]],
    steps: int = 1000,
    tol: float = 1e-2,
) -> RaceResult:
    """Race ``optimizers`` (label -> ``lr -> transformation``) from ``landscape.start`` for ``steps`` steps.

    ``learning_rates`` is one grid for all optimizers, or a mapping label -> grid (all the same length).
    Every (optimizer, lr) pair runs in one compiled program: ``vmap`` over each grid, ``lax.scan`` over steps.

    >>> lrs = jnp.logspace(-4, 0, 32)
    >>> result = gk.race.race(gk.landscapes.rosenbrock(), {"Adam": gk.race.optimizer("adam")}, lrs, steps=1000)
    >>> result.converged_at.shape
    (1, 32)
    """
    if not optimizers:
        raise ValueError("optimizers must name at least one optimizer, got an empty mapping")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    _checks.positive("tol", tol)
    landscape = _normalized(landscape)
    names = tuple(optimizers)
    if isinstance(learning_rates, Mapping):
        missing = set(names) - set(learning_rates)
        if missing:
            raise ValueError(f"learning_rates has no grid for {sorted(missing)}")
        grids = [np.asarray(learning_rates[n], np.float32).reshape(-1) for n in names]
        if len({g.size for g in grids}) != 1:
            raise ValueError(f"every learning-rate grid must have the same length, got {[g.size for g in grids]}")
        grid = np.stack(grids)
    else:
        row = np.asarray(learning_rates, np.float32).reshape(1, -1)
        grid = np.broadcast_to(row, (len(names), row.shape[1]))
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise ValueError(f"learning_rates must be finite and >= 0, got {grid.tolist()}")

    program = _program(landscape, tuple(optimizers[n] for n in names), int(steps), float(tol))
    path, losses, converged_at, diverged_at, length, evaluations = (np.asarray(a) for a in program(jnp.asarray(grid)))
    return RaceResult(
        landscape, names, np.asarray(grid), path, losses, converged_at, diverged_at, length, float(tol), evaluations
    )


__all__ = ["LECTURE", "RaceResult", "Racer", "escape_box", "known_optimizers", "optimizer", "race"]
