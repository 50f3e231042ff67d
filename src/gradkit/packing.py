"""Packed parameters: a params tree stored as a few contiguous buffers, one per (dtype, sharding) group.

An optimizer step on thousands of small leaves compiles one loop set per leaf; on a ``Packed`` tree it
compiles a few loops over a few buffers, whatever the number of leaves. ``Packed`` is a pytree whose
children are the buffers and whose static data is the layout, so every elementwise transformation works
on it unchanged::

    packed = gk.pack(params)
    state = tx.init(packed)
    grads = jax.grad(lambda pk: loss(pk.unpack(), batch))(packed)     # grads is a Packed
    updates, state = tx.update(grads, state, packed)
    packed = gk.apply_updates(packed, updates)

``unpack`` splits each buffer once (``jnp.split``), whose gradient is one concatenate per buffer; per-leaf
slices would transpose to a pad of the whole buffer per leaf. Masks written against the unpacked tree
become per-element selections through ``gradkit._tree.per_element``. Per-leaf reductions (a per-layer
norm) use ``segment_ids``: ``jax.ops.segment_sum(x * x, ids, layout.n_leaves)`` over each buffer.

Sharding: leaves that are replicated (or on one device) share a flat buffer per dtype; leaves sharded
along their leading axis over the same mesh axes share a buffer of shape ``(shards, size)`` sharded on its
rows, each row holding one device's rows of every leaf, so unpacking and updating never move data between
devices. Other shardings are rejected with the leaf's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.sharding import NamedSharding, PartitionSpec

Tree = Any


@dataclass(frozen=True)
class Slot:
    """Where one leaf lives: ``buffer[..., offset:offset + size]`` reshaped to ``shape``.

    ``size`` counts the elements in one row (all of the leaf in a flat buffer, ``1/shards`` of it otherwise).
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    group: int
    offset: int
    size: int


@dataclass(frozen=True)
class Group:
    """One buffer: its dtype, its rows (1: a flat buffer of ``size`` elements) and the mesh axes of its rows."""

    dtype: str
    shards: int
    size: int
    axes: Any = None  # the mesh axis name(s) the rows are sharded over; None for a flat buffer

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,) if self.shards == 1 else (self.shards, self.size)


@dataclass(frozen=True)
class Layout:
    """The static half of a ``Packed``: the tree's structure, one ``Slot`` per leaf, one ``Group`` per buffer."""

    treedef: Any
    slots: tuple[Slot, ...]
    groups: tuple[Group, ...]

    @property
    def n_leaves(self) -> int:
        return len(self.slots)

    def skeleton(self) -> Tree:
        """The unpacked tree's structure with ``0`` for every leaf (to check masks and labels against)."""
        return jax.tree_util.tree_unflatten(self.treedef, [0] * len(self.slots))

    def per_leaf(self, values: list[Any], group: int) -> np.ndarray:
        """One value per leaf (in leaf order) repeated over that leaf's elements of one buffer's row."""
        slots = [(i, s) for i, s in enumerate(self.slots) if s.group == group]
        return np.repeat(np.asarray([values[i] for i, _ in slots]), [s.size for _, s in slots])

    def segment_ids(self) -> tuple[np.ndarray, ...]:
        """Per buffer, the index of the leaf (in ``jax.tree.leaves`` order) each element of a row belongs to.

        >>> ids = packed.layout.segment_ids()
        >>> norms = [jax.ops.segment_sum(b * b, i, packed.layout.n_leaves, axis=-1) ...]  # see docs/packing.md
        """
        return tuple(self.per_leaf(list(range(self.n_leaves)), g).astype(np.int32) for g in range(len(self.groups)))

    def __repr__(self) -> str:
        buffers = ", ".join(f"{g.dtype}{list(g.shape)}" for g in self.groups)
        return f"Layout({self.n_leaves} leaves in {len(self.groups)} buffers: {buffers})"


@jax.tree_util.register_pytree_with_keys_class
class Packed:
    """A params tree as a few contiguous buffers (the pytree children) plus its ``Layout`` (static).

    Build one with ``gk.pack(params)``; get the tree back with ``packed.unpack()``.
    """

    def __init__(self, buffers: tuple[Any, ...], layout: Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten_with_keys(self):
        return [(jax.tree_util.SequenceKey(i), b) for i, b in enumerate(self.buffers)], self.layout

    def tree_flatten(self):
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout: Layout, buffers: Any) -> Packed:
        return cls(tuple(buffers), layout)

    def unpack(self) -> Tree:
        """The params tree: each buffer split once into its leaves, each reshaped (a view in XLA's eyes)."""
        leaves: list[Any] = [None] * self.layout.n_leaves
        for g, buffer in enumerate(self.buffers):
            mine = [(i, s) for i, s in enumerate(self.layout.slots) if s.group == g]
            cuts = [s.offset for _, s in mine[1:]]
            pieces = jnp.split(buffer, cuts, axis=-1) if cuts else [buffer]
            for (i, slot), piece in zip(mine, pieces, strict=True):
                leaves[i] = piece.reshape(slot.shape)
        return jax.tree_util.tree_unflatten(self.layout.treedef, leaves)

    def __repr__(self) -> str:
        return f"Packed({self.layout!r})"


def pack(params: Tree) -> Packed:
    """Store ``params`` as one contiguous buffer per (dtype, sharding) group: ``gk.Packed``.

    Leaves keep their values bit for bit (``pack(p).unpack()`` equals ``p``, dtypes included); scalars,
    zero-size leaves and ``None`` subtrees round-trip. A replicated group becomes a flat buffer; leaves
    sharded on their leading axis become a ``(shards, size)`` buffer sharded on its rows.

    >>> packed = gk.pack({"w": jnp.ones((3, 2)), "b": jnp.zeros(2)})
    >>> packed.buffers[0].shape       # (8,)
    >>> packed.unpack()["w"].shape    # (3, 2)
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys: dict[Any, int] = {}
    members: list[list[tuple[int, Any]]] = []
    placements: list[Any] = []
    slots: list[tuple[str, tuple[int, ...], str, int]] = []
    for i, (path, value) in enumerate(flat):
        leaf = jnp.asarray(value)
        name = jax.tree_util.keystr(path)
        shards, axes, sharding = _row_sharding(leaf, name)
        key = (leaf.dtype.name, shards, axes, sharding)
        if key not in keys:
            keys[key] = len(members)
            members.append([])
            placements.append(sharding)
        members[keys[key]].append((i, leaf))
        slots.append((name, tuple(leaf.shape), leaf.dtype.name, keys[key]))

    offsets: dict[int, tuple[int, int]] = {}
    groups, buffers = [], []
    for (dtype, shards, axes, _), g in keys.items():
        offset = 0
        for i, leaf in members[g]:
            offsets[i] = (offset, leaf.size // shards)
            offset += leaf.size // shards
        groups.append(Group(dtype, shards, offset, axes))
        pieces = [leaf.reshape(-1) if shards == 1 else leaf.reshape(shards, -1) for _, leaf in members[g]]
        buffers.append(_concatenate(pieces, placements[g]))
    layout = Layout(
        treedef,
        tuple(Slot(n, shape, d, g, *offsets[i]) for i, (n, shape, d, g) in enumerate(slots)),
        tuple(groups),
    )
    return Packed(tuple(buffers), layout)


def _row_sharding(leaf: jax.Array, name: str) -> tuple[int, Any, Any]:
    """``(shards, mesh axes, buffer sharding)`` for a leaf: rows when it is split on its leading axis only."""
    sharding = None if isinstance(leaf, Tracer) else getattr(leaf, "sharding", None)
    if sharding is None or len(sharding.device_set) == 1:
        return 1, None, None
    if sharding.is_fully_replicated:
        return (
            1,
            None,
            NamedSharding(sharding.mesh, PartitionSpec()) if isinstance(sharding, NamedSharding) else sharding,
        )
    spec = tuple(sharding.spec) if isinstance(sharding, NamedSharding) else None
    if spec is None or len(spec) == 0 or spec[0] is None or any(a is not None for a in spec[1:]):
        raise ValueError(
            f"pack: params{name} has sharding {sharding}; packing keeps shardings that split only the leading "
            "axis (PartitionSpec('x') or PartitionSpec(('x', 'y'), None, ...)) or replicate. Reshard that leaf, "
            "or keep it out of the packed tree."
        )
    axes = spec[0]
    shards = math.prod(sharding.mesh.shape[a] for a in (axes if isinstance(axes, tuple) else (axes,)))
    if leaf.shape[0] % shards:
        raise ValueError(
            f"pack: params{name} has {leaf.shape[0]} rows sharded {shards} ways; packing needs a leading axis "
            "divisible by the number of shards."
        )
    return shards, axes, NamedSharding(sharding.mesh, PartitionSpec(axes, None))


def _concatenate(pieces: list[jax.Array], sharding: Any) -> jax.Array:
    if sharding is None:
        return jnp.concatenate(pieces, axis=-1)
    return jax.jit(lambda ps: jnp.concatenate(ps, axis=-1), out_shardings=sharding)(pieces)


def per_element(values: Tree, like: Packed) -> Packed:
    """A tree of per-leaf values (Python bools, numbers or labels, shaped like ``like.unpack()``) as a
    ``Packed`` of per-element values: per buffer, the value itself when every leaf in it agrees, else a
    NumPy array of one value per element of a row (broadcasting over the rows of a sharded buffer).

    Called at trace time; the arrays become constants of the compiled step (one byte per element for a
    bool mask).
    """
    from gradkit import _tree

    _tree.check_same_structure(values, like.layout.skeleton(), "unpacked params", name="mask")
    flat = jax.tree.leaves(values)
    for slot, v in zip(like.layout.slots, flat, strict=True):
        if isinstance(v, jax.Array | Tracer) and not isinstance(v, np.ndarray):
            raise TypeError(
                f"a mask or labels for packed params needs a Python value per leaf, got a JAX array for "
                f"params{slot.path}. Compute it from shapes or paths (it is applied at trace time)."
            )
    buffers = []
    for g in range(len(like.layout.groups)):
        values_in_group = [v for s, v in zip(like.layout.slots, flat, strict=True) if s.group == g]
        if all(v == values_in_group[0] for v in values_in_group):
            buffers.append(values_in_group[0])
        else:
            buffers.append(like.layout.per_leaf(flat, g))
    return Packed(tuple(buffers), like.layout)


__all__ = ["Group", "Layout", "Packed", "Slot", "pack", "per_element"]
