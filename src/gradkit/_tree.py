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
from jax.core import Tracer
from jax.experimental.shard_alike import shard_alike
from jax.sharding import NamedSharding, PartitionSpec

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
    For packed params the mask is written against the unpacked tree and comes back per element through
    ``per_element``: combine it with ``where``, not ``if``.
    """
    if isinstance(params, packing.Packed):
        if mask is None:
            return jax.tree.map(lambda _: True, params)
        return per_element(resolve_mask(mask, params.unpack()), params)
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
    if isinstance(params, packing.Packed):
        raise TypeError(
            "labels select whole leaves, and packed params have none: pack each group on its own "
            "(gk.pack per group) or give add_decayed_weights a mask, which works per element"
        )
    spec = labels(params) if _is_function(labels) else labels
    return _spread(spec, params, "labels")


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, Tracer) and np.ndim(x) == 0


def keep(tree: Tree, selected: Tree) -> Tree:
    """``tree`` with each subtree whose ``selected`` leaf is False replaced by a ``MaskedNode``."""

    def one(s: Any, sub: Any) -> Any:
        if not isinstance(s, bool | np.bool_):  # a per-element selection of a packed buffer
            raise TypeError(
                "gk.masked, gk.freeze and gk.partition select whole leaves, but this mask splits a packed "
                "buffer: pack each group on its own (gk.pack per group)"
            )
        return sub if s else MaskedNode()

    return jax.tree.map(one, selected, tree)


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


def check_per_leaf(tree: Tree, who: str) -> None:
    """Raise a TypeError when ``tree`` is packed: ``who`` works leaf by leaf (a norm or a shape per leaf)."""
    if isinstance(tree, packing.Packed):
        raise TypeError(
            f"{who} works leaf by leaf (a norm or a matrix shape per leaf), and packed params keep their leaves "
            "in shared buffers: use it on the unpacked tree (per-leaf reductions on packed buffers can use "
            "Packed.layout.segment_ids, see docs/packing.md)"
        )


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
    """A tree of arrays shaped like ``params`` filled with ``fill``, each placed like its param.

    ``dtype`` overrides the leaf dtype; ``real=True`` stores complex leaves in their real dtype
    (second moments hold ``|g|^2``, which is real). Every leaf gets its param's sharding: eagerly
    from the param's own, under ``jit`` by asking the compiler to shard the two alike. Every leaf must be a
    floating (or complex) array: this is where a stateful transformation meets the params, so a clear
    error is raised here.
    """
    check_floating(params)

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
    if isinstance(p, Tracer):
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
    traced = [p for p in leaves if isinstance(p, Tracer)]
    if traced:
        scalar, _ = jax.lax.optimization_barrier((jnp.asarray(value, dtype), traced[0]))
        return scalar
    replicated = _replicated_sharding(leaves)
    if replicated is None:
        return jnp.asarray(value, dtype)
    return jnp.full((), value, dtype, device=replicated)


def replicated_zeros(params: Tree, shape: tuple, dtype: Any) -> jax.Array:
    """Zeros of ``shape`` replicated over the devices of ``params`` (a statistic reduced from a param, such as
    Adafactor's row and column moments); under ``jit`` the compiler places them."""
    leaves = jax.tree.leaves(params)
    replicated = None if any(isinstance(p, Tracer) for p in leaves) else _replicated_sharding(leaves)
    return jnp.zeros(shape, dtype) if replicated is None else jnp.zeros(shape, dtype, device=replicated)


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
    single_leaf = structure.num_nodes == 1

    def mirrors(node: Any) -> bool:
        if jax.tree.structure(node) == structure:
            return True
        if single_leaf:  # every leaf would match a one-leaf params tree "up to" its leaf
            return False
        try:  # a masked view of the params: MaskedNode where a mask or partition left a leaf out
            leaves = structure.flatten_up_to(node)
        except (ValueError, TypeError):
            return False
        return all(isinstance(x, MaskedNode) or hasattr(x, "shape") for x in leaves)

    def pair(p: Any, x: Any) -> Any:
        if isinstance(x, MaskedNode):
            return x
        return on_param(p, x) if jnp.shape(x) == jnp.shape(p) else on_other(x)

    def visit(node: Any) -> Any:
        if not mirrors(node):
            return on_other(node)
        return structure.unflatten([pair(p, x) for p, x in zip(param_leaves, structure.flatten_up_to(node))])

    return jax.tree.map(visit, state, is_leaf=mirrors)


def map_like(fn: Callable[..., jax.Array], like: Tree, *trees: Tree) -> Tree:
    """``tree_map(fn, like, *trees)`` with each result cast to the dtype of its leaf in ``like``."""
    return jax.tree.map(lambda x, *rest: fn(x, *rest).astype(jnp.result_type(x)), like, *trees)


def abs_sq(g: jax.Array) -> jax.Array:
    """``|g|^2 = g * conj(g)``, real for complex ``g``."""
    return (g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g * g


def global_norm(tree: Tree) -> jax.Array:
    """The L2 norm of all leaves of ``tree`` taken together, in at least float32, without overflow.

    The plain sum of squares is used unless it overflows (a norm of 1e20 in float32, 256 in a float16
    leaf); then the scaled one: each leaf divided by ``s``, the power of two at the largest ``|x|``, so
    ``||x|| = s * sqrt(sum |x / s|^2)`` is finite wherever the norm itself is representable. Both are
    computed (a ``where``, not a ``cond``: a ``cond`` becomes a select under ``vmap`` and rounds the
    batched norm differently from the single one, which Muon's Newton-Schulz amplifies past 1e-6).
    NaN and inf leaves still give NaN and inf.
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
    return jnp.where(jnp.isposinf(norm), scaled(), norm)


def cast_like(tree: Tree, like: Tree) -> Tree:
    """``tree`` with each leaf cast to the dtype of its leaf in ``like`` (a state stored in its own dtype)."""
    return jax.tree.map(lambda x, ref: x.astype(jnp.result_type(ref)), tree, like)


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


def check_state(state: Any, kind: type) -> None:
    """Raise a ValueError when ``state`` is not a ``kind``: another transformation's state, even one whose
    fields are named alike (``mu``, ``nu``), is refused. A type test at trace time: nothing runs under jit."""
    if not isinstance(state, kind):
        raise ValueError(
            f"a transformation that makes {kind.__name__} got a state it did not make: {type(state).__name__}. "
            "Pass the state returned by the same optimizer's init (or its last update), not another optimizer's."
        )
