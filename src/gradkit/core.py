"""The contract: a gradient transformation is a pair of pure functions ``(init, update)``.

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = gk.apply_updates(params, updates)

This is the same shape optax uses, so a gradkit transformation drops in wherever an optax one is
accepted (``optax.chain``, flax's ``nnx.Optimizer``, any code calling ``tx.init`` / ``tx.update``).

A chain owns the step counter. Transformations that need the step (Adam's bias correction, a
learning-rate schedule) receive it from the chain they sit in, so a chain of any length keeps one
counter. Such transformations are returned already wrapped in a chain of one, and chains nested in
chains are flattened, so ``gk.chain(gk.scale_by_adam(), gk.scale_by_learning_rate(schedule))`` still
counts steps once.

Extra keyword arguments given to a chain's ``update`` (``value=loss``, ``grad=...``, ``value_fn=...``)
reach every part that accepts them; a part whose ``update`` takes neither ``**extra`` nor that name (a
plain optax transformation) does not get them. Which part accepts what is read once, from the
signature, when the chain is built.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import jax
import jax.numpy as jnp
from jax.core import Tracer

from gradkit import _tree

Params = Any
Updates = Any
State = Any

INT32_MAX = jnp.iinfo(jnp.int32).max


class InitFn(Protocol):
    """``init(params) -> state``."""

    def __call__(self, params: Params, /) -> State: ...


class UpdateFn(Protocol):
    """``update(updates, state, params=None, **extra) -> (updates, state)``; a ``Stepped`` part's also takes ``count``."""

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Updates, State]: ...


class GradientTransformation(NamedTuple):
    """A pair of pure functions.

    ``init(params) -> state`` builds the state (a pytree of NamedTuples and arrays);
    ``update(updates, state, params=None, **extra) -> (updates, state)`` transforms the gradients.
    """

    # Protocols, not Callable: pyright would bind a Callable field like a method when matching ``Transformation``.
    init: InitFn
    update: UpdateFn

    def __repr__(self) -> str:
        return (
            getattr(self, "description", None) or f"{type(self).__name__}(init={self.init!r}, update={self.update!r})"
        )


class Transformation(Protocol):
    """What ``chain`` takes as a part: any object with ``init`` and ``update``, an optax transformation included."""

    @property
    def init(self) -> InitFn: ...

    @property
    def update(self) -> UpdateFn: ...


class EmptyState(NamedTuple):
    """The state of a stateless transformation: no fields (optax's ``EmptyState``)."""


class ChainState(NamedTuple):
    """The state of a chain.

    ``count``: completed updates, int32, held at its maximum instead of wrapping; the one step counter every
    ``Stepped`` part reads (optax keeps a ``count`` in each part's state, e.g. ``ScaleByAdamState.count``).
    ``inner``: each part's state, in the chain's order (optax's ``chain`` state is this tuple alone).
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  (a field; shadows tuple.count on purpose, as optax does)
    inner: tuple


class Stepped(GradientTransformation):
    """A transformation whose ``update`` takes the keyword ``count``, supplied by the chain it sits in.

    Build one with ``gk.chain(Stepped(init, update))`` to get a transformation that counts its own steps.
    """


class _Described(GradientTransformation):
    """A transformation that carries a description (see ``described``)."""

    description: str


class _Chain(GradientTransformation):
    """A chain; remembers its parts so that chains nested in chains are flattened."""

    parts: tuple[Transformation, ...]
    description: str


# A constructor of a transformation or of a schedule: ``described`` returns it with the same signature.
Constructor = TypeVar("Constructor", bound=Callable[..., object])


def _show(value: Any) -> str:
    """A hyperparameter as the user would type it: ``0.1``, not ``Array(0.1, dtype=float32)`` or float32 noise."""
    if isinstance(value, Tracer):
        return "<traced>"
    if hasattr(value, "dtype") and hasattr(value, "shape") and value.shape == ():
        return str(jax.device_get(value)[()])
    if callable(value) and not isinstance(value, GradientTransformation):
        return getattr(value, "__qualname__", None) or repr(value)
    return repr(value)


def described(constructor: Constructor) -> Constructor:
    """Decorate a public constructor so ``repr(tx)`` shows its name and arguments: ``sgd(learning_rate=0.1, ...)``.

    >>> @described
    ... def my_scaling(factor: float = 2.0) -> GradientTransformation: ...
    """
    signature = inspect.signature(constructor)

    @functools.wraps(constructor)
    def build(*args: Any, **kwargs: Any) -> Any:
        tx: Any = constructor(*args, **kwargs)  # a transformation or a schedule: any with a __dict__ is described
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        shown = []
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                shown += [f"{k}={_show(v)}" for k, v in value.items()]
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                shown += [_show(v) for v in value]
            else:
                shown.append(f"{name}={_show(value)}")
        if type(tx) is GradientTransformation:  # a plain NamedTuple has no room for the description
            tx = _Described(tx.init, tx.update)
        elif not hasattr(tx, "__dict__"):  # another NamedTuple type: keep it as it is
            return tx
        tx.description = f"{constructor.__name__}({', '.join(shown)})"
        if isinstance(tx, _Chain) and len(tx.parts) == 1 and hasattr(tx.parts[0], "__dict__"):
            vars(tx.parts[0])["description"] = tx.description  # it shows when the chain is flattened into another
        return tx

    return build  # type: ignore[return-value]


def increment(count: jax.Array) -> jax.Array:
    """``count + 1``, held at the int32 maximum instead of wrapping around."""
    return jnp.where(count < INT32_MAX, count + 1, count).astype(jnp.int32)


def keyword_filter(transform: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The extra keyword arguments ``transform.update`` accepts, decided once from its signature.

    ``**extra`` in the signature accepts all of them; otherwise only those it names.
    """
    try:
        parameters = inspect.signature(transform.update).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): pass everything, as before
        return lambda extra: extra
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return lambda extra: extra
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return lambda extra: {k: v for k, v in extra.items() if k in named}


@described
def identity() -> GradientTransformation:
    """Leave the updates unchanged: ``u = g``.

    >>> tx = gk.identity()
    >>> updates, _ = tx.update(grads, tx.init(params))
    """
    return GradientTransformation(
        lambda params: EmptyState(), lambda updates, state, params=None, **extra: (updates, state)
    )


def chain(*transforms: Transformation) -> GradientTransformation:
    """Apply ``transforms`` one after the other, sharing one step counter.

    The updates each part returns are the gradients the next part sees. Any object with ``init`` and
    ``update`` works as a part, optax transformations included; gradkit chains given as parts are
    flattened into this one.

    >>> tx = gk.chain(gk.clip_by_global_norm(1.0), gk.scale_by_adam(), gk.scale_by_learning_rate(1e-3))
    """
    parts: list[Transformation] = []
    for t in transforms:
        if isinstance(t, _Chain):
            parts.extend(t.parts)
        elif hasattr(t, "init") and hasattr(t, "update"):
            parts.append(t)
        else:
            raise TypeError(f"chain takes gradient transformations (objects with init and update), got {t!r}")

    accepted = [keyword_filter(t) for t in parts]

    def init(params: Params) -> ChainState:
        return ChainState(_tree.scalar_like(params, 0, jnp.int32), tuple(t.init(params) for t in parts))

    def update(updates: Updates, state: ChainState, params: Params = None, **extra: Any) -> tuple[Updates, ChainState]:
        if not isinstance(state, ChainState) or len(state.inner) != len(parts):
            raise ValueError(
                f"this chain of {len(parts)} transformations got a state it did not make: {type(state).__name__}. "
                "Pass the state returned by the same optimizer's init (or its last update)."
            )
        # Checked against the params when shaped like them; otherwise (no params, or an unfiltered equinox
        # model whose grads hold None for its non-array leaves) against themselves: floating dtypes only.
        like_params = params is not None and jax.tree.structure(updates) == jax.tree.structure(params)
        _tree.check_like(updates, params if like_params else updates, "params")
        inner = []
        for t, s, accepts in zip(parts, state.inner, accepted):
            try:
                if isinstance(t, Stepped):
                    updates, new = t.update(updates, s, params, count=state.count, **accepts(extra))
                else:
                    updates, new = t.update(updates, s, params, **accepts(extra))
            except AttributeError as e:
                if type(s).__name__ not in str(e):
                    raise
                raise ValueError(
                    f"{t!r} got a state it did not make ({type(s).__name__}: {e}). Pass the state returned by "
                    "the same optimizer's init (or its last update), not another optimizer's."
                ) from None
            inner.append(new)
        return updates, ChainState(increment(state.count), tuple(inner))

    result = _Chain(init, update)
    result.parts = tuple(parts)
    result.description = f"chain({', '.join(map(repr, parts))})"
    return result


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates``, leaf by leaf, each result in its param's dtype.

    >>> params = gk.apply_updates(params, updates)
    """
    _tree.check_like(updates, params, "params")
    return jax.tree.map(lambda p, u: (p + u).astype(jnp.result_type(p)), params, updates)
