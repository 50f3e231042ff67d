"""A user's training step, written as the README shows: pyright must accept it (tests/test_types.py)."""

import jax
import jax.numpy as jnp

import gradkit as gk

params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
lr = gk.schedules.warmup_cosine(1e-3, 10, 100)
tx: gk.GradientTransformation = gk.chain(gk.clip_by_global_norm(1.0), gk.adamw(learning_rate=lr))
state = tx.init(params)


def loss(p: dict[str, jax.Array]) -> jax.Array:
    return jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2)


grads = jax.grad(loss)(params)
updates, state = tx.update(grads, state, params)
params = gk.apply_updates(params, updates)
first: jax.Array = lr(5)  # a schedule takes an int step, a float or an array
later: jax.Array = lr(jnp.arange(3))
