"""Where optimizer state lives on a device mesh: the state follows the params, optionally split further (ZeRO-1).

``tx.init`` already places each state leaf with its param's sharding (eagerly and under ``jit``). The
functions here compute those shardings without running ``init``, from params given as arrays or as
``jax.ShapeDtypeStruct``s, so a state too big for one device is created sharded from the start:

    shardings = gk.state_shardings(tx, params, zero_axis="data")
    state = jax.jit(tx.init, out_shardings=shardings)(params)

The ZeRO-1 rule (``zero_axis``), for each state leaf shaped like its param, whose param sharding is
``NamedSharding(mesh, spec)``:

1. if ``spec`` already uses ``zero_axis`` on some dimension, or that axis has size 1, the leaf keeps
   its param's sharding;
2. otherwise the leftmost dimension whose size is a positive multiple of ``mesh.shape[zero_axis]``
   times the sizes of the mesh axes already splitting that dimension gets ``zero_axis`` appended to its entry
   (``None -> "data"``, ``"model" -> ("model", "data")``);
3. a leaf with no such dimension (a scalar, dimensions of size 0, smaller than the axis or not
   divisible by it) keeps its param's sharding.

Every state leaf not shaped like a param (the chain's step count) is replicated over the params' mesh.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.sharding import NamedSharding, PartitionSpec, Sharding

from gradkit import _tree
from gradkit.core import GradientTransformation, Params, State

_UNCONSTRAINED = getattr(PartitionSpec, "UNCONSTRAINED", object())  # a dimension left to the compiler


def state_shardings(tx: GradientTransformation, params: Params, *, zero_axis: str | None = None) -> State:
    """The sharding of every leaf of ``tx.init(params)``, computed from shapes alone (nothing is allocated).

    ``params``: arrays or ``jax.ShapeDtypeStruct``s with a ``sharding``. State leaves shaped like their
    param take its sharding; with ``zero_axis`` (a mesh axis name, e.g. ``"data"``) they are also split
    over that axis by the ZeRO-1 rule in this module's docstring; the step count is replicated.

    Use it as ``out_shardings`` of ``jax.jit(tx.init)`` and of a training step. optax has no equivalent
    (``optax.tree_map_params`` maps a function over the params-shaped leaves).

    >>> state = jax.jit(tx.init, out_shardings=gk.state_shardings(tx, params, zero_axis="data"))(params)
    """
    if zero_axis is not None and not isinstance(zero_axis, str):
        raise ValueError(f"zero_axis must be a mesh axis name (a str) or None, got {zero_axis!r}")
    shardings = _param_shardings(params)
    replicated = _replicated(shardings)
    abstract = jax.eval_shape(tx.init, params)

    def for_param(sharding: Sharding, leaf: jax.ShapeDtypeStruct) -> Sharding:
        return sharding if zero_axis is None else _split_over(sharding, leaf.shape, zero_axis)

    return _tree.map_params_shaped(
        lambda p, leaf: for_param(p.sharding, leaf),
        lambda leaf: replicated,
        abstract,
        _with_shardings(params, shardings),
    )


def abstract_state(tx: GradientTransformation, params: Params, *, zero_axis: str | None = None) -> State:
    """``jax.ShapeDtypeStruct``s (shape, dtype and sharding) of ``tx.init(params)``: a checkpoint's restore target.

    The shardings are ``gk.state_shardings(tx, params, zero_axis=zero_axis)``.

    >>> state = checkpointer.restore(path, gk.abstract_state(tx, params, zero_axis="data"))
    """
    shardings = state_shardings(tx, params, zero_axis=zero_axis)
    return jax.tree.map(
        lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s),
        jax.eval_shape(tx.init, params),
        shardings,
    )


def _param_shardings(params: Params) -> list[Sharding]:
    """The sharding of each leaf of ``params``; a ValueError naming the first leaf that has none."""
    shardings = []
    for path, p in jax.tree_util.tree_leaves_with_path(params):
        sharding = getattr(p, "sharding", None)
        if not isinstance(sharding, Sharding):
            raise ValueError(
                f"params{jax.tree_util.keystr(path)} has no sharding ({type(p).__name__}). Pass arrays placed "
                "with jax.device_put, or jax.ShapeDtypeStruct(shape, dtype, sharding=...)."
            )
        shardings.append(sharding)
    return shardings


def _with_shardings(params: Params, shardings: list[Sharding]) -> Params:
    """``params`` as ShapeDtypeStructs carrying ``shardings`` (arrays and structs alike expose ``.sharding``)."""
    leaves, structure = jax.tree.flatten(params)
    structs = [jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=s) for p, s in zip(leaves, shardings)]
    return jax.tree.unflatten(structure, structs)


def _replicated(shardings: list[Sharding]) -> Sharding:
    """Replicated over the params' mesh (or their one device): where the step count lives."""
    for s in shardings:
        if isinstance(s, NamedSharding):
            return NamedSharding(s.mesh, PartitionSpec())
    devices = {d for s in shardings for d in s.device_set}
    if len(devices) == 1:
        return jax.sharding.SingleDeviceSharding(devices.pop())
    raise ValueError(
        "params spread over several devices need NamedShardings (a jax.sharding.Mesh) to place the step count; "
        f"got {sorted({type(s).__name__ for s in shardings})}"
    )


def _axes(entry: Any) -> tuple[str, ...]:
    """The mesh axes of one PartitionSpec entry: None, a name, or a tuple of names."""
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


def _split_over(sharding: Sharding, shape: tuple[int, ...], axis: str) -> Sharding:
    """``sharding`` also split over mesh ``axis`` along the leftmost dimension it divides (the ZeRO-1 rule)."""
    if not isinstance(sharding, NamedSharding):
        raise ValueError(f"zero_axis={axis!r} needs params with NamedShardings on a mesh, got {sharding}")
    mesh = sharding.mesh
    if axis not in mesh.axis_names:
        raise ValueError(f"zero_axis={axis!r} is not an axis of the params' mesh, whose axes are {mesh.axis_names}")
    spec = list(sharding.spec) + [None] * (len(shape) - len(sharding.spec))
    if mesh.shape[axis] == 1 or any(axis in _axes(entry) for entry in spec):
        return sharding
    for dim, (size, entry) in enumerate(zip(shape, spec)):
        if entry is _UNCONSTRAINED:
            continue
        split = math.prod(mesh.shape[a] for a in _axes(entry)) * mesh.shape[axis]
        if size % split == 0 and size >= split:
            axes = (*_axes(entry), axis)
            spec[dim] = axes[0] if len(axes) == 1 else axes
            return NamedSharding(mesh, PartitionSpec(*spec), memory_kind=sharding.memory_kind)
    return sharding


__all__ = ["abstract_state", "state_shardings"]
