"""Interop: extra keyword arguments in chains, non-array leaves (equinox), None trees, documented state fields."""

from __future__ import annotations

import inspect

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_tree

import gradkit as gk


def test_chain_with_optax_part_accepts_extra_arguments():
    # The case: the optax part does not take `value`; gradkit's chain must not pass it there.
    params, grads = random_tree(0), random_tree(1)
    tx = gk.chain(optax.clip_by_global_norm(1.0), gk.adam(0.1))
    updates, _ = tx.update(grads, tx.init(params), params, value=jnp.asarray(3.0))
    ref = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    expected, _ = ref.update(grads, ref.init(params), params, value=jnp.asarray(3.0))
    chex.assert_trees_all_close(updates, expected, rtol=1e-6)


def _recorder(log: list, signature: str) -> gk.GradientTransformation:
    """A stateless part that records the extra keyword arguments it is given; ``signature`` picks its update's."""
    if signature == "extra":

        def update(updates, state, params=None, **extra):
            log.append(sorted(extra))
            return updates, state
    elif signature == "value":

        def update(updates, state, params=None, value=None):
            log.append(["value"] if value is not None else [])
            return updates, state
    else:

        def update(updates, state, params=None):
            log.append([])
            return updates, state

    return gk.GradientTransformation(lambda params: gk.EmptyState(), update)


def test_chain_passes_each_part_only_the_extra_arguments_it_accepts():
    logs = {kind: [] for kind in ("extra", "value", "none")}
    tx = gk.chain(*(_recorder(log, kind) for kind, log in logs.items()), gk.sgd(0.1))
    params = {"w": jnp.ones(2)}
    tx.update(params, tx.init(params), params, value=1.0, grad=params)
    assert logs == {"extra": [["grad", "value"]], "value": [["value"]], "none": [[]]}


def test_wrappers_pass_extra_arguments_only_where_accepted():
    params = {"w": jnp.ones(2)}
    for wrap in (
        lambda tx: gk.masked(tx, {"w": True}),
        lambda tx: gk.partition({"a": tx}, {"w": "a"}),
        lambda tx: gk.accumulate(tx, 1),
        gk.skip_nonfinite,
        lambda tx: gk.ema_params(tx, 0.5),
    ):
        tx = wrap(optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam()))
        tx.update(params, tx.init(params), params, value=jnp.asarray(1.0))  # would raise if value reached optax's part
        tx = wrap(optax.clip_by_global_norm(1.0))
        tx.update(params, tx.init(params), params, value=jnp.asarray(1.0))


class Net(eqx.Module):
    """An equinox model as its docs write one: arrays next to an activation function and an int."""

    layers: list
    activation: object
    depth: int

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.layers = [eqx.nn.Linear(3, 8, key=k1), eqx.nn.Linear(8, 1, key=k2)]
        self.activation = jax.nn.tanh
        self.depth = 2

    def __call__(self, x):
        return self.layers[1](self.activation(self.layers[0](x)))


def _loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x)[:, 0] - y) ** 2)


def _train(tx, model, steps: int, filtered: bool):
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
    y = jnp.sin(x.sum(1))
    view = (lambda m: eqx.filter(m, eqx.is_inexact_array)) if filtered else (lambda m: m)

    @eqx.filter_jit
    def step(model, state):
        loss, grads = eqx.filter_value_and_grad(_loss)(model, x, y)
        updates, state = tx.update(grads, state, view(model))
        return eqx.apply_updates(model, updates), state, loss

    state, losses = tx.init(view(model)), []  # init outside jit, on the model as it is
    for _ in range(steps):
        model, state, loss = step(model, state)
        losses.append(float(loss))
    return np.asarray(losses)


def test_stateless_optimizer_takes_an_equinox_model_with_non_array_leaves():
    model = Net(jax.random.PRNGKey(0))
    ours = _train(gk.sgd(0.1), model, 5, filtered=False)
    theirs = _train(optax.sgd(0.1), model, 5, filtered=False)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours[-1] < ours[0]


def test_stateful_optimizer_names_the_non_array_leaf_and_how_to_filter():
    with pytest.raises(
        TypeError,
        match=r"params\.activation is a (PjitFunction|function).*eqx\.filter\(model, eqx\.is_inexact_array\).*gk\.masked",
    ):
        gk.adam(0.1).init(Net(jax.random.PRNGKey(0)))


def test_integer_leaf_in_stateful_optimizer_names_its_path():
    with pytest.raises(TypeError, match=r"params\['n'\] has dtype int32"):
        gk.sgd(0.1, momentum=0.9).init({"w": jnp.ones(2), "n": jnp.arange(3)})


def test_masked_by_is_inexact_array_trains_the_unfiltered_model_like_optax():
    model = Net(jax.random.PRNGKey(0))
    mask = lambda m: jax.tree.map(eqx.is_inexact_array, m)
    ours = _train(gk.masked(gk.adam(0.05), mask), model, 5, filtered=False)
    theirs = _train(optax.adam(0.05), model, 5, filtered=True)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_none_params_and_updates_where_optax_allows_them():
    for ours, theirs in [(gk.adam(0.1), optax.adam(0.1)), (gk.sgd(0.1, momentum=0.9), optax.sgd(0.1, momentum=0.9))]:
        state = ours.init(None)
        assert jax.tree.leaves(state) == [jnp.zeros((), jnp.int32)] and ours.update(None, state)[0] is None
        assert theirs.update(None, theirs.init(None))[0] is None
    grads = random_tree(1)  # None leaves inside the tree, and no params given to update
    for tx in (
        gk.masked(gk.adam(0.1), lambda g: jax.tree.map(lambda x: x.ndim > 0, g)),
        gk.skip_nonfinite(gk.adam(0.1)),
    ):
        updates, _ = tx.update(grads, tx.init(grads))
        assert updates["frozen"] is None


def _state_classes():
    return [
        getattr(gk, name) for name in gk.__all__ if name.endswith("State") and hasattr(getattr(gk, name), "_fields")
    ]


@pytest.mark.parametrize("cls", _state_classes(), ids=lambda c: c.__name__)
def test_every_state_field_is_documented(cls):
    doc = inspect.getdoc(cls) or ""
    assert all(f"``{field}``" in doc for field in cls._fields), f"{cls.__name__} fields {cls._fields}: {doc!r}"
