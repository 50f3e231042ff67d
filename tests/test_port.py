"""Porting real training programs: a flax nnx and an equinox program, each written the way its docs show, with
parameter groups, masking, gradient accumulation and a schedule, trained with optax and with gradkit (renamed per
docs/combine.md's table): the losses agree to 1e-6 relative.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import gradkit as gk

MICRO_STEPS, EVERY, TOTAL = 24, 2, 12  # 24 micro-batches, 12 applied steps


def data():
    """Two micro-batches of 8, seen 12 times each: the loss on them falls as the net fits."""
    x = jnp.tile(jax.random.normal(jax.random.PRNGKey(7), (EVERY, 8, 4)), (MICRO_STEPS // EVERY, 1, 1))
    return x, jnp.sin(x.sum(-1, keepdims=True))


def is_matrix(params):
    return jax.tree.map(lambda p: p.ndim == 2, params)


def optax_tx():
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.05, warmup_steps=3, decay_steps=TOTAL, end_value=1e-3)
    decay = optax.chain(
        optax.scale_by_adam(),
        optax.masked(optax.add_decayed_weights(1e-2), is_matrix),
        optax.scale_by_learning_rate(schedule),
    )
    groups = {"decay": decay, "no_decay": optax.adam(schedule), "frozen": optax.set_to_zero()}
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.partition(groups, labels_by_path_optax))
    return optax.MultiSteps(tx, every_k_schedule=EVERY)


def gradkit_tx(first_layer: str):
    schedule = gk.schedules.warmup_cosine(0.05, 3, TOTAL, init_value=0.0, end_value=1e-3)
    decay = gk.chain(
        gk.scale_by_adam(),
        gk.masked(gk.add_decayed_weights(1e-2), is_matrix),
        gk.scale_by_learning_rate(schedule),
    )
    groups = {"decay": decay, "no_decay": gk.adam(schedule), "frozen": gk.set_to_zero()}
    labels = gk.labels_by_path({first_layer: "frozen", "*/bias": "no_decay"}, default="decay")
    return gk.accumulate(gk.chain(gk.clip_by_global_norm(1.0), gk.partition(groups, labels)), EVERY)


def labels_by_path_optax(params):
    """The optax program's labels: the first layer frozen, biases without decay, the rest decayed."""

    def label(path, _):
        keys = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
        if keys[:1] == ["linear1"] or keys[:2] == ["layers", "0"]:
            return "frozen"
        return "no_decay" if "bias" in keys else "decay"

    return jax.tree_util.tree_map_with_path(label, params)


# -- flax nnx -------------------------------------------------------------------------------------


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(4, 16, rngs=rngs)
        self.linear2 = nnx.Linear(16, 16, rngs=rngs)
        self.linear3 = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.linear3(nnx.relu(self.linear2(nnx.relu(self.linear1(x)))))


def train_nnx(tx) -> np.ndarray:
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return jnp.mean((model(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    xs, ys = data()
    return np.asarray([float(train_step(model, optimizer, x, y)) for x, y in zip(xs, ys)])


@pytest.mark.slow  # two nnx.jit compiles: ~8 s of CPU
def test_flax_nnx_program_trains_the_same_with_gradkit():
    theirs = train_nnx(optax_tx())
    ours = train_nnx(gradkit_tx("linear1"))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours[-EVERY:].mean() < 0.8 * ours[:EVERY].mean()


# -- equinox --------------------------------------------------------------------------------------


def train_eqx(tx) -> np.ndarray:
    model = eqx.nn.MLP(4, 1, 16, 2, key=jax.random.PRNGKey(0))
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def make_step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2))(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    losses = []
    for x, y in zip(*data()):
        model, opt_state, loss = make_step(model, opt_state, x, y)
        losses.append(float(loss))
    return np.asarray(losses)


@pytest.mark.slow  # two filter_jit compiles: ~6 s of CPU
def test_equinox_program_trains_the_same_with_gradkit():
    theirs = train_eqx(optax_tx().gradient_transformation())
    ours = train_eqx(gradkit_tx("layers/0"))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours[-EVERY:].mean() < 0.8 * ours[:EVERY].mean()
