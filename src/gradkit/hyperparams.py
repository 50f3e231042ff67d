"""Hyperparameters you can read and change while training: ``with_hyperparams`` and ``reduce_on_plateau``.

``gk.with_hyperparams(gk.adamw)(learning_rate=sched, weight_decay=0.05)`` is ``gk.adamw`` whose numeric
hyperparameters live in the optimizer state: read them for logging, change them between steps without
recompiling. ``gk.reduce_on_plateau`` scales the updates down when the loss stops improving.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from gradkit import _checks, _precise, _tree
from gradkit.core import GradientTransformation, Params, State, Updates, described, increment


class HyperparamsState(NamedTuple):
    """The state of ``with_hyperparams``.

    ``count``: completed updates. ``hyperparams``: name -> value the *next* update uses (a schedule is
    already evaluated at ``count``). ``precise``: name -> ``(value, low part)``, the bits of a Python
    float that float32 drops (used while ``hyperparams[name]`` still equals ``value``; not for users).
    ``inner``: the wrapped optimizer's state.
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  (a field; shadows tuple.count on purpose)
    hyperparams: dict[str, jax.Array]
    precise: dict[str, tuple[jax.Array, jax.Array]]
    inner: State


def _is_float_scalar(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, float):
        return True
    if not isinstance(value, jax.Array | np.ndarray | np.generic):
        return False
    return jnp.ndim(value) == 0 and jnp.issubdtype(value.dtype, jnp.floating)


def _held(value: Any, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """A numeric hyperparameter as ``(hi, lo)``, ``hi + lo`` its value to about twice ``dtype``'s precision.

    A Python number gives weak-typed scalars, as a Python float is inside the plain optimizer: meeting a
    bfloat16 array it computes in bfloat16 the same way, and a Python float written later has the same type,
    so the jitted step does not recompile. An array keeps its dtype; a traced value has no hidden bits.
    """
    if _checks.concrete(value) is None:
        return value, jnp.zeros_like(value)
    if isinstance(value, int | float):
        hi, lo = _precise.split(value, dtype)
        return jnp.asarray(float(hi)), jnp.asarray(float(lo))
    hi, lo = _precise.split(value, jnp.result_type(value))
    return jnp.asarray(hi), jnp.asarray(lo)


def _classify(
    optimizer_fn: Callable[..., GradientTransformation], static: set[str], bound: inspect.BoundArguments
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Callable]]:
    """Split the arguments into (static, numeric, scheduled)."""
    fixed, numeric, scheduled = {}, {}, {}
    parameters = inspect.signature(optimizer_fn).parameters
    arguments = dict(bound.arguments)
    for name, parameter in parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(name, {}))
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL and arguments.pop(name, ()):
            raise TypeError(
                f"with_hyperparams passes arguments by name; {optimizer_fn.__name__} got extra positional ones"
            )
    for name, value in arguments.items():
        known = parameters.get(name)
        default = inspect.Parameter.empty if known is None else known.default
        annotation = "" if known is None else str(known.annotation)
        number_default = isinstance(default, int | float) and not isinstance(default, bool)
        takes_schedule = number_default or default is inspect.Parameter.empty or "Schedule" in annotation
        if name in static:
            fixed[name] = value
        elif _is_float_scalar(value) or (type(value) is int and isinstance(default, float)):
            numeric[name] = value
        elif callable(value) and not isinstance(value, type) and takes_schedule:
            scheduled[name] = value
        else:
            fixed[name] = value  # bools, None, dtypes, masks, integer sizes and counts: part of the structure
    return fixed, numeric, scheduled


def _traced(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with the array leaves of ``args`` traced (under ``jax.jit`` unless they already are).

    The inner optimizer is always built from traced hyperparameters: a concrete zero would make it leave a
    term out (``weight_decay=0.0``), and init and update must agree on the state's structure.
    """
    leaves, treedef = jax.tree.flatten(args)
    is_array = [isinstance(x, jax.Array | np.ndarray) for x in leaves]
    if any(isinstance(x, Tracer) for x in leaves):
        return fn(*args)

    def call(arrays: list[jax.Array]) -> Any:
        it = iter(arrays)
        return fn(*treedef.unflatten([next(it) if a else x for x, a in zip(leaves, is_array)]))

    return jax.jit(call)([x for x, a in zip(leaves, is_array) if a])


@described
def with_hyperparams(
    optimizer_fn: Callable[..., GradientTransformation], static: Iterable[str] = ()
) -> Callable[..., GradientTransformation]:
    """Wrap an optimizer factory so its numeric hyperparameters live in the state (optax ``inject_hyperparams``).

    ``with_hyperparams(fn)(**hyperparams)`` behaves like ``fn(**hyperparams)``; its state is a
    ``HyperparamsState`` whose ``hyperparams`` dict holds every numeric hyperparameter (defaults
    included) as a float array: the value the *next* update will use. A schedule ``step -> value`` is
    evaluated at the number of completed updates, so the first update uses ``schedule(0)``, as
    ``gk.scale_by_learning_rate(schedule)`` does (optax #415). Change a value between steps with
    ``gk.set_hyperparams(state, learning_rate=1e-4)``; the jitted step does not recompile.

    What counts as numeric: floats and float scalars, and ints for parameters whose default is a float
    (``weight_decay=0``). Schedules: callables for parameters whose default is a number or absent or whose
    annotation names ``Schedule``. Everything else (bools, None, dtypes, masks, ints such as sizes and
    counts) is fixed and passed through, as are the names in ``static``.

    Differences from optax's ``inject_hyperparams``: the trajectory is the plain optimizer's, bit for bit
    with the update jitted on its own and within an ulp inside one jitted train step, where XLA may fold
    the plain optimizer's constants into its neighbours (a Python float keeps its double-precision value
    through ``1 - b2``; optax's drifts by 1e-3 relative over 100 Adam steps, #583/#1532); hyperparameters stay float32 (optax casts them to the params' dtype,
    so ``b2=0.999`` becomes 1.0 in bfloat16); ``jax.jit(tx.init)`` works for any factory, since sizes and
    flags are never traced (#412); after an update the state holds the next step's values, as
    ``optimizer.param_groups[0]["lr"]`` does after torch's ``scheduler.step()`` (optax's holds the value
    the update just used).

    >>> tx = gk.with_hyperparams(gk.adamw)(learning_rate=gk.schedules.warmup_cosine(1e-3, 100, 10_000))
    >>> state = tx.init(params)
    >>> state.hyperparams["learning_rate"]        # 0.0: the lr of the first update
    >>> state = gk.set_hyperparams(state, weight_decay=0.1)
    """
    static = {static} if isinstance(static, str) else set(static)
    signature = inspect.signature(optimizer_fn)
    unknown = static - set(signature.parameters)
    if unknown:
        raise ValueError(f"static names {sorted(unknown)} are not parameters of {optimizer_fn.__name__}{signature}")

    def build(*args: Any, **kwargs: Any) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        fixed, numeric, scheduled = _classify(optimizer_fn, static, bound)
        dtype = jnp.result_type(float)  # float32, or float64 under jax.enable_x64
        # Validate the arguments now, with the schedules at step 0, so a bad value fails before tracing.
        optimizer_fn(**fixed, **numeric, **{k: jnp.asarray(s(0)) for k, s in scheduled.items()})

        def scheduled_at(count: jax.Array) -> dict[str, jax.Array]:
            return {k: jnp.asarray(s(count), dtype) for k, s in scheduled.items()}

        def start() -> tuple[dict[str, jax.Array], dict[str, tuple[jax.Array, jax.Array]]]:
            values, precise = {}, {}
            for k, v in numeric.items():
                hi, lo = _held(v, dtype)
                values[k], precise[k] = hi, (hi, lo)
            for k, v in scheduled_at(jnp.zeros((), jnp.int32)).items():
                values[k], precise[k] = v, (v, jnp.zeros((), dtype))
            return values, precise

        def inner_for(values: dict[str, jax.Array]) -> GradientTransformation:
            return optimizer_fn(**fixed, **values)

        def init(params: Params) -> HyperparamsState:
            values, precise = start()
            inner = _traced(lambda values, params: inner_for(values).init(params), values, params)
            return HyperparamsState(jnp.zeros((), jnp.int32), values, precise, inner)

        def update(
            updates: Updates, state: HyperparamsState, params: Params = None, **extra: Any
        ) -> tuple[Updates, HyperparamsState]:
            if not isinstance(state, HyperparamsState):
                raise ValueError(
                    f"with_hyperparams({optimizer_fn.__name__}) got a {type(state).__name__} state; pass the state "
                    "its init returned (or its last update)"
                )
            values = {k: jnp.asarray(v) for k, v in state.hyperparams.items()}
            # A value written since the low part was taken has no hidden bits.
            precise = {k: (v, jnp.where(v == state.precise[k][0], state.precise[k][1], 0)) for k, v in values.items()}

            def inner_update(precise, updates, inner, params, extra):
                # Built inside the trace so each value and its low part are the objects one_minus matches.
                with _precise.low_parts(precise.values()):
                    return inner_for({k: hi for k, (hi, lo) in precise.items()}).update(updates, inner, params, **extra)

            updates, inner = _traced(inner_update, precise, updates, state.inner, params, extra)
            count = increment(state.count)
            for k, v in scheduled_at(count).items():
                values[k], precise[k] = v, (v, jnp.zeros((), dtype))
            return updates, HyperparamsState(count, values, precise, inner)

        return GradientTransformation(init, update)

    return build


def set_hyperparams(state: State, **values: Any) -> State:
    """A copy of ``state`` in which each ``with_hyperparams`` state holding ``name`` uses ``values[name]`` next.

    Finds the ``HyperparamsState`` wherever it sits in ``state`` (inside chains, partitions, ...). The
    value keeps its full precision (a Python float stays exact through ``1 - b2``) and its type, so the
    jitted step does not recompile. A scheduled hyperparameter is recomputed from the step after the
    next update. Writing ``state.hyperparams["learning_rate"] = 1e-4`` also works, without recompiling,
    at float32 precision.

    >>> state = gk.set_hyperparams(state, learning_rate=1e-4)
    """
    found: set[str] = set()

    def replace(node: Any) -> Any:
        if not isinstance(node, HyperparamsState):
            return node
        hyperparams, precise = dict(node.hyperparams), dict(node.precise)
        for name, value in values.items():
            if name in hyperparams:
                _checks.number(name, value)
                hi, lo = _held(value, jnp.result_type(hyperparams[name]))
                hyperparams[name], precise[name] = hi, (hi, lo)
                found.add(name)
        return node._replace(hyperparams=hyperparams, precise=precise)

    new = jax.tree.map(replace, state, is_leaf=lambda x: isinstance(x, HyperparamsState))
    missing = set(values) - found
    if missing:
        raise ValueError(
            f"no with_hyperparams state holds {sorted(missing)}; wrap the optimizer with gk.with_hyperparams and "
            "pass these as its arguments"
        )
    return new


class PlateauState(NamedTuple):
    """The state of ``reduce_on_plateau``: the ``scale`` the next update uses, the ``best`` value so far,
    ``num_bad`` evaluations without improvement, ``cooldown_left``, and the running ``total`` of the last
    ``accumulated`` values (averaged every ``accumulation_size`` updates)."""

    scale: jax.Array
    best: jax.Array
    num_bad: jax.Array
    cooldown_left: jax.Array
    total: jax.Array
    accumulated: jax.Array


@described
def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    cooldown: int = 0,
    min_scale: float = 0.0,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    mode: str = "min",
    accumulation_size: int = 1,
) -> GradientTransformation:
    """Multiply the updates by a scale that drops by ``factor`` when the loss stops improving (torch ``ReduceLROnPlateau``).

    Feed the loss with every update: ``tx.update(grads, state, params, value=loss)``. The updates are
    multiplied by ``state.scale`` (starting at 1), then the loss is recorded; every ``accumulation_size``
    updates the mean of the recorded losses ``x`` is compared with the best so far::

        better = x < best * (1 - threshold)    (mode="min", threshold_mode="rel"; "abs": x < best - threshold;
                                                mode="max": x > best * (1 + threshold) or x > best + threshold)
        num_bad = 0 if better (and best = x) else num_bad + 1;  num_bad = 0 during a cooldown
        if num_bad > patience:  scale = max(scale * factor, min_scale), num_bad = 0, cooldown for ``cooldown``

    Put it after the learning rate: ``gk.chain(gk.adam(1e-3), gk.reduce_on_plateau(patience=5))``.
    torch mapping (``ReduceLROnPlateau(opt, mode, factor, patience, threshold, threshold_mode, cooldown,
    min_lr, eps)``): lr = base lr * ``scale``; ``min_lr`` -> ``min_scale = min_lr / lr``; one
    ``scheduler.step(metric)`` -> ``accumulation_size`` updates whose mean loss is the metric (1: every
    update); ``eps``: torch skips a reduction smaller than ``eps`` in absolute lr, gradkit applies every
    reduction (torch's ``eps=0``; the same unless the lr has shrunk to ~1e-8). optax:
    ``contrib.reduce_on_plateau(factor, patience, rtol=threshold, atol, cooldown, accumulation_size,
    min_scale)``, which compares ``x < (1 - rtol) * best - atol``.

    >>> tx = gk.chain(gk.sgd(0.1), gk.reduce_on_plateau(factor=0.5, patience=3))
    >>> updates, state = tx.update(grads, state, params, value=loss)
    """
    _checks.within("factor", factor, 0, 1, open_high=True)
    _checks.integer("patience", patience)
    _checks.integer("cooldown", cooldown)
    _checks.within("min_scale", min_scale, 0, 1)
    _checks.non_negative("threshold", threshold)
    _checks.integer("accumulation_size", accumulation_size, minimum=1)
    _checks.one_of("threshold_mode", threshold_mode, ("rel", "abs"))
    _checks.one_of("mode", mode, ("min", "max"))
    sign = 1 if mode == "min" else -1  # mode="max" is mode="min" on -x

    def improves(x: jax.Array, best: jax.Array) -> jax.Array:
        if threshold_mode == "rel":
            return sign * x < sign * best * (1 - sign * threshold)
        return sign * x < sign * best - threshold

    def init(params: Params) -> PlateauState:
        dtype = jnp.result_type(float)
        zero = jnp.zeros((), jnp.int32)
        return PlateauState(
            jnp.ones((), dtype), jnp.asarray(sign * jnp.inf, dtype), zero, zero, jnp.zeros((), dtype), zero
        )

    def update(
        updates: Updates, state: PlateauState, params: Params = None, *, value: Any = None, **extra: Any
    ) -> tuple[Updates, PlateauState]:
        _tree.check_state(state, PlateauState)
        if value is None:
            raise ValueError("reduce_on_plateau needs the loss: call tx.update(grads, state, params, value=loss)")
        scaled = _tree.map_like(lambda g: state.scale * g, updates)
        total = state.total + jnp.asarray(value, state.total.dtype)
        accumulated = state.accumulated + 1
        evaluate = accumulated >= accumulation_size
        x = total / accumulated
        better = improves(x, state.best)
        best = jnp.where(better, x, state.best)
        num_bad = jnp.where(better, 0, state.num_bad + 1)
        cooling = state.cooldown_left > 0
        cooldown_left = jnp.where(cooling, state.cooldown_left - 1, state.cooldown_left)
        num_bad = jnp.where(cooling, 0, num_bad)
        reduce = num_bad > patience
        scale = jnp.where(reduce, jnp.maximum(state.scale * factor, min_scale), state.scale).astype(state.scale.dtype)
        cooldown_left = jnp.where(reduce, cooldown, cooldown_left)
        num_bad = jnp.where(reduce, 0, num_bad)
        after = PlateauState(scale, best, num_bad, cooldown_left, jnp.zeros_like(total), jnp.zeros_like(accumulated))
        waiting = state._replace(total=total, accumulated=accumulated)
        new = jax.tree.map(lambda a, w: jnp.where(evaluate, a, w).astype(w.dtype), after, waiting)
        return scaled, new

    return GradientTransformation(init, update)


__all__ = ["HyperparamsState", "PlateauState", "reduce_on_plateau", "set_hyperparams", "with_hyperparams"]
