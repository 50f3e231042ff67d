"""Send different parts of the params tree through different transformations: masks, parameter groups, freezing.

These move subtrees around and call the transformations they wrap; they hold no math of their own.
A leaf a transformation does not see is a ``MaskedNode`` (an empty subtree) in its view of the tree, so
it keeps no state for that leaf and does no work on it. Masks and labels are read against the params
tree (or the updates tree when ``update`` gets no params), through ``gradkit._tree``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax

from gradkit import _checks, _tree
from gradkit.core import EmptyState, GradientTransformation, Params, State, Updates, described, keyword_filter

Mask = Any  # a tree of bools shaped like the params (or a prefix of it), or params -> such a tree
Labels = Any  # a tree of labels shaped like the params (or a prefix of it), or params -> such a tree
Tree = Any


def _view(tree: Tree, selected: Tree) -> Tree | None:
    return None if tree is None else _tree.keep(tree, selected)


# -- masked ---------------------------------------------------------------------------------------


class MaskedState(NamedTuple):
    """State of ``masked``.

    ``inner``: the wrapped transformation's state, built on the selected leaves only; masked-out leaves are
    ``MaskedNode``s in it (optax's ``MaskedState.inner_state``).
    """

    inner: State


@described
def masked(tx: GradientTransformation, mask: Mask) -> GradientTransformation:
    """Apply ``tx`` to the leaves ``mask`` selects; the others pass through unchanged: ``u = tx(g) if mask else g``.

    ``mask`` is a tree of bools shaped like the params (or a prefix of it: one bool for a whole subtree), or
    a function ``params -> tree of bools``; a callable pytree (an equinox module) counts as a tree. ``tx``
    sees a tree whose masked-out leaves are empty ``MaskedNode``s, so it keeps state only for the selected
    leaves. Masks nest: ``masked(masked(tx, inner_mask), outer_mask)``. optax: ``optax.masked(tx, mask)``,
    same arguments; torch: a parameter group holding only the selected parameters.

    >>> decay_matrices = gk.masked(gk.add_decayed_weights(1e-4), lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
    >>> tx = gk.chain(gk.scale_by_adam(), decay_matrices, gk.scale_by_learning_rate(1e-3))
    """
    _checks.transformation("tx", tx)
    accepts = keyword_filter(tx)

    def init(params: Params) -> MaskedState:
        return MaskedState(tx.init(_tree.keep(params, _tree.resolve_mask(mask, params))))

    def update(updates: Updates, state: MaskedState, params: Params = None, **extra: Any):
        _tree.check_state(state, MaskedState)
        selected = _tree.resolve_mask(mask, updates if params is None else params)
        inner_updates, inner = tx.update(
            _tree.keep(updates, selected), state.inner, _view(params, selected), **accepts(extra)
        )
        return _tree.merge(selected, inner_updates, updates), MaskedState(inner)

    return GradientTransformation(init, update)


# -- set_to_zero, freeze --------------------------------------------------------------------------


@described
def set_to_zero() -> GradientTransformation:
    """Replace every update by zero: ``u = 0``. No state, and the result does not depend on ``g``.

    Because the zeros do not read the gradient, a jitted training step that freezes a leaf this way never
    computes that leaf's gradient (XLA removes the dead work). ``gk.scale(0.0)`` is not the same: ``0 * g``
    must read ``g`` (and keeps a NaN a NaN). optax: ``optax.set_to_zero()``.

    >>> tx = gk.partition({"train": gk.adam(1e-3), "frozen": gk.set_to_zero()}, labels)
    """

    def update(updates: Updates, state: EmptyState, params: Params = None, **extra: Any):
        _tree.check_state(state, EmptyState)
        return _tree.zeros_like(updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


@described
def freeze(mask: Mask) -> GradientTransformation:
    """Zero the updates of the leaves ``mask`` selects (True = frozen); the others pass through unchanged.

    ``masked(set_to_zero(), mask)``: frozen leaves keep no state and cost no compute. Chain it after the
    optimizer, or better, give the optimizer only the trainable leaves with ``gk.partition`` /
    ``gk.masked`` so it keeps no state for the frozen ones either. optax: ``optax.masked(optax.set_to_zero(),
    mask)`` (``optax.freeze(mask)`` in recent versions); torch: ``p.requires_grad_(False)``.

    >>> tx = gk.partition({"train": gk.adam(1e-3), "frozen": gk.set_to_zero()}, labels)  # no state for frozen leaves
    >>> tx = gk.chain(gk.freeze({"encoder": True, "head": False}), gk.sgd(0.1))             # stateless optimizer
    """
    return masked(set_to_zero(), mask)


# -- partition ------------------------------------------------------------------------------------


class PartitionState(NamedTuple):
    """State of ``partition``.

    ``groups``: a dict from each label to its transformation's state, built on that group's leaves only
    (optax's ``PartitionState.inner_states``, whose entries are ``MaskedState``s).
    """

    groups: dict


@described
def partition(transforms: Mapping[Hashable, GradientTransformation], labels: Labels) -> GradientTransformation:
    """Parameter groups: each leaf goes through the transformation of its label, ``u = transforms[label](g)``.

    ``labels`` is a tree of labels shaped like the params (or a prefix of it), or a function ``params ->
    labels``, e.g. ``gk.labels_by_path(...)``. Each transformation sees only its group's leaves and keeps
    state only for them; a group given ``gk.set_to_zero()`` keeps no state and costs no compute. optax:
    ``optax.partition(transforms, param_labels)`` (``multi_transform``), same arguments; torch: one parameter
    group per label, each with its own hyperparameters.

    >>> labels = gk.labels_by_path({"*/bias": "no_decay", "embed/*": "frozen"}, default="decay")
    >>> tx = gk.partition({"decay": gk.adamw(1e-3, weight_decay=0.1), "no_decay": gk.adam(1e-3),
    ...                    "frozen": gk.set_to_zero()}, labels)
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(f"transforms must be a non-empty dict from label to transformation, got {transforms!r}")
    for label, tx in transforms.items():
        _checks.transformation(f"transforms[{label!r}]", tx)
    accepts = {label: keyword_filter(tx) for label, tx in transforms.items()}

    def resolve(params: Params) -> Tree:
        tree = _tree.resolve_labels(labels, params)
        missing = {}
        for path, label in zip(_tree.leaf_paths(tree), jax.tree.leaves(tree)):
            if not isinstance(label, Hashable) or label not in transforms:
                missing.setdefault(repr(label), []).append(path)
        if missing:
            listing = "\n".join(
                f"  {label}: {', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}"
                for label, paths in missing.items()
            )
            raise ValueError(
                f"these labels have no transformation in transforms (which has {sorted(map(repr, transforms))}):\n{listing}"
            )
        return tree

    def group(tree: Tree, label: Hashable) -> Tree:
        return jax.tree.map(lambda leaf: leaf == label, tree)

    def init(params: Params) -> PartitionState:
        tree = resolve(params)
        return PartitionState(
            {label: tx.init(_tree.keep(params, group(tree, label))) for label, tx in transforms.items()}
        )

    def update(updates: Updates, state: PartitionState, params: Params = None, **extra: Any):
        _tree.check_state(state, PartitionState)
        tree = resolve(updates if params is None else params)
        outputs, groups = {}, {}
        for label, tx in transforms.items():
            selected = group(tree, label)
            outputs[label], groups[label] = tx.update(
                _tree.keep(updates, selected), state.groups[label], _view(params, selected), **accepts[label](extra)
            )
        for label in transforms:
            updates = _tree.merge(group(tree, label), outputs[label], updates)
        return updates, PartitionState(groups)

    return GradientTransformation(init, update)


def labels_by_path(rules: Mapping[str, Hashable], default: Hashable | None = None) -> Callable[[Params], Tree]:
    """A labels function for ``gk.partition`` from path patterns: the torch parameter-group habit.

    A leaf's path joins its dict keys, attribute names and list indices with ``/`` (``"encoder/0/bias"``;
    ``gk.partition`` shows them in its errors). A rule ``pattern: label`` matches a leaf when the pattern
    (shell-style: ``*`` matches anything, ``/`` included) matches its path or the path of a subtree holding it,
    so ``"embed"`` and ``"embed/*"`` both take everything under ``embed`` and ``"*/bias"`` takes flax nnx's
    ``".../bias/value"``. The first matching rule wins; leaves no rule matches get ``default``. A rule that
    matches no leaf, or a leaf left without a label (no default), is an error that lists the paths.

    >>> labels = gk.labels_by_path({"*/bias": "no_decay", "embed/*": "embed"}, default="decay")
    >>> labels({"embed": {"w": w}, "dense": {"w": w, "bias": b}})
    {'dense': {'bias': 'no_decay', 'w': 'decay'}, 'embed': {'w': 'embed'}}
    """
    if not isinstance(rules, Mapping) or not all(isinstance(p, str) for p in rules):
        raise TypeError(f"rules must be a dict from path pattern (str) to label, got {rules!r}")

    def matches(pattern: str, path: str) -> bool:
        parts = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))

    def labels(params: Params) -> Tree:
        paths = _tree.leaf_paths(params)
        unused = [p for p in rules if not any(matches(p, path) for path in paths)]
        if unused:
            raise ValueError(
                f"labels_by_path: {unused} match no parameter path. The paths are:\n  " + "\n  ".join(paths)
            )
        chosen = [next((label for p, label in rules.items() if matches(p, path)), default) for path in paths]
        unlabelled = [path for path, label in zip(paths, chosen) if label is None]
        if unlabelled:
            raise ValueError(
                "labels_by_path: no rule matches these paths and there is no default:\n  " + "\n  ".join(unlabelled)
            )
        return jax.tree.unflatten(jax.tree.structure(params), chosen)

    return labels


__all__ = ["MaskedState", "PartitionState", "freeze", "labels_by_path", "masked", "partition", "set_to_zero"]
