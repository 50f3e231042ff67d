"""The optimizers beyond the lecture against torch.optim in float64: trajectories equal to 1e-6 relative, 60 steps.

Argument mapping (gradkit -> torch.optim):
- nadam(lr, b1, b2, eps, momentum_decay, weight_decay, decoupled_weight_decay)
      -> NAdam(lr, betas=(b1, b2), eps, weight_decay, momentum_decay, decoupled_weight_decay) (same defaults)
- radam(lr, b1, b2, eps=0, weight_decay, decoupled_weight_decay)
      -> RAdam(lr, betas, eps=0, weight_decay, decoupled_weight_decay): torch adds eps to sqrt(v) before the bias
         correction, gradkit (and optax) to sqrt(v_hat); the two agree exactly only at eps=0, compared there
- amsgrad(lr, b1, b2, eps, weight_decay)         -> Adam(lr, betas, eps, weight_decay, amsgrad=True)
- amsgrad(..., decoupled_weight_decay=True)      -> AdamW(lr, betas, eps, weight_decay, amsgrad=True)
- adamax(lr, b1, b2, eps, weight_decay)          -> Adamax(lr, betas, eps, weight_decay)
- adadelta(lr, rho, eps, weight_decay)           -> Adadelta(lr, rho, eps, weight_decay)
- adafactor(lr, decay_exponent, eps, eps2, clipping_threshold, weight_decay)
      -> Adafactor(lr, beta2_decay=-decay_exponent, eps=(eps, eps2), d=clipping_threshold, weight_decay)
- muon(lr, momentum, nesterov, weight_decay, ns_coefficients, ns_steps, eps, adam_*)
      -> Muon(lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps) on the matrices, stored
         transposed (torch's (out, in) is gradkit's (in, out)), plus AdamW(lr, betas=(adam_b1, adam_b2),
         eps=adam_eps, weight_decay=adam_weight_decay) on the vector. torch runs Newton-Schulz in bfloat16; the
         exact comparison replaces it with the same iteration in float64 (written below from the paper), and a
         separate test bounds the bfloat16 difference.
Both sides get the same gradient, computed in NumPy from the current params, so only the optimizers are compared.
torch keeps NAdam's momentum product (and every step counter) in its default scalar dtype, float32 unless the default
dtype is float64: with float32 NAdam is 1.5e-7 to 2.9e-7 apart after 60 steps, so torch runs with float64 as its
default dtype here (then the largest difference measured is 1.4e-10, rounding amplified where gradients pass within
1e-5 of zero with eps=1e-8; 1e-13 with eps=1e-4; every other case is within 3e-13).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import requires_torch

import gradkit as gk

STEPS = 60

CASES = {
    "nadam": (lambda: gk.nadam(1e-2), lambda p, t: t.NAdam(p, lr=1e-2)),
    "nadam_l2": (
        lambda: gk.nadam(1e-2, b1=0.8, b2=0.99, eps=1e-6, momentum_decay=1e-2, weight_decay=0.1),
        lambda p, t: t.NAdam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, momentum_decay=1e-2, weight_decay=0.1),
    ),
    "nadamw": (
        lambda: gk.nadam(1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p, t: t.NAdam(p, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
    ),
    "radam_l2": (
        lambda: gk.radam(1e-2, b1=0.8, b2=0.99, eps=0.0, weight_decay=0.1),
        lambda p, t: t.RAdam(p, lr=1e-2, betas=(0.8, 0.99), eps=0.0, weight_decay=0.1),
    ),
    "radamw": (
        lambda: gk.radam(1e-2, eps=0.0, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p, t: t.RAdam(p, lr=1e-2, eps=0.0, weight_decay=0.1, decoupled_weight_decay=True),
    ),
    "amsgrad": (lambda: gk.amsgrad(1e-2), lambda p, t: t.Adam(p, lr=1e-2, amsgrad=True)),
    "amsgradw": (
        lambda: gk.amsgrad(1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p, t: t.AdamW(p, lr=1e-2, weight_decay=0.1, amsgrad=True),
    ),
    "adamax_l2": (
        lambda: gk.adamax(1e-2, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
        lambda p, t: t.Adamax(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ),
    "adadelta": (gk.adadelta, lambda p, t: t.Adadelta(p)),
    "adadelta_l2": (
        lambda: gk.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.1),
        lambda p, t: t.Adadelta(p, lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1),
    ),
    "adafactor": (gk.adafactor, lambda p, t: t.Adafactor(p)),
    "adafactor_decay": (
        lambda: gk.adafactor(0.1, decay_exponent=0.5, eps=1e-20, eps2=1e-2, clipping_threshold=2.0, weight_decay=0.1),
        lambda p, t: t.Adafactor(p, lr=0.1, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.1),
    ),
}


def gradient(p: np.ndarray) -> np.ndarray:
    """The gradient of sum(0.5 * 3 * p^2 + sin(p)): a bowl with ripples."""
    return 3.0 * p + np.cos(p)


def start_point() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=(5, 4)), "b": rng.normal(size=(4,))}


def run_both(tx, torch_optimizers, tensors, transposed=()):
    """STEPS steps of ``tx`` (one compiled step) and of the torch optimizers; asserts equal params at each step."""
    import torch

    start = {k: t.detach().numpy().copy() for k, t in tensors.items()}
    start = {k: v.T if k in transposed else v for k, v in start.items()}
    params = jax.tree.map(jnp.asarray, start)
    state = tx.init(params)
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    for i in range(STEPS):
        grads = {k: gradient(np.asarray(v)) for k, v in params.items()}
        updates, state = step(params, state, grads)
        params = gk.apply_updates(params, updates)
        for t in tensors.values():
            t.grad = torch.tensor(gradient(t.detach().numpy()), dtype=torch.float64)
        for opt in torch_optimizers:
            opt.step()
        for k, t in tensors.items():
            theirs = t.detach().numpy()
            np.testing.assert_allclose(
                np.asarray(params[k]),
                theirs.T if k in transposed else theirs,
                rtol=1e-6,
                atol=1e-12,
                err_msg=f"step {i}",
            )


@requires_torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_optim_float64(name):
    import torch

    ours, theirs = CASES[name]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch's scalar state (NAdam's mu_product) follows the default dtype
    try:
        with jax.enable_x64(True):
            tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start_point().items()}
            run_both(ours(), [theirs(list(tensors.values()), torch.optim)], tensors)
    finally:
        torch.set_default_dtype(default)


def newton_schulz_float64(grad, ns_coefficients, ns_steps, eps):
    """torch Muon's orthogonalisation (Jordan et al.), in the input's dtype instead of bfloat16."""
    a, b, c = ns_coefficients
    tall = grad.size(0) > grad.size(1)
    x = grad.T if tall else grad
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


MUON_CASES = {
    "defaults": ({}, {}),
    "plain_momentum_no_decay": (
        {"learning_rate": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "ns_steps": 3},
        {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "ns_steps": 3},
    ),
}


@requires_torch
@pytest.mark.parametrize("name", sorted(MUON_CASES))
def test_muon_matches_torch_muon_with_float64_newton_schulz(name, monkeypatch):
    import torch
    from torch.optim import _muon

    monkeypatch.setattr(_muon, "_zeropower_via_newtonschulz", newton_schulz_float64)
    ours, theirs = MUON_CASES[name]
    lr = theirs.get("lr", 1e-3)
    with jax.enable_x64(True):
        start = start_point()
        start["w"] = start["w"].T  # torch holds (out, in) = (4, 5), gradkit (in, out) = (5, 4): the fan ratio differs
        tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start.items()}
        muon = torch.optim.Muon([tensors["w"]], **theirs)
        adamw = torch.optim.AdamW([tensors["b"]], lr=lr, weight_decay=0.0)
        run_both(gk.muon(**ours, adam_weight_decay=0.0), [muon, adamw], tensors, transposed=("w",))


@requires_torch
def test_muon_step_is_torch_bfloat16_muon_step_to_bfloat16_precision():
    """torch orthogonalises in bfloat16 (8 mantissa bits): one step agrees to about 1%, not to 1e-6."""
    import torch

    with jax.enable_x64(True):
        w = np.random.default_rng(1).normal(size=(6, 4))
        tensor = torch.tensor(w.T, requires_grad=True)
        tensor.grad = torch.tensor(gradient(w.T))
        torch.optim.Muon([tensor], lr=1.0, weight_decay=0.0).step()
        tx = gk.muon(1.0, weight_decay=0.0)
        updates, _ = tx.update({"w": gradient(w)}, tx.init({"w": jnp.asarray(w)}), {"w": jnp.asarray(w)})
        theirs = tensor.detach().numpy().T - w
        assert np.abs(np.asarray(updates["w"]) - theirs).max() < 2e-2 * np.abs(theirs).max()
        assert np.abs(np.asarray(updates["w"]) - theirs).max() > 1e-6 * np.abs(theirs).max()  # it is bfloat16
