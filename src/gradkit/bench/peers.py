"""The peers, each doing the same work on the same tree: one optimizer step, in place where they can.

gradkit packed: the same gradkit step on ``gk.pack(params)`` and packed gradients (a few buffers).
gradkit and optax: ``update`` + ``apply_updates`` in one ``jax.jit`` with the params and the state
donated (``donate_argnums=(0, 1)``), the gradients passed in (not donated), compiled ahead of time.
torch: ``torch.optim.AdamW`` / ``SGD`` with ``foreach=False`` (for-loop), ``foreach=True`` and
``fused=True``, on CPU, or on CUDA when JAX runs on a GPU; ``p.grad`` is set once (never cleared, so
every step sees the same gradients, as the JAX peers do) and ``step()`` is timed.
torch is imported here only, and only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.bench import timing
from gradkit.bench.cases import ADAMW, SGD, Case

TORCH_VARIANTS = {
    "torch for-loop": {"foreach": False},
    "torch foreach": {"foreach": True},
    "torch fused": {"fused": True},
}


@dataclass
class Stepper:
    """A peer ready to step: ``step()`` runs one blocking step; ``params()`` returns host float32 params."""

    step: Callable[[], None]
    params: Callable[[], dict[str, np.ndarray]]
    info: dict[str, Any] = field(default_factory=dict)  # compile time, memory, HLO counts


def jax_optimizer(library: str, optimizer: str) -> tuple[Any, Callable]:
    """``(transformation, apply_updates)`` for ``library`` in {"gradkit", "optax"} with the shared hyperparameters."""
    if library == "gradkit":
        import gradkit as gk

        tx = gk.adamw(**ADAMW) if optimizer == "adamw" else gk.sgd(SGD["learning_rate"], momentum=SGD["momentum"])
        return tx, gk.apply_updates
    import optax

    tx = optax.adamw(**ADAMW) if optimizer == "adamw" else optax.sgd(SGD["learning_rate"], momentum=SGD["momentum"])
    return tx, optax.apply_updates


def jax_stepper(library: str, case: Case, params: dict, grads: dict, packed: bool = False) -> Stepper:
    """A jitted, donated ``update + apply_updates`` step for gradkit (on the tree or packed) or optax."""
    import gradkit as gk
    from gradkit.bench import spec

    tx, apply_updates = (
        (spec.optimizer(case.spec), gk.apply_updates) if case.spec else jax_optimizer(library, case.optimizer)
    )

    def step_fn(p: Any, s: Any, g: Any) -> tuple[Any, Any]:
        updates, s = tx.update(g, s, p)
        return apply_updates(p, updates), s

    p = {k: jnp.asarray(v, case.dtype) for k, v in params.items()}
    g = {k: jnp.asarray(v, case.dtype) for k, v in grads.items()}
    if packed:
        p, g = gk.pack(p), gk.pack(g)
    s = tx.init(p)
    state_elements = sum(x.size for x in jax.tree.leaves(s) if jnp.issubdtype(x.dtype, jnp.inexact))
    compiled, lower_s, compile_s = timing.compile_step(step_fn, (p, s, g), donate_argnums=(0, 1))
    live = {"p": p, "s": s}

    def step() -> None:
        live["p"], live["s"] = compiled(live["p"], live["s"], g)
        jax.block_until_ready((live["p"], live["s"]))

    def host_params() -> dict[str, np.ndarray]:
        tree = live["p"].unpack() if packed else live["p"]
        return {k: np.asarray(v.astype(jnp.float32)) for k, v in tree.items()}

    step()  # one untimed step, as torch_stepper's probe step, so every peer has taken the same steps
    info = {
        "lower_s": lower_s,
        "compile_s": compile_s,
        "memory": timing.memory(compiled),
        "hlo": timing.hlo_summary(compiled),
        "state_elements": state_elements,
    }
    return Stepper(step, host_params, info)


def torch_device(threads: int | None = None) -> tuple[str | None, str]:
    """The torch device matching JAX's backend, or ``(None, reason)`` when torch cannot do the same work.

    ``threads`` sets ``torch.set_num_threads`` (None keeps torch's default).
    """
    try:
        import torch  # pyright: ignore[reportMissingImports]  (the torch peer is optional: no extra installs it)
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
    import torch  # pyright: ignore[reportMissingImports]  (the torch peer is optional: no extra installs it)

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
