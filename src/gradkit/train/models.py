"""The two classifiers of the lecture as plain functions over param pytrees.

A ``Model`` is ``init(key) -> params`` and ``apply(params, x) -> logits``; params are dicts of arrays
(``{"w": (n_in, n_out), "b": (n_out,)}`` per dense layer), so any JAX code can read them and
``gk.adamw`` can decay the weights while ``weights_only`` leaves the biases alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax

from gradkit import init as initializers

Params = Any


class Model(NamedTuple):
    """``init(key) -> params`` and ``apply(params, x) -> logits`` for inputs ``x`` of shape (batch, n_features)."""

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]


def _dense(key: jax.Array, n_in: int, n_out: int) -> dict[str, jax.Array]:
    """A dense layer: Kaiming-normal weights (std sqrt(2 / n_in)), zero biases."""
    return {"w": initializers.kaiming_normal(key, (n_in, n_out)), "b": initializers.zeros(key, (n_out,))}


def linear(n_features: int, num_classes: int) -> Model:
    """The linear softmax classifier ``f = x W + b`` (the lecture's ``f = Wx + b`` with x as a row).

    >>> model = linear(64, 10); logits = model.apply(model.init(jax.random.key(0)), x)
    """
    _check_sizes(n_features=n_features, num_classes=num_classes)
    return Model(lambda key: _dense(key, n_features, num_classes), lambda p, x: x @ p["w"] + p["b"])


def mlp(n_features: int, hidden: Sequence[int], num_classes: int) -> Model:
    """A ReLU MLP: ``h_0 = x``, ``h_{k+1} = relu(h_k W_k + b_k)``, logits ``= h_L W_L + b_L``; Kaiming init.

    ``hidden`` lists the hidden widths, e.g. ``(256,)`` or ``(512, 256)``; params are a list of layers.

    >>> model = mlp(64, (256,), 10); params = model.init(jax.random.key(0))
    """
    hidden = tuple(hidden)
    _check_sizes(n_features=n_features, num_classes=num_classes, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
    sizes = (n_features, *hidden, num_classes)

    def init(key: jax.Array) -> list[dict[str, jax.Array]]:
        keys = jax.random.split(key, len(sizes) - 1)
        return [_dense(k, n_in, n_out) for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]

    def apply(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
        for layer in params[:-1]:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        return x @ params[-1]["w"] + params[-1]["b"]

    return Model(init, apply)


def weights_only(params: Params) -> Any:
    """The weight-decay mask of the recipe: True for weight matrices (leaves named ``w``), False for biases.

    >>> tx = gk.adamw(1e-3, weight_decay=0.01, mask=weights_only)
    """
    return jax.tree_util.tree_map_with_path(lambda path, _: getattr(path[-1], "key", None) == "w", params)


def _check_sizes(**sizes: int) -> None:
    for name, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"{name} must be a positive int, got {size!r}")


__all__ = ["Model", "linear", "mlp", "weights_only"]
