"""Lecture 3, chapter 4: verify analytic gradients against numerical ones.

python examples/ch04_gradcheck.py
"""

import jax
import jax.numpy as jnp

import gradkit as gk

k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
with jax.enable_x64(True):  # gradient checks belong in float64
    x = jax.random.normal(k1, (32, 20), jnp.float64)
    params = {"W": gk.init.xavier_normal(k3, (20, 10), jnp.float64), "b": jnp.zeros(10, jnp.float64)}
y = jax.random.randint(k2, (32,), 0, 10)
lam = 1e-3


def loss(params):
    """The lecture's regularized loss: mean cross-entropy of a linear classifier + lambda * L2(W)."""
    data = jnp.mean(gk.losses.softmax_cross_entropy(x @ params["W"] + params["b"], y))
    return data + lam * gk.regularizers.l2(params, mask={"W": True, "b": False})


with jax.enable_x64(True):
    report = gk.gradcheck.check_grads(loss, params)
print(report)
print(f"worst relative error:      {max(c.rel_error for c in report.leaves.values()):.2e}")


# A planted bug: forget the factor 2 in the gradient of the L2 penalty.
@jax.custom_vjp
def l2_buggy(w):
    return jnp.sum(w**2)


l2_buggy.defvjp(lambda w: (l2_buggy(w), w), lambda w, g: (g * w,))


def buggy_loss(params):
    data = jnp.mean(gk.losses.softmax_cross_entropy(x @ params["W"] + params["b"], y))
    return data + 10.0 * l2_buggy(params["W"])


try:
    with jax.enable_x64(True):
        gk.gradcheck.check_grads(buggy_loss, params)
except gk.gradcheck.GradCheckError as error:
    print(f"planted bug caught in:     {error.report.worst}")
    print(f"its relative error:        {error.report.leaves[error.report.worst].rel_error:.2e}")
