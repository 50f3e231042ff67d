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
    """A tree of bools shaped like ``params`` from a mask: None (all True), a bool tree, or ``params -> bool tree``."""
    selected = jax.tree.map(lambda _: True, params) if mask is None else mask(params) if callable(mask) else mask
    check_same_structure(selected, params, "params", name="mask")
    return selected


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


def scalar_dtype(tree: Tree) -> np.dtype:
    """The real dtype scalars about ``tree`` (a loss value, a step size, a dot product) are kept in: the
    widest real dtype of its leaves, at least float32."""
    return real_dtype(jnp.result_type(jnp.float32, *jax.tree.leaves(tree)))


def vdot(a: Tree, b: Tree) -> jax.Array:
    """``<a, b> = sum_i a_i b_i`` over all leaves together (real leaves), accumulated in ``scalar_dtype(a)``."""
    check_same_structure(b, a, "params", name="direction")
    dtype = scalar_dtype(a)
    products = [jnp.sum(x.astype(dtype) * y.astype(dtype)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    return sum(products, jnp.zeros((), dtype))


def stacked_zeros(params: Tree, size: int) -> Tree:
    """``size`` zero copies of ``params`` stacked along a new leading axis (a fixed-size memory of trees)."""
    return jax.tree.map(lambda p: jnp.zeros((size, *jnp.shape(p)), jnp.result_type(p)), params)


def push(stacked: Tree, tree: Tree) -> Tree:
    """A memory made by ``stacked_zeros`` with its oldest entry (index 0) dropped and ``tree`` appended last."""
    return jax.tree.map(lambda s, x: jnp.concatenate([s[1:], x[None].astype(s.dtype)]), stacked, tree)


def check_real(params: Tree, purpose: str) -> None:
    """Raise a TypeError when a leaf of ``params`` is not a real floating-point array (``purpose`` needs real numbers)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{purpose} needs real floating-point params, but params{jax.tree_util.keystr(path)} has dtype "
                f"{dtype}. Optimize the real and imaginary parts as separate real leaves."
            )


def equal(a: Tree, b: Tree) -> jax.Array:
    """A bool scalar: every element of every leaf of ``a`` equals its counterpart in ``b``."""
    same = [jnp.all(x == y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    return jnp.all(jnp.stack(same)) if same else jnp.asarray(True)
