"""with_hyperparams and reduce_on_plateau: against the plain optimizers, optax and torch's schedulers.

Each optax bug named in issue 11 has a regression test here that fails on the buggy behaviour:
- #583 / #1532 (trajectory drift): test_trajectory_is_bit_identical_to_the_plain_optimizer; the same harness
  measures optax's own drift so the test is known to be sensitive to it.
- #415 (schedule off by one): test_first_update_uses_schedule_at_step_0.
- #412 (jit of init): test_jit_of_init_works_and_gives_the_same_state.
torch mapping for reduce_on_plateau: lr = base lr * scale, min_lr -> min_scale * lr, one scheduler.step(metric)
-> accumulation_size updates whose mean loss is the metric, eps=0 (gradkit applies every reduction).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_tree, requires_torch
from test_optimizers_optax import gradients, not_bias

import gradkit as gk

STEPS = 50


def trajectory(tx, params, steps=STEPS, every=None, state=None, start=0, fused=True):
    """Params after each step; ``every(t, state)`` may rewrite the state between steps.

    ``fused``: gradient, update and apply in one jitted function (fast). Then XLA may fold the plain optimizer's
    constant hyperparameters into the surrounding arithmetic (reassociating a product), which it cannot do with
    values held in the state: the two differ by an ulp at a few steps. ``fused=False`` jits the update alone.
    """

    def step(params, state, t):
        updates, state = tx.update(gradients(params, t), state, params)
        return gk.apply_updates(params, updates), state

    def unfused(params, state, t):
        updates, state = update(gradient(params, t), state, params)
        return apply(params, updates), state

    chex.clear_trace_counter()
    update = jax.jit(chex.assert_max_traces(tx.update, n=1))
    gradient, apply = jax.jit(gradients), jax.jit(gk.apply_updates)
    step = jax.jit(chex.assert_max_traces(step, n=1)) if fused else unfused
    state, out = tx.init(params) if state is None else state, []
    for t in range(start, steps):
        if every is not None:
            state = every(t, state)
        params, state = step(params, state, jnp.asarray(t, jax.tree.leaves(params)[0].dtype))
        out.append(params)
    return out, state


def max_difference(a, b):
    return max(float(jnp.max(jnp.abs(x - y), initial=0.0)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


SCHEDULE = gk.schedules.warmup_cosine(0.05, 10, STEPS)
PLAIN_VS_WRAPPED = {
    "adam": (gk.adam, {"learning_rate": 0.01}),
    "adamw_schedule_mask": (gk.adamw, {"learning_rate": SCHEDULE, "weight_decay": 0.1, "mask": not_bias}),
    "nadam_b2_0.9999": (gk.adam, {"learning_rate": 0.01, "b1": 0.95, "b2": 0.9999, "nesterov": True}),
    "adam_bf16_mu": (gk.adam, {"learning_rate": 0.01, "mu_dtype": jnp.bfloat16}),
    "sgd_nesterov_l2": (gk.sgd, {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    "rmsprop": (gk.rmsprop, {"learning_rate": 0.01, "decay": 0.99}),
}


@pytest.mark.parametrize("name", sorted(PLAIN_VS_WRAPPED))
def test_trajectory_matches_the_plain_optimizer_to_an_ulp(name):
    """optax #583/#1532: inject_hyperparams(adam) drifts from adam (1 - b2 is formed from float32(b2)).

    Here every step stays within 1e-7 relative (about one float32 ulp; bit-identical with the update jitted alone,
    see the next test), where optax's drift in the same harness is above 1e-6 (test below).
    """
    fn, kwargs = PLAIN_VS_WRAPPED[name]
    params = random_tree(3)
    plain, _ = trajectory(fn(**kwargs), params)
    wrapped, state = trajectory(gk.with_hyperparams(fn)(**kwargs), params)
    for a, b in zip(plain, wrapped):
        chex.assert_trees_all_close(a, b, rtol=1e-7, atol=1e-7)
    assert "learning_rate" in state.hyperparams and state.hyperparams["learning_rate"].dtype == jnp.float32


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_trajectory_is_bit_identical_with_the_update_jitted_alone(dtype):
    """Also with bfloat16 params, whose dtype optax gives the hyperparameters (b2 = 0.999 becomes 1.0)."""
    params = random_tree(3, dtype)
    plain, _ = trajectory(gk.adam(0.01, b2=0.9999), params, fused=False)
    wrapped, state = trajectory(gk.with_hyperparams(gk.adam)(0.01, b2=0.9999), params, fused=False)
    chex.assert_trees_all_equal(plain, wrapped)
    assert state.hyperparams["b2"].dtype == jnp.float32 and float(state.hyperparams["b2"]) == np.float32(0.9999)


def test_optax_inject_hyperparams_drifts_in_the_same_harness():
    """The harness above sees the optax bug: the same comparison on optax differs by far more than rounding."""
    params = random_tree(3)
    plain, _ = trajectory(optax.adam(0.01), params)
    injected, _ = trajectory(optax.inject_hyperparams(optax.adam)(learning_rate=0.01), params)
    assert max_difference(plain, injected) > 1e-6


def test_first_update_uses_schedule_at_step_0():
    """optax #415: inject_hyperparams used to give the first update schedule(1); scale_by_schedule gives schedule(0)."""
    params = {"w": jnp.ones(3)}
    wrapped = gk.with_hyperparams(gk.scale)(factor=lambda count: count + 1.0)
    reference = optax.scale_by_schedule(lambda count: count + 1.0)
    sw, sr = wrapped.init(params), reference.init(params)
    assert float(sw.hyperparams["factor"]) == 1.0  # the value the first update will use
    for t in range(5):
        uw, sw = wrapped.update(params, sw)
        ur, sr = reference.update(params, sr)
        chex.assert_trees_all_equal(uw, ur)
        np.testing.assert_array_equal(uw["w"], t + 1.0)
        assert float(sw.hyperparams["factor"]) == t + 2.0  # the next update's value


def test_jit_of_init_works_and_gives_the_same_state():
    """optax #412: jit(inject_hyperparams(adafactor)(...).init) fails, min_dim_size_to_factor being traced.

    Integers (sizes, counts), bools and dtypes stay fixed here; the float hyperparameters are data.
    """
    params = random_tree(4)
    for tx in (
        gk.with_hyperparams(optax.adafactor)(learning_rate=0.1),
        gk.with_hyperparams(gk.adamw)(learning_rate=SCHEDULE, weight_decay=0.0),
    ):
        chex.assert_trees_all_equal(jax.jit(tx.init)(params), tx.init(params))
    state = gk.with_hyperparams(optax.adafactor)(learning_rate=0.1).init(params)
    assert set(state.hyperparams) == {"learning_rate", "decay_rate", "clipping_threshold", "eps"}


def test_set_hyperparams_takes_effect_without_recompiling():
    """Setting lr and b2 at step 20 (inside a jitted loop traced once) gives, bit for bit, the plain optimizer built
    with the new values continuing from the same state."""
    params = random_tree(5)

    def change(t, state):
        return gk.set_hyperparams(state, learning_rate=0.003, b2=0.99) if t == 20 else state

    wrapped, state = trajectory(gk.with_hyperparams(gk.adam)(0.01), params, every=change, fused=False)
    first, plain_state = trajectory(gk.adam(0.01), params, steps=20, fused=False)
    then, _ = trajectory(gk.adam(0.003, b2=0.99), first[-1], state=plain_state, start=20, fused=False)
    chex.assert_trees_all_equal(wrapped, first + then)
    assert float(state.hyperparams["learning_rate"]) == np.float32(0.003)


def test_writing_a_python_float_into_the_dict_does_not_recompile():
    tx = gk.with_hyperparams(gk.sgd)(0.1)
    params = {"w": jnp.ones(2)}
    chex.clear_trace_counter()
    update = jax.jit(chex.assert_max_traces(tx.update, n=1))
    state = tx.init(params)
    for lr in [0.1, 0.5, 0.25]:
        state.hyperparams["learning_rate"] = lr
        updates, state = update({"w": jnp.ones(2)}, state, params)
        np.testing.assert_array_equal(updates["w"], -np.float32(lr))


def test_set_hyperparams_finds_nested_states_and_rejects_unknown_names():
    tx = gk.chain(gk.clip_by_global_norm(1.0), gk.with_hyperparams(gk.sgd)(0.1))
    state = gk.set_hyperparams(tx.init({"w": jnp.ones(2)}), learning_rate=0.2)
    assert float(state.inner[1].hyperparams["learning_rate"]) == np.float32(0.2)
    with pytest.raises(ValueError, match=r"no with_hyperparams state holds \['lr'\]"):
        gk.set_hyperparams(state, lr=0.2)
    with pytest.raises(ValueError, match="static names"):
        gk.with_hyperparams(gk.sgd, static="lr")
    with pytest.raises(ValueError, match="learning_rate must be >= 0, got -1.0"):
        gk.with_hyperparams(gk.sgd)(-1.0)


def test_matches_optax_inject_hyperparams_in_float64():
    """Where optax's float32 drift cannot show (float64), the two wrappers agree step for step, lr schedule included."""
    with jax.enable_x64(True):
        params = random_tree(6, jnp.float64)
        sched = optax.cosine_decay_schedule(0.05, STEPS)
        ours, _ = trajectory(gk.with_hyperparams(gk.adam)(sched, b1=0.8), params)
        theirs, _ = trajectory(optax.inject_hyperparams(optax.adam)(sched, b1=0.8), params)
        chex.assert_trees_all_close(ours, theirs, rtol=1e-12, atol=1e-12)


# -- against torch ----------------------------------------------------------------------------------


def torch_lrs(make_scheduler, steps, base_lr=1.0):
    """torch's lr for each of ``steps`` optimizer steps, a scheduler.step() after each."""
    import torch

    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


@requires_torch
def test_injected_schedule_reads_back_as_torch_scheduler_lr():
    """state.hyperparams["learning_rate"] before each update, and the lr that update applied, equal torch's lr.

    Mapping: StepLR(step_size, gamma) -> step_decay(lr, step_size, gamma); MultiStepLR -> multistep_decay;
    ExponentialLR(gamma) -> exponential_decay(lr, gamma); CosineAnnealingLR(T_max, eta_min) -> cosine_annealing.
    """
    import torch.optim.lr_scheduler as S

    cases = [
        (gk.schedules.step_decay(1.0, 7, 0.5), lambda o: S.StepLR(o, 7, 0.5)),
        (gk.schedules.multistep_decay(1.0, [10, 25], 0.1), lambda o: S.MultiStepLR(o, [10, 25], 0.1)),
        (gk.schedules.exponential_decay(1.0, 0.95), lambda o: S.ExponentialLR(o, 0.95)),
        (gk.schedules.cosine_annealing(1.0, STEPS, 0.01), lambda o: S.CosineAnnealingLR(o, STEPS, 0.01)),
    ]
    with jax.enable_x64(True):
        for schedule, make in cases:
            tx = gk.with_hyperparams(gk.sgd)(schedule)
            params = {"w": jnp.zeros(1)}

            def step(state, _, tx=tx, params=params):
                updates, new = tx.update({"w": jnp.ones(1)}, state, params)
                return new, (state.hyperparams["learning_rate"], -updates["w"][0])

            _, (read, applied) = jax.jit(lambda s: jax.lax.scan(step, s, length=STEPS))(tx.init(params))
            expected = torch_lrs(make, STEPS)
            np.testing.assert_allclose(read, expected, rtol=1e-6, atol=1e-12)
            np.testing.assert_allclose(applied, expected, rtol=1e-6, atol=1e-12)


PLATEAU_LOSSES = np.concatenate(
    [np.linspace(5.0, 3.0, 8), np.full(6, 3.0), [2.9995, 2.9, 2.9], np.full(9, 2.9), [3.5, 2.0], np.full(14, 2.0)]
)

PLATEAU_CASES = [
    {"factor": 0.5, "patience": 2},
    {"factor": 0.5, "patience": 2, "cooldown": 3},
    {"factor": 0.3, "patience": 1, "min_scale": 0.05, "threshold": 0.01, "threshold_mode": "abs"},
    {"factor": 0.5, "patience": 3, "threshold": 1e-3, "mode": "max"},
    {"factor": 0.1, "patience": 0, "cooldown": 1, "threshold_mode": "abs", "mode": "max", "min_scale": 1e-3},
]


@requires_torch
@pytest.mark.parametrize("accumulation_size", [1, 3])
def test_reduce_on_plateau_matches_torch(accumulation_size):
    """The scale applied to each update equals torch ReduceLROnPlateau's lr (base lr 1) step for step."""
    import torch

    for kwargs in PLATEAU_CASES:
        losses = PLATEAU_LOSSES if kwargs.get("mode") != "max" else 10 - PLATEAU_LOSSES
        losses = (
            np.repeat(losses, accumulation_size)
            + np.tile(np.array([0.01, -0.02, 0.01])[:accumulation_size], 50)[: len(losses) * accumulation_size]
        )
        p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = torch.optim.SGD([p], lr=1.0)
        torch_kwargs = {k: v for k, v in kwargs.items() if k != "min_scale"}
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, min_lr=kwargs.get("min_scale", 0.0), eps=0.0, **torch_kwargs
        )
        expected = []
        for i in range(len(losses)):
            expected.append(opt.param_groups[0]["lr"])
            if (i + 1) % accumulation_size == 0:
                sched.step(float(np.mean(losses[i + 1 - accumulation_size : i + 1])))

        tx = gk.reduce_on_plateau(accumulation_size=accumulation_size, **kwargs)
        chex.clear_trace_counter()
        update = jax.jit(chex.assert_max_traces(tx.update, n=1))
        state, applied = tx.init({"w": jnp.zeros(1)}), []
        for loss in losses:
            updates, state = update({"w": jnp.ones(1)}, state, value=jnp.float32(loss))
            applied.append(float(updates["w"][0]))
        np.testing.assert_allclose(applied, expected, rtol=1e-6, err_msg=str(kwargs))
        assert min(expected) < 1.0  # the loss sequence does make torch reduce


def test_reduce_on_plateau_in_a_chain_gets_the_loss_and_checks_its_arguments():
    tx = gk.chain(gk.sgd(0.1), gk.reduce_on_plateau(factor=0.5, patience=0))
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    for loss in [1.0, 1.0, 1.0]:
        updates, state = tx.update({"w": jnp.ones(2)}, state, params, value=loss)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5, rtol=1e-6)  # one reduction after the second loss
    assert float(state.inner[-1].scale) == 0.25
    with pytest.raises(ValueError, match="needs the loss"):
        tx.update({"w": jnp.ones(2)}, state, params)
    with pytest.raises(ValueError, match="factor must be in"):
        gk.reduce_on_plateau(factor=1.5)
    with pytest.raises(ValueError, match="threshold_mode must be one of 'rel', 'abs'"):
        gk.reduce_on_plateau(threshold_mode="relative")
