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


def check_like(tree: Tree, reference: Tree, what: str, name: str = "updates", same_kind: bool = True) -> None:
    """Check ``tree`` (called ``name``) leaf by leaf against ``reference`` (called ``what``), at trace time.

    Same structure; every leaf floating or complex (integer and bool gradients have no meaning here);
    the same shape (nothing is broadcast); and, with ``same_kind``, no complex leaf where the reference
    is real (its imaginary part would be dropped). Shapes and dtypes are static, so under ``jit`` this
    costs nothing per step.
    """
    check_same_structure(tree, reference, what, name)
    for (path, x), r in zip(jax.tree_util.tree_leaves_with_path(tree), jax.tree.leaves(reference)):
        where, dtype, expected = jax.tree_util.keystr(path), jnp.result_type(x), jnp.result_type(r)
        if not jnp.issubdtype(dtype, jnp.inexact):
            target = expected if jnp.issubdtype(expected, jnp.inexact) else np.dtype(np.float32)
            raise TypeError(
                f"{name}{where} has dtype {dtype}; expected floating (or complex) values. Cast it with .astype({target})."
            )
        if jnp.shape(x) != jnp.shape(r):
            raise ValueError(
                f"{name}{where} has shape {jnp.shape(x)}, but {what}{where} has shape {jnp.shape(r)}; "
                "they must be equal (nothing is broadcast)."
            )
        if (
            same_kind
            and jnp.issubdtype(dtype, jnp.complexfloating)
            and not jnp.issubdtype(expected, jnp.complexfloating)
        ):
            raise TypeError(
                f"{name}{where} is complex ({dtype}) but {what}{where} is real ({expected}): the imaginary part "
                "would be dropped. Pass real gradients, or optimize complex params."
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
    """The L2 norm of all leaves of ``tree`` taken together, in at least float32, without overflow.

    The plain sum of squares is one pass. Only when it overflows (a norm of 1e20 in float32, 256 in a
    float16 leaf) is it recomputed scaled: each leaf divided by ``s``, the power of two at the largest
    ``|x|``, so ``||x|| = s * sqrt(sum |x / s|^2)`` is finite wherever the norm itself is representable.
    (Under ``vmap`` both are computed.) NaN and inf leaves still give NaN and inf.
    """
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    dtype = jnp.result_type(jnp.float32, *(real_dtype(x.dtype) for x in leaves))
    if not leaves:
        return jnp.zeros((), dtype)

    def plain() -> jax.Array:
        squares = [jnp.sum(abs_sq(x), dtype=jnp.promote_types(real_dtype(x.dtype), jnp.float32)) for x in leaves]
        return jnp.sqrt(sum(squares, jnp.zeros((), jnp.float32))).astype(dtype)

    def scaled() -> jax.Array:
        biggest = jnp.max(jnp.stack([jnp.max(jnp.abs(x), initial=0).astype(dtype) for x in leaves]))
        _, exponent = jnp.frexp(biggest)
        s = jnp.ldexp(jnp.ones((), dtype), jnp.where(jnp.isfinite(biggest), exponent, 0))
        squares = [jnp.sum(abs_sq(x.astype(jnp.promote_types(x.dtype, dtype)) / s)) for x in leaves]
        return jnp.sqrt(sum(squares, jnp.zeros((), dtype))) * s

    norm = plain()
    return jax.lax.cond(jnp.isposinf(norm), scaled, lambda: norm)
