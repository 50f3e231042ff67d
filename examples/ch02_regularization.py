"""Lecture 3, chapter 2: regularization. L2 prefers spread weights; L1 (done proximally) gives exact zeros.

python examples/ch02_regularization.py
"""

import jax
import jax.numpy as jnp
import numpy as np

import gradkit as gk

# Worked example: two weight vectors with the same score on x = [1, 1, 1, 1].
x = jnp.ones(4)
w1, w2 = jnp.array([1.0, 0.0, 0.0, 0.0]), jnp.full(4, 0.25)
print(f"scores w1.x, w2.x:          {float(x @ w1):.2f} {float(x @ w2):.2f}")
print(f"L2 penalty w1, w2:          {float(gk.regularizers.l2(w1)):.2f} {float(gk.regularizers.l2(w2)):.2f}")
print(f"L2 prefers w2 by a factor:  {float(gk.regularizers.l2(w1) / gk.regularizers.l2(w2)):.1f}")
print(f"L1 penalty w1, w2:          {float(gk.regularizers.l1(w1)):.2f} {float(gk.regularizers.l1(w2)):.2f}")

# "L1 drives many weights to exactly zero": a sparse regression, 30 features of which 5 matter.
rng = np.random.default_rng(0)
features = jnp.asarray(rng.normal(size=(200, 30)), jnp.float32)
true_w = np.zeros(30)
true_w[:5] = [2.0, -1.5, 1.0, -0.5, 0.25]
targets = features @ jnp.asarray(true_w, jnp.float32) + 0.1 * jnp.asarray(rng.normal(size=200), jnp.float32)
lr, strength = 0.3, 0.05


def data_loss(w):
    return 0.5 * jnp.mean((features @ w - targets) ** 2)


def fit(tx, loss, steps=1500):
    def step(carry, _):
        w, state = carry
        updates, state = tx.update(jax.grad(loss)(w), state, w)
        return (gk.apply_updates(w, updates), state), None

    w = jnp.zeros(30)
    return np.asarray(jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), None, length=steps)[0][0])(w))


subgradient = fit(gk.sgd(lr), lambda w: data_loss(w) + strength * gk.regularizers.l1(w))
proximal = fit(gk.chain(gk.sgd(lr), gk.regularizers.prox_l1(strength, lr)), data_loss)
print(f"subgradient L1 exact zeros: {int((subgradient == 0).sum())} of 30")
print(f"subgradient L1 |w| < 0.03:  {int((np.abs(subgradient) < 0.03).sum())} of 30")
print(f"proximal L1 exact zeros:    {int((proximal == 0).sum())} of 30")
print(f"largest 'zero' subgradient: {np.abs(subgradient[proximal == 0]).max():.2e}")
