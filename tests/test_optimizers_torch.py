"""The optimizers against torch.optim in float64: trajectories equal to 1e-6 relative.

Argument mapping (gradkit -> torch.optim):
- sgd(lr, momentum, nesterov, weight_decay)      -> SGD(lr, momentum, nesterov=..., weight_decay=...) (dampening=0)
- adagrad(lr, initial_accumulator_value, eps)    -> Adagrad(lr, initial_accumulator_value=..., eps=...) (lr_decay=0;
                                                    torch's default eps is 1e-10, gradkit's the lecture's 1e-7)
- rmsprop(lr, decay, eps)                        -> RMSprop(lr, alpha=decay, eps=eps) (torch's default alpha is 0.99,
                                                    gradkit's the lecture's 0.999)
- adam(lr, b1, b2, eps, weight_decay=wd)         -> Adam(lr, betas=(b1, b2), eps=eps, weight_decay=wd) (coupled L2)
- adamw(lr, b1, b2, eps, weight_decay=wd)        -> AdamW(lr, betas=(b1, b2), eps=eps, weight_decay=wd) (torch's default
                                                    wd is also 0.01)
Both sides get the same gradient, computed in NumPy from the current params, so only the optimizers are compared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import requires_torch

import gradkit as gk

STEPS = 100

CASES = {
    "sgd": (lambda: gk.sgd(0.05), lambda p, t: t.SGD(p, lr=0.05)),
    "momentum": (lambda: gk.sgd(0.05, momentum=0.9), lambda p, t: t.SGD(p, lr=0.05, momentum=0.9)),
    "nesterov_weight_decay": (
        lambda: gk.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
        lambda p, t: t.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    ),
    "adagrad": (
        lambda: gk.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-10),
        lambda p, t: t.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=1e-10),
    ),
    "adagrad_defaults_eps": (lambda: gk.adagrad(0.1), lambda p, t: t.Adagrad(p, lr=0.1, eps=1e-7)),
    "rmsprop": (
        lambda: gk.rmsprop(0.01, decay=0.99, eps=1e-8),
        lambda p, t: t.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8),
    ),
    "adam": (lambda: gk.adam(1e-2), lambda p, t: t.Adam(p, lr=1e-2)),
    "adam_weight_decay": (
        lambda: gk.adam(1e-2, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
        lambda p, t: t.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ),
    "adamw": (
        lambda: gk.adamw(1e-2, weight_decay=0.1),
        lambda p, t: t.AdamW(p, lr=1e-2, weight_decay=0.1),
    ),
}


def gradient(p: np.ndarray) -> np.ndarray:
    """The gradient of sum(0.5 * 3 * p^2 + sin(p)): a bowl with ripples."""
    return 3.0 * p + np.cos(p)


@requires_torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_optim_float64(name):
    import torch

    ours, theirs = CASES[name]
    rng = np.random.default_rng(0)
    start = {"w": rng.normal(size=(5, 4)), "b": rng.normal(size=(4,))}
    with jax.enable_x64(True):
        tx = ours()
        params = jax.tree.map(jnp.asarray, start)
        state = tx.init(params)
        step = jax.jit(lambda p, s, g: tx.update(g, s, p))

        tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start.items()}
        opt = theirs(list(tensors.values()), torch.optim)

        for i in range(STEPS):
            grads = {k: gradient(np.asarray(v)) for k, v in params.items()}
            updates, state = step(params, state, grads)
            params = gk.apply_updates(params, updates)

            for k, t in tensors.items():
                t.grad = torch.tensor(gradient(t.detach().numpy()), dtype=torch.float64)
            opt.step()

            for k in start:
                np.testing.assert_allclose(
                    np.asarray(params[k]),
                    tensors[k].detach().numpy(),
                    rtol=1e-6,
                    atol=1e-12,
                    err_msg=f"{name}, step {i}",
                )
