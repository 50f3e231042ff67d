"""masked, partition, labels_by_path, set_to_zero and freeze against optax, step for step, and their regressions.

Argument mapping (gradkit -> optax): masked(tx, mask) -> optax.masked(tx, mask); partition(transforms, labels)
-> optax.partition(transforms, labels); set_to_zero() -> optax.set_to_zero(); freeze(mask) ->
optax.masked(optax.set_to_zero(), mask). Tolerance: float32 1e-6 relative (gradkit's Adam rounds differently
from optax's in the last bit).
"""

from __future__ import annotations

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_tree

import gradkit as gk

STEPS = 50


def grads_at(step: int, dtype=jnp.float32):
    return random_tree(100 + step, dtype)


def assert_close(a, b, rtol: float = 1e-6) -> None:
    """Equal up to ``rtol`` relative to the tree's scale: an entry is a sum of O(scale) terms, so that is its rounding."""
    scale = max([1.0] + [float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(b) if x.size])
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=rtol * scale)


def run(tx, params, steps: int = STEPS, jit: bool = False):
    """Train ``params`` on a fixed gradient sequence; returns the params after every step."""
    update = jax.jit(chex.assert_max_traces(tx.update, n=1)) if jit else tx.update
    dtype = jax.tree.leaves(params)[0].dtype
    grads = [grads_at(i, dtype) for i in range(steps)]
    state, history = tx.init(params), []
    for i in range(steps):
        updates, state = update(grads[i], state, params)
        params = gk.apply_updates(params, updates)
        history.append(params)
    return history, state


def matrices(params):
    """Mask: the leaves with two or more dimensions (None stays None)."""
    return jax.tree.map(lambda x: x.ndim >= 2, params)


def by_rank(params):
    return jax.tree.map(lambda x: "matrix" if x.ndim >= 2 else "vector" if x.ndim == 1 else "scalar", params)


def array_count(state) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(state))


# Eager runs use a cheaper inner optimizer: op-by-op dispatch of Adam on this tree takes ~0.1 s a step here.
INNER = {
    "jit": (lambda: gk.adam(0.05), lambda: optax.adam(0.05)),
    "eager": (lambda: gk.sgd(0.05, 0.9), lambda: optax.sgd(0.05, 0.9)),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_masked_matches_optax_masked(jit):
    chex.clear_trace_counter()
    params = random_tree(0)
    ours_tx, their_tx = INNER["jit" if jit else "eager"]
    ours, _ = run(gk.masked(ours_tx(), matrices), params, jit=jit)
    theirs, _ = run(optax.masked(their_tx(), matrices), params, jit=True)
    for a, b in zip(ours, theirs):
        assert_close(a, b)
    assert not np.allclose(ours[-1]["layers"][0], params["layers"][0])  # the selected leaves moved
    unselected = params["layers"][1]
    for i in range(STEPS):
        unselected = unselected + grads_at(i)["layers"][1]  # passed through unchanged, then added
    np.testing.assert_array_equal(ours[-1]["layers"][1], unselected)


def test_masked_and_partition_match_optax_in_float64():
    with jax.enable_x64(True):
        params = random_tree(0, jnp.float64)
        groups = lambda lib: {
            "matrix": lib.adam(0.05),
            "vector": lib.masked(lib.sgd(0.1, momentum=0.9), matrices),
            "scalar": lib.set_to_zero(),
        }
        ours, _ = run(gk.partition(groups(gk), by_rank), params, jit=True)
        theirs, _ = run(optax.partition(groups(optax), by_rank), params, jit=True)
        for a, b in zip(ours, theirs):
            assert_close(a, b, rtol=1e-12)
            chex.assert_trees_all_equal_dtypes(a, params)


def test_masked_with_a_bool_tree_prefix_matches_optax():
    params = random_tree(0)
    mask = {"dense": True, "layers": [True, False], "empty": False, "frozen": None}
    ours, _ = run(gk.masked(gk.sgd(0.1, momentum=0.9), mask), params, steps=10)
    theirs, _ = run(optax.masked(optax.sgd(0.1, momentum=0.9), mask), params, steps=10)
    assert_close(ours[-1], theirs[-1])


def test_masked_keeps_state_only_for_selected_leaves():
    params = {"big": jnp.ones((100, 100)), "small": jnp.ones(3)}
    state = gk.masked(gk.adam(), {"big": False, "small": True}).init(params)
    assert array_count(state) == 1 + 2 * 3  # the step count, then mu and nu of the selected leaf only


def test_nested_masks_match_optax():
    params = random_tree(0)
    outer = lambda p: jax.tree.map(lambda x: x.size > 1, p)
    ours, _ = run(gk.masked(gk.masked(gk.adam(0.05), matrices), outer), params, steps=10, jit=True)
    theirs, _ = run(optax.masked(optax.masked(optax.adam(0.05), matrices), outer), params, steps=10, jit=True)
    assert_close(ours[-1], theirs[-1])


def test_wrong_mask_shows_both_trees():
    # optax #271: a mask that does not fit the params failed with an error naming neither tree.
    params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    tx = gk.masked(gk.adam(), {"w": True, "bias": False})
    with pytest.raises(ValueError) as info:
        tx.init(params)
    text = str(info.value)
    assert "mask:" in text and "'bias'" in text and "params:" in text and "'b'" in text


def test_mask_leaves_must_be_bools():
    with pytest.raises(TypeError, match=r"mask\['w'\] is"):
        gk.masked(gk.adam(), {"w": jnp.ones(2)}).init({"w": jnp.ones(2)})


class CallableMask(eqx.Module):
    """A mask that is a pytree and also callable (equinox #193): it must be read as a tree."""

    w: bool
    b: bool

    def __call__(self, x):
        raise AssertionError("a callable pytree mask must not be called")


def test_callable_pytree_mask_is_a_tree():
    params = CallableMask(w=jnp.ones(2), b=jnp.ones(1))  # params of the same module type
    tx = gk.masked(gk.scale(-1.0), CallableMask(w=True, b=False))
    updates, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_array_equal(updates.w, -params.w)
    np.testing.assert_array_equal(updates.b, params.b)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_partition_matches_optax_partition(jit):
    chex.clear_trace_counter()
    params = random_tree(0)
    groups = lambda lib: {
        "matrix": lib.adamw(0.05, weight_decay=0.1) if jit else lib.sgd(0.05),
        "vector": lib.sgd(0.1, momentum=0.9),
        "scalar": lib.set_to_zero(),
    }
    ours, state = run(gk.partition(groups(gk), by_rank), params, jit=jit)
    theirs, _ = run(optax.partition(groups(optax), by_rank), params, jit=True)
    for a, b in zip(ours, theirs):
        assert_close(a, b)
    assert float(ours[-1]["layers"][1]) == float(params["layers"][1])  # the scalar group is frozen
    assert set(state.groups) == {"matrix", "vector", "scalar"}


def test_partition_with_a_label_tree_prefix():
    params = {"enc": {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}, "head": jnp.ones(2)}
    labels = {"enc": "frozen", "head": "train"}
    tx = gk.partition({"train": gk.sgd(0.5), "frozen": gk.set_to_zero()}, labels)
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    assert jax.tree.map(lambda u: float(jnp.abs(u).sum()), updates) == {"enc": {"b": 0.0, "w": 0.0}, "head": 1.0}


def test_partition_frozen_group_keeps_no_state():
    params = {"frozen": jnp.ones((64, 64)), "train": jnp.ones(4)}
    labels = {"frozen": "frozen", "train": "train"}
    state = gk.partition({"train": gk.adam(), "frozen": gk.set_to_zero()}, labels).init(params)
    assert state.groups["frozen"] == gk.EmptyState()
    assert array_count(state) == 1 + 2 * 4  # Adam's count, mu and nu for the trainable leaf only


def _step_flops(frozen_group) -> float:
    """Flops of one jitted training step of a 2-layer net whose big first layer is labelled frozen."""
    rng = np.random.default_rng(0)
    params = {"w1": jnp.asarray(rng.normal(size=(256, 256)), jnp.float32), "w2": jnp.asarray(rng.normal(size=(256, 4)))}
    x = jnp.asarray(rng.normal(size=(512, 256)), jnp.float32)
    tx = gk.partition({"train": gk.adam(1e-3), "frozen": frozen_group}, {"w1": "frozen", "w2": "train"})

    def step(params, state):
        grads = jax.grad(lambda p: jnp.mean(jnp.tanh(x @ p["w1"]) @ p["w2"]))(params)
        updates, state = tx.update(grads, state, params)
        return gk.apply_updates(params, updates), state

    compiled = jax.jit(step).lower(params, tx.init(params)).compile()
    return compiled.cost_analysis()["flops"]


def test_frozen_group_costs_no_compute():
    # optax #993: freezing with set_to_zero still computed the frozen leaves' gradients. The frozen w1's
    # gradient x^T @ delta is a 512x256x256 matmul (6.7e7 flops); a step that computes it is caught by
    # comparing with the same step where w1 is frozen by multiplying its gradient by zero.
    frozen = _step_flops(gk.set_to_zero())
    computed = _step_flops(gk.scale(0.0))
    assert computed - frozen > 0.9 * 2 * 512 * 256 * 256


def test_freeze_matches_optax_masked_set_to_zero():
    params = random_tree(0)
    ours, _ = run(gk.chain(gk.freeze(matrices), gk.sgd(0.1)), params, steps=5)
    theirs, _ = run(optax.chain(optax.masked(optax.set_to_zero(), matrices), optax.sgd(0.1)), params, steps=5)
    assert_close(ours[-1], theirs[-1])
    np.testing.assert_array_equal(ours[-1]["dense"]["w"], params["dense"]["w"])


def test_set_to_zero_does_not_read_the_gradient():
    tx = gk.set_to_zero()
    updates, _ = tx.update({"w": jnp.full(2, jnp.nan)}, tx.init({"w": jnp.ones(2)}))
    np.testing.assert_array_equal(updates["w"], 0.0)


def test_partition_unknown_label_lists_it_with_paths():
    tx = gk.partition({"a": gk.sgd(0.1)}, {"w": "a", "b": "oops"})
    with pytest.raises(ValueError, match=r"'oops': b"):
        tx.init({"w": jnp.ones(2), "b": jnp.ones(1)})


def test_labels_by_path_first_matching_rule_wins():
    params = {"embed": {"w": 1.0}, "dense": {"w": 1.0, "bias": 1.0}, "blocks": [{"bias": 1.0, "w": 1.0}]}
    labels = gk.labels_by_path({"*/bias": "no_decay", "embed/*": "embed"}, default="decay")(params)
    assert labels == {
        "embed": {"w": "embed"},
        "dense": {"w": "decay", "bias": "no_decay"},
        "blocks": [{"bias": "no_decay", "w": "decay"}],
    }


def test_labels_by_path_rule_matching_nothing_lists_the_paths():
    labels = gk.labels_by_path({"*/bais": "no_decay"}, default="decay")
    with pytest.raises(ValueError, match=r"\['\*/bais'\] match no parameter path(.|\n)*dense/bias"):
        labels({"dense": {"w": 1.0, "bias": 1.0}})


def test_labels_by_path_without_default_lists_unlabelled_paths():
    with pytest.raises(ValueError, match=r"no rule matches these paths and there is no default:\n  dense/w"):
        gk.labels_by_path({"*/bias": "no_decay"})({"dense": {"w": 1.0, "bias": 1.0}})


def test_partition_by_path_matches_torch_style_groups_in_optax():
    params = random_tree(0)
    labels = gk.labels_by_path({"dense/b": "no_decay", "layers": "slow"}, default="decay")
    groups = lambda lib: {
        "decay": lib.adamw(0.05, weight_decay=0.1),
        "no_decay": lib.adam(0.05),
        "slow": lib.sgd(0.01),
    }
    ours, _ = run(gk.partition(groups(gk), labels), params, steps=10, jit=True)
    theirs, _ = run(optax.partition(groups(optax), labels), params, steps=10, jit=True)
    assert_close(ours[-1], theirs[-1])
