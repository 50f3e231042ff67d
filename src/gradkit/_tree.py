"""The one place where pytree plumbing lives.

Primitives call these helpers with whole trees and write their own bodies as formulas on arrays.
Everything here keeps dtypes stable: results are cast back to the dtype of a reference tree, so a
float32 hyperparameter never promotes a bfloat16 update or moment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import packing

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
    """Raise a TypeError when a leaf of ``params`` is not floating point or complex (it cannot be ``purpose``)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)):
            raise TypeError(
                f"only floating (or complex) leaves can be {purpose}, but params{jax.tree_util.keystr(path)} "
                f"has dtype {dtype}. Cast it with .astype(jnp.float32) or keep it out of the optimized tree."
            )


def resolve_mask(mask: Any, params: Tree) -> Tree:
    """A tree of bools shaped like ``params`` from a mask: None (all True), a bool tree, or ``params -> bool tree``.

    For packed params the mask is written against the unpacked tree (a callable sees ``params.unpack()``)
    and comes back per element through ``per_element``: combine it with ``where``, not ``if``.
    """
    if isinstance(params, packing.Packed):
        if mask is None:
            return jax.tree.map(lambda _: True, params)
        return per_element(mask(params.unpack()) if callable(mask) else mask, params)
    selected = jax.tree.map(lambda _: True, params) if mask is None else mask(params) if callable(mask) else mask
    check_same_structure(selected, params, "params", name="mask")
    return selected


def per_element(selection: Tree, like: Tree) -> Tree:
    """Per-leaf values (bools, labels) written against the params tree, made to fit ``like``.

    An ordinary tree is returned as it is. For ``Packed`` params, ``selection`` is shaped like the unpacked
    tree and comes back as a ``Packed`` whose buffers hold one value each (when all of a buffer's leaves
    agree) or a NumPy array of one value per element. This is the hook for everything that selects leaves:
    ``resolve_mask`` calls it, and a label resolver calls it with the labels tree and compares buffers
    element-wise (``labels == "decay"``, with ``where``) instead of choosing leaves.
    """
    return packing.per_element(selection, like) if isinstance(like, packing.Packed) else selection


def where(selected: Any, chosen: jax.Array, other: jax.Array) -> jax.Array:
    """``chosen`` where ``selected``: a Python bool picks one array, a per-element selection picks per element."""
    if isinstance(selected, bool | np.bool_):
        return chosen if selected else other
    return jnp.where(selected, chosen, other)


def real_dtype(dtype: Any) -> np.dtype:
    """The real dtype of ``dtype``: float32 for complex64, float64 for complex128, itself otherwise."""
    return jnp.finfo(dtype).dtype


def zeros_like(params: Tree, dtype: Any = None, real: bool = False, fill: Any = 0.0) -> Tree:
    """A tree of arrays shaped like ``params`` filled with ``fill``.

    ``dtype`` overrides the leaf dtype; ``real=True`` stores complex leaves in their real dtype
    (second moments hold ``|g|^2``, which is real).
    """

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
