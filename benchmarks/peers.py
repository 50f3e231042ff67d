"""The optax and torch peers of ``gradkit bench``, kept out of the gradkit package (which never imports
either): importing this module registers them in ``gradkit.bench.peers``. ``python -m benchmarks`` and
``gradkit bench`` run from a checkout load it; see ``gradkit.bench.peers`` for what each peer times.

torch: ``torch.optim.AdamW`` / ``SGD`` with ``foreach=False`` (for-loop), ``foreach=True`` and ``fused=True``,
on CPU, or on CUDA when JAX runs on a GPU; ``p.grad`` is set once (never cleared, so every step sees the same
gradients, as the JAX peers do) and ``step()`` is timed. torch is imported only when asked for.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from gradkit.bench import peers
from gradkit.bench.cases import ADAMW, SGD, Case
from gradkit.bench.peers import TORCH_VARIANTS, Stepper


def optax_optimizer(optimizer: str) -> tuple[Any, Any]:
    """optax's AdamW or SGD with momentum, with the hyperparameters gradkit's peer uses."""
    import optax

    tx = optax.adamw(**ADAMW) if optimizer == "adamw" else optax.sgd(SGD["learning_rate"], momentum=SGD["momentum"])
    return tx, optax.apply_updates


def torch_device(threads: int | None = None) -> tuple[str | None, str]:
    """The torch device matching JAX's backend, or ``(None, reason)`` when torch cannot do the same work.

    ``threads`` sets ``torch.set_num_threads`` (None keeps torch's default).
    """
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if threads is not None:
        torch.set_num_threads(threads)
    backend = jax.default_backend()
    if backend == "cpu":
        return "cpu", f"torch {torch.__version__} on CPU ({torch.get_num_threads()} threads)"
    if backend == "gpu" and torch.cuda.is_available():
        return "cuda", f"torch {torch.__version__} on {torch.cuda.get_device_name()}"
    return None, f"torch {torch.__version__} cannot run on JAX's backend {backend!r} (no CUDA build)"


def torch_stepper(variant: str, case: Case, params: dict, grads: dict, device: str) -> Stepper | str:
    """A torch optimizer stepping in place; a string saying why when this variant is unsupported here."""
    import torch

    dtype = getattr(torch, case.dtype)
    ps = [torch.tensor(v, dtype=dtype, device=device, requires_grad=True) for v in params.values()]
    for p, g in zip(ps, grads.values(), strict=True):
        p.grad = torch.tensor(g, dtype=dtype, device=device)
    options = TORCH_VARIANTS[variant]
    try:
        if case.optimizer == "adamw":
            h = ADAMW
            opt = torch.optim.AdamW(
                ps,
                lr=h["learning_rate"],
                betas=(h["b1"], h["b2"]),
                eps=h["eps"],
                weight_decay=h["weight_decay"],
                **options,
            )
        else:
            opt = torch.optim.SGD(ps, lr=SGD["learning_rate"], momentum=SGD["momentum"], **options)
        opt.step()  # unsupported combinations raise here, not at construction (jax_stepper steps once too)
    except (RuntimeError, ValueError, TypeError) as e:
        return f"n/a: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        opt.step()
        sync()

    def host_params() -> dict[str, np.ndarray]:
        return {k: p.detach().float().cpu().numpy() for k, p in zip(params, ps, strict=True)}

    return Stepper(step, host_params)


peers.OPTIMIZER_PEERS["optax"] = optax_optimizer
peers.TORCH.update(device=torch_device, stepper=torch_stepper)
