"""accumulate, skip_nonfinite and ema_params against optax (or a closed form), step for step, and their regressions.

Argument mapping (gradkit -> optax):
- accumulate(tx, every)             -> optax.MultiSteps(tx, every_k_schedule=every).gradient_transformation()
- skip_nonfinite(tx, n)             -> optax.apply_if_finite(tx, max_consecutive_errors=n); optax checks only the
                                       gradients and does not reset its count after giving up (#1746)
- ema_params(tx, decay).ema         -> ema = optax.incremental_update(new_params, ema, step_size=1 - decay) after
                                       each step, starting from the initial params
Tolerance: float32 1e-6 relative to the tree's scale, float64 1e-12.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_tree

import gradkit as gk

STEPS = 50
NAN_STEPS = {7, 8, 20, 33, 34, 35, 45}  # non-finite gradients at these steps, runs of up to 3


def grads_at(step: int, dtype=jnp.float32, bad: frozenset = frozenset()):
    grads = random_tree(100 + step, dtype)
    if step in bad:  # one entry of one leaf: the whole step must still be skipped
        grads["dense"]["w"] = grads["dense"]["w"].at[1, 2].set(jnp.inf if step % 2 else jnp.nan)
    return grads


def assert_close(a, b, rtol: float = 1e-6) -> None:
    """Equal up to ``rtol`` relative to the tree's scale: an entry is a sum of O(scale) terms, so that is its rounding."""
    scale = max([1.0] + [float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(b) if x.size])
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=rtol * scale)


def run(tx, params, steps: int = STEPS, jit: bool = False, bad: frozenset = frozenset()):
    """Train ``params`` on a fixed gradient sequence; returns the params after each step and the last state."""
    update = jax.jit(chex.assert_max_traces(tx.update, n=1)) if jit else tx.update
    dtype = jax.tree.leaves(params)[0].dtype
    grads = [grads_at(i, dtype, bad) for i in range(steps)]
    state, history = tx.init(params), []
    for g in grads:
        updates, state = update(g, state, params)
        params = gk.apply_updates(params, updates)
        history.append(params)
    return history, state


def schedule(step):
    return 0.05 / (1.0 + 0.5 * step)


# Eager runs use a cheaper inner optimizer: op-by-op dispatch of Adam on this tree takes ~0.1 s a step here.
INNER = {
    "jit": (lambda: gk.adam(schedule), lambda: optax.adam(schedule)),
    "eager": (lambda: gk.sgd(schedule, 0.9), lambda: optax.sgd(schedule, 0.9)),
}


# -- accumulate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_accumulate_matches_optax_multisteps(jit):
    chex.clear_trace_counter()
    params = random_tree(0)
    ours_tx, their_tx = INNER["jit" if jit else "eager"]
    ours, _ = run(gk.accumulate(ours_tx(), every=3), params, jit=jit)
    theirs, _ = run(optax.MultiSteps(their_tx(), every_k_schedule=3).gradient_transformation(), params, jit=True)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a, b)
        if i % 3 != 2:  # zero updates between applied steps
            chex.assert_trees_all_equal(a, ours[i - 1] if i else params)


def test_accumulate_matches_optax_in_float64():
    with jax.enable_x64(True):
        params = random_tree(0, jnp.float64)
        ours, _ = run(gk.accumulate(gk.adamw(schedule, weight_decay=0.1), every=4), params, jit=True)
        inner = optax.adamw(schedule, weight_decay=0.1)
        multi = optax.MultiSteps(inner, every_k_schedule=4, accumulator_dtype=jnp.float64)  # its default is float32
        theirs, _ = run(multi.gradient_transformation(), params, jit=True)
        for a, b in zip(ours, theirs):
            assert_close(a, b, rtol=1e-12)
            chex.assert_trees_all_equal_dtypes(a, params)


def test_accumulate_schedule_counts_applied_steps():
    params = {"w": jnp.ones(3)}
    tx = gk.accumulate(gk.sgd(schedule), every=4)
    state = tx.init(params)
    for step in range(3):
        grads = [{"w": jnp.full(3, float(k + 1))} for k in range(4)]
        for g in grads:
            updates, state = tx.update(g, state, params)
        # lr of applied step `step` (not of micro-batch 4*step+3) times the mean gradient 2.5
        np.testing.assert_allclose(updates["w"], -schedule(step) * 2.5, rtol=1e-6)


def test_accumulate_adds_exactly_one_params_sized_buffer():
    params = {"w": jnp.ones((50, 40)), "b": jnp.ones(40)}
    inner = gk.adam()
    extra = sum(x.size for x in jax.tree.leaves(gk.accumulate(inner, 8).init(params))) - sum(
        x.size for x in jax.tree.leaves(inner.init(params))
    )
    assert extra == 50 * 40 + 40 + 1  # the running mean and the micro-step counter


def test_accumulate_rejects_bad_every():
    with pytest.raises(ValueError, match="every must be an integer >= 1, got 0"):
        gk.accumulate(gk.sgd(0.1), 0)


# -- skip_nonfinite -------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_skip_nonfinite_matches_optax_apply_if_finite(jit):
    chex.clear_trace_counter()
    params = random_tree(0)
    ours_tx, their_tx = INNER["jit" if jit else "eager"]
    ours, state = run(gk.skip_nonfinite(ours_tx(), max_consecutive=5), params, jit=jit, bad=NAN_STEPS)
    theirs, their_state = run(optax.apply_if_finite(their_tx(), 5), params, jit=True, bad=NAN_STEPS)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a, b)
        if i in NAN_STEPS:  # a skipped step leaves the params bit for bit
            chex.assert_trees_all_equal(a, ours[i - 1])
    assert int(state.skipped) == int(their_state.total_notfinite) == len(NAN_STEPS)
    assert int(state.consecutive) == int(their_state.notfinite_count) == 0


def test_skipped_step_leaves_inner_state_bit_for_bit():
    params = random_tree(0)
    tx = gk.skip_nonfinite(gk.adam(0.1))
    _, state = tx.update(grads_at(0), tx.init(params), params)
    updates, after = tx.update(grads_at(1, bad=frozenset({1})), state, params)
    chex.assert_trees_all_equal(after.inner, state.inner)
    chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, updates))
    assert (int(after.consecutive), int(after.skipped)) == (1, 1)


def test_skip_nonfinite_counter_resets_after_a_finite_step():
    params = random_tree(0)
    tx = gk.skip_nonfinite(gk.sgd(0.1))
    state = tx.init(params)
    for step, expected in [(1, 1), (3, 2), (4, 0), (5, 1), (6, 0)]:
        _, state = tx.update(grads_at(step, bad=frozenset({1, 3, 5})), state, params)
        assert int(state.consecutive) == expected
    assert int(state.skipped) == 3


def test_skip_nonfinite_gives_up_after_max_consecutive_and_restarts_the_count():
    # optax #1746: after giving up (applying a non-finite step), apply_if_finite kept counting from where it was,
    # so the next bad step was given up on at once instead of being skipped again.
    params = {"w": jnp.ones(2)}
    tx = gk.skip_nonfinite(gk.sgd(0.1), max_consecutive=2)
    state, applied = tx.init(params), []
    for _ in range(3):
        updates, state = tx.update({"w": jnp.full(2, jnp.nan)}, state, params)
        applied.append(bool(jnp.isnan(updates["w"]).any()))
    assert applied == [False, False, True] and int(state.consecutive) == 0
    updates, state = tx.update({"w": jnp.full(2, jnp.nan)}, state, params)
    assert not jnp.isnan(updates["w"]).any() and int(state.consecutive) == 1  # skipped again


def test_skip_nonfinite_checks_the_resulting_updates_too():
    params = {"w": jnp.ones(2, jnp.float32)}
    tx = gk.skip_nonfinite(gk.scale(1e30))  # finite gradient 1e10 overflows float32 to inf
    updates, state = tx.update({"w": jnp.full(2, 1e10, jnp.float32)}, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], 0.0)
    assert int(state.skipped) == 1


# -- accumulate with skip_nonfinite (optax #828) --------------------------------------------------


def test_skip_outside_accumulate_drops_only_the_bad_micro_batch():
    # optax #828: zero_nans / non-finite handling and MultiSteps did not compose. Here the guard outside drops the
    # bad micro-batch and the round completes with the next one: the same as never seeing the bad micro-batch.
    chex.clear_trace_counter()
    params = random_tree(0)
    bad = frozenset({4, 9, 10})
    ours, _ = run(gk.skip_nonfinite(gk.accumulate(gk.adam(0.05), every=3)), params, steps=24, jit=True, bad=bad)
    clean = [i for i in range(24) if i not in bad]
    tx = gk.accumulate(gk.adam(0.05), every=3)
    state, p = tx.init(params), params
    for i in clean:
        updates, state = tx.update(grads_at(i), state, p)
        p = gk.apply_updates(p, updates)
    assert_close(ours[-1], p)
    assert all(jnp.isfinite(x).all() for x in jax.tree.leaves(ours[-1]))


def test_skip_inside_accumulate_drops_the_round():
    chex.clear_trace_counter()
    params = random_tree(0)
    tx = gk.accumulate(gk.skip_nonfinite(gk.adam(0.05)), every=3)
    ours, state = run(tx, params, steps=12, jit=True, bad=frozenset({4}))
    chex.assert_trees_all_equal(ours[5], ours[2])  # round 4..6 held a NaN: skipped as a whole
    assert int(state.inner.skipped) == 1 and int(state.inner.inner.count) == 3
    assert all(jnp.isfinite(x).all() for x in jax.tree.leaves(ours[-1]))


# -- ema_params -----------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_ema_params_matches_optax_incremental_update(jit):
    chex.clear_trace_counter()
    params = random_tree(0)
    history, _ = run(gk.sgd(0.05, 0.9), params, jit=True)
    update = jax.jit(chex.assert_max_traces(gk.ema_params(gk.sgd(0.05, 0.9), 0.9).update, n=1)) if jit else None
    tx = gk.ema_params(gk.sgd(0.05, 0.9), decay=0.9)
    update = update or tx.update
    state, p, ema = tx.init(params), params, params
    for i in range(STEPS):
        updates, state = update(grads_at(i), state, p)
        p = gk.apply_updates(p, updates)
        ema = optax.incremental_update(p, ema, step_size=1 - 0.9)
        assert_close(p, history[i])  # the updates are the wrapped optimizer's
        assert_close(state.ema, ema)
        chex.assert_trees_all_equal_dtypes(state.ema, params)


def test_ema_params_needs_params():
    tx = gk.ema_params(gk.sgd(0.1))
    with pytest.raises(ValueError, match="ema_params needs the params"):
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


def test_wrappers_reject_bad_arguments():
    with pytest.raises(TypeError, match="tx must be a gradient transformation"):
        gk.skip_nonfinite(0.1)
    with pytest.raises(TypeError, match=r"transforms\['a'\] must be a gradient transformation"):
        gk.partition({"a": "adam"}, {"w": "a"})
    with pytest.raises(ValueError, match="max_consecutive must be an integer >= 0, got -1"):
        gk.skip_nonfinite(gk.sgd(0.1), max_consecutive=-1)
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got 1.5"):
        gk.ema_params(gk.sgd(0.1), decay=1.5)
