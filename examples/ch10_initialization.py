"""Lecture 3, chapter 10: weight initialization. Activations through 50 ReLU layers, and the symmetry problem.

python examples/ch10_initialization.py
"""

import jax
import jax.numpy as jnp

import gradkit as gk

width, depth = 512, 50
key_x, key_w = jax.random.split(jax.random.key(0))
x = jax.random.normal(key_x, (256, width))


def activation_variances(init):
    def layer(h, key):
        h = jax.nn.relu(h @ init(key, (width, width)))
        return h, jnp.var(h)

    return jax.lax.scan(layer, x, jax.random.split(key_w, depth))[1]


too_small = lambda key, shape: 0.01 * jax.random.normal(key, shape)
too_large = lambda key, shape: 0.1 * jax.random.normal(key, shape)
print("variance after layer       1        10        25        50")
for name, init in (("N(0, 0.01^2)", too_small), ("kaiming_normal", gk.init.kaiming_normal), ("N(0, 0.1^2)", too_large)):
    v = jax.jit(activation_variances, static_argnums=0)(init)
    print(f"{name + ':':<21}", *(f"{float(v[i]):9.2e}" for i in (0, 9, 24, 49)))

# Symmetry: a sigmoid MLP, every weight and bias zero, trained with SGD. Every hidden unit stays identical.
k_data, k_w1, k_w2 = jax.random.split(jax.random.key(1), 3)
inputs = jax.random.normal(k_data, (256, 10))
labels = jnp.argmax(inputs[:, :3], axis=1)
hidden = 64


def loss(params):
    h = jax.nn.sigmoid(inputs @ params["w1"] + params["b1"])
    return jnp.mean(gk.losses.softmax_cross_entropy(h @ params["w2"] + params["b2"], labels))


def train(params, steps=300):
    tx = gk.sgd(1.0, momentum=0.9)

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return (gk.apply_updates(params, updates), state), None

    return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[0][0])(params)


def distinct_units(params):
    return len({tuple(col) for col in params["w1"].T.tolist()})


zeros = {
    "w1": gk.init.zeros(k_w1, (10, hidden)),
    "b1": jnp.zeros(hidden),
    "w2": gk.init.zeros(k_w2, (hidden, 3)),
    "b2": jnp.zeros(3),
}
random = {**zeros, "w1": gk.init.xavier_normal(k_w1, (10, hidden)), "w2": gk.init.xavier_normal(k_w2, (hidden, 3))}
for name, start in (("all-zero init", zeros), ("xavier_normal init", random)):
    trained = train(start)
    print(
        f"{name + ':':<21} loss {float(loss(start)):.3f} -> {float(loss(trained)):.3f}, "
        f"distinct hidden units {distinct_units(trained)} of {hidden}"
    )
