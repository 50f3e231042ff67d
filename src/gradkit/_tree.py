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
from jax.experimental.shard_alike import shard_alike
from jax.sharding import NamedSharding, PartitionSpec

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
    """A tree of arrays shaped like ``params`` filled with ``fill``, each placed like its param.

    ``dtype`` overrides the leaf dtype; ``real=True`` stores complex leaves in their real dtype
    (second moments hold ``|g|^2``, which is real). Every leaf gets its param's sharding: eagerly
    from the param's own, under ``jit`` by asking the compiler to shard the two alike.
    """

    def leaf(p: jax.Array) -> jax.Array:
        d = jnp.result_type(p) if dtype is None else dtype
        return _placed_like(p, jnp.full_like(p, fill, real_dtype(d) if real else d))

    return jax.tree.map(leaf, params)


def _placed_like(p: Any, x: jax.Array) -> jax.Array:
    """``x`` (a fresh array shaped like ``p``) with ``p``'s sharding.

    ``jnp.full_like`` already follows a concrete array's sharding, and a traced one's under explicit
    mesh axes; with automatic axes a tracer carries no sharding, so the compiler is told to shard
    ``x`` as it shards ``p`` (a no-op on one device).
    """
    if isinstance(p, jax.core.Tracer):
        return shard_alike(p, x)[1]
    return x


def scalar_like(params: Tree, value: Any, dtype: Any) -> jax.Array:
    """A scalar ``value`` replicated over the devices of ``params`` (the step count of a chain).

    Eagerly, params committed to a mesh (or a device) put it on every device of that mesh (on that
    device), like the rest of the state; uncommitted params leave it where JAX puts new arrays. Under
    ``jit`` it is tied to a param by an optimization barrier (free at run time): otherwise a state made
    only of the count would use no param, and ``jit`` would drop the params and compile for one device.
    """
    leaves = jax.tree.leaves(params)
    traced = [p for p in leaves if isinstance(p, jax.core.Tracer)]
    if traced:
        scalar, _ = jax.lax.optimization_barrier((jnp.asarray(value, dtype), traced[0]))
        return scalar
    replicated = _replicated_sharding(leaves)
    if replicated is None:
        return jnp.asarray(value, dtype)
    return jnp.full((), value, dtype, device=replicated)


def _replicated_sharding(leaves: list) -> jax.sharding.Sharding | None:
    """Replicated over the devices of the first committed array among ``leaves`` (None if there is none)."""
    for p in leaves:
        if not (isinstance(p, jax.Array) and getattr(p, "committed", True)):  # older jax lacks the flag
            continue
        if isinstance(p.sharding, NamedSharding):
            return NamedSharding(p.sharding.mesh, PartitionSpec())
        if len(p.sharding.device_set) == 1:
            return p.sharding
    return None


def map_params_shaped(
    on_param: Callable[[Any, Any], Any], on_other: Callable[[Any], Any], state: Tree, params: Tree
) -> Tree:
    """Map each leaf of an optimizer ``state``, telling apart the leaves that mirror a param.

    A subtree of ``state`` with the structure of ``params`` (a moment, a velocity) is paired with
    ``params`` leaf by leaf: a leaf of its param's shape becomes ``on_param(param, leaf)``. Every other
    leaf (a step count, a statistic of another shape) becomes ``on_other(leaf)``.
    """
    structure = jax.tree.structure(params)
    param_leaves = structure.flatten_up_to(params)

    def mirrors(node: Any) -> bool:
        return jax.tree.structure(node) == structure

    def visit(node: Any) -> Any:
        if not mirrors(node):
            return on_other(node)
        leaves = structure.flatten_up_to(node)
        mapped = [on_param(p, x) if jnp.shape(x) == jnp.shape(p) else on_other(x) for p, x in zip(param_leaves, leaves)]
        return structure.unflatten(mapped)

    return jax.tree.map(visit, state, is_leaf=mirrors)


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
