"""Quick start: fit a small linear regression with gk.adamw and watch the loss fall.

python examples/quickstart.py
"""

import jax
import jax.numpy as jnp

import gradkit as gk

key_x, key_w, key_noise = jax.random.split(jax.random.key(0), 3)
x = jax.random.normal(key_x, (256, 8))
true_w = jax.random.normal(key_w, (8,))
y = x @ true_w + 0.1 * jax.random.normal(key_noise, (256,))

params = {"w": jnp.zeros(8), "b": jnp.zeros(())}


def loss(params):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


# Decoupled weight decay on the weights only, not on the bias.
tx = gk.adamw(learning_rate=0.05, weight_decay=1e-4, mask=lambda p: {"w": True, "b": False})
state = tx.init(params)


@jax.jit
def step(params, state):
    value, grads = jax.value_and_grad(loss)(params)
    updates, state = tx.update(grads, state, params)
    return gk.apply_updates(params, updates), state, value


for i in range(301):
    params, state, value = step(params, state)
    if i % 50 == 0:
        print(f"step {i:4d}  loss {float(value):.5f}")

print(
    f"final loss {float(loss(params)):.5f} (noise floor ~0.01); |w - true_w| = {float(jnp.linalg.norm(params['w'] - true_w)):.4f}"
)
