"""The one place where pytree plumbing lives.

Primitives call these helpers with whole trees and write their own bodies as formulas on arrays.
Everything here keeps dtypes stable: results are cast back to the dtype of a reference tree, so a
float32 hyperparameter never promotes a bfloat16 update or moment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Tree = Any


def check_same_structure(tree: Tree, reference: Tree, what: str, name: str = "updates") -> None:
    """Raise a ValueError showing both structures when ``tree`` (called ``name``) is not shaped like ``reference``."""
    got, expected = jax.tree.structure(tree), jax.tree.structure(reference)
    if got != expected:
        raise ValueError(
            f"the {name} tree does not match the {what} tree.\n"
            f"  {name}: {got}\n  {what}: {expected}\n"
            f"Pass {name} with the same structure as the params the optimizer was initialised with."
        )


def check_floating(params: Tree, purpose: str = "optimized") -> None:
    """Raise a TypeError naming the first leaf of ``params`` that is not a floating (or complex) array or number.

    Stateful transformations call this (through ``zeros_like``) before building state; stateless ones never
    look at the leaves, so a model with a non-array leaf (an activation function) works with plain SGD.
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        try:
            dtype = jnp.result_type(leaf)
            what = f"has dtype {dtype}"
        except TypeError:
            dtype, what = None, f"is a {type(leaf).__name__} ({leaf!r:.60}), not an array"
        if dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)):
            raise TypeError(
                f"only floating (or complex) leaves can be {purpose}, but params{jax.tree_util.keystr(path)} {what}. "
                "Keep it out of the tree the optimizer sees: cast it with .astype(jnp.float32), filter the tree "
                "(equinox: tx.init(eqx.filter(model, eqx.is_inexact_array))), or leave it out with "
                "gk.masked(tx, mask) (mask False for that leaf)."
            )


class MaskedNode(NamedTuple):
    """Stands where a mask or a partition left a leaf out: an empty subtree, so it holds no state and costs no compute."""


def _is_function(spec: Any) -> bool:
    """A mask or label spec is a function when it is callable and not itself a pytree (equinox modules with
    ``__call__`` are pytrees: they are read as trees)."""
    if isinstance(spec, jax.tree_util.Partial):
        return True
    return callable(spec) and jax.tree_util.treedef_is_leaf(jax.tree.structure(spec))


def _spread(spec: Tree, params: Tree, name: str) -> Tree:
    """``spec`` (shaped like ``params`` or a prefix of it) copied down to every leaf of ``params``."""
    try:
        return jax.tree.map(lambda s, sub: jax.tree.map(lambda _: s, sub), spec, params)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"the {name} tree does not match the params tree (it must have the params' structure, or a prefix of it).\n"
            f"  {name}:   {jax.tree.structure(spec)}\n  params: {jax.tree.structure(params)}\n"
            f"jax says: {str(error).splitlines()[0]}"
        ) from None


def resolve_mask(mask: Any, params: Tree) -> Tree:
    """A tree of Python bools shaped like ``params`` from a mask.

    A mask is None (every leaf), a tree of bools shaped like ``params`` or a prefix of it (one bool for a
    whole subtree), or a function ``params -> such a tree``. A callable pytree (an equinox module) is a tree.
    """
    spec = True if mask is None else mask(params) if _is_function(mask) else mask
    selected = _spread(spec, params, "mask")
    for path, leaf in jax.tree_util.tree_leaves_with_path(selected):
        if isinstance(leaf, (bool, np.bool_)) or (_is_concrete(leaf) and np.asarray(leaf).dtype == bool):
            continue
        raise TypeError(
            f"mask leaves must be True or False (known before tracing), but mask{jax.tree_util.keystr(path)} is {leaf!r}"
        )
    return jax.tree.map(bool, selected)


def resolve_labels(labels: Any, params: Tree) -> Tree:
    """A tree of labels shaped like ``params``: ``labels`` is such a tree (or a prefix of it) or ``params -> tree``."""
    spec = labels(params) if _is_function(labels) else labels
    return _spread(spec, params, "labels")


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer) and np.ndim(x) == 0


def keep(tree: Tree, selected: Tree) -> Tree:
    """``tree`` with each subtree whose ``selected`` leaf is False replaced by a ``MaskedNode``."""
    return jax.tree.map(lambda s, sub: sub if s else MaskedNode(), selected, tree)


def merge(selected: Tree, chosen: Tree, other: Tree) -> Tree:
    """Subtree by subtree: from ``chosen`` where ``selected`` is True, from ``other`` where it is False."""
    return jax.tree.map(lambda s, a, b: a if s else b, selected, chosen, other)


def select(pred: jax.Array, on_true: Tree, on_false: Tree) -> Tree:
    """``on_true`` where the scalar ``pred`` holds, else ``on_false``, leaf by leaf and bit for bit."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def all_finite(tree: Tree) -> jax.Array:
    """True when no leaf of ``tree`` holds a NaN or an infinity."""
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)] or [True]))


def leaf_paths(tree: Tree) -> list[str]:
    """The path of each leaf as ``"a/b/0"``: dict keys, attribute names and sequence indices joined by ``/``."""

    def name(key: Any) -> str:
        for field in ("key", "name", "idx"):
            if hasattr(key, field):
                return str(getattr(key, field))
        return str(key)

    return ["/".join(name(k) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


def real_dtype(dtype: Any) -> np.dtype:
    """The real dtype of ``dtype``: float32 for complex64, float64 for complex128, itself otherwise."""
    return jnp.finfo(dtype).dtype


def zeros_like(params: Tree, dtype: Any = None, real: bool = False, fill: Any = 0.0) -> Tree:
    """A tree of arrays shaped like ``params`` filled with ``fill``.

    ``dtype`` overrides the leaf dtype; ``real=True`` stores complex leaves in their real dtype
    (second moments hold ``|g|^2``, which is real). Every leaf must be a floating (or complex) array:
    this is where a stateful transformation meets the params, so a clear error is raised here.
    """
    check_floating(params)

    def leaf(p: jax.Array) -> jax.Array:
        d = jnp.result_type(p) if dtype is None else dtype
        return jnp.full(jnp.shape(p), fill, real_dtype(d) if real else d)

    return jax.tree.map(leaf, params)


def map_like(fn: Callable[..., jax.Array], like: Tree, *trees: Tree) -> Tree:
    """``tree_map(fn, like, *trees)`` with each result cast to the dtype of its leaf in ``like``."""
    return jax.tree.map(lambda x, *rest: fn(x, *rest).astype(jnp.result_type(x)), like, *trees)


def abs_sq(g: jax.Array) -> jax.Array:
    """``|g|^2 = g * conj(g)``, real for complex ``g``."""
    return (g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g * g


def global_norm(tree: Tree) -> jax.Array:
    """The L2 norm of all leaves of ``tree`` taken together, accumulated in at least float32."""
    leaves = jax.tree.leaves(tree)
    squares = [jnp.sum(abs_sq(x), dtype=jnp.promote_types(real_dtype(x.dtype), jnp.float32)) for x in leaves]
    return jnp.sqrt(sum(squares, jnp.zeros((), jnp.float32)))
