"""The peers, each doing the same work on the same tree: one optimizer step, in place where they can.

gradkit packed: the same gradkit step on ``gk.pack(params)`` and packed gradients (a few buffers).
gradkit and optax: ``update`` + ``apply_updates`` in one ``jax.jit`` with the params and the state
donated (``donate_argnums=(0, 1)``), the gradients passed in (not donated), compiled ahead of time.
torch: ``torch.optim.AdamW`` / ``SGD`` with ``foreach=False`` (for-loop), ``foreach=True`` and
``fused=True``, on CPU, or on CUDA when JAX runs on a GPU; ``p.grad`` is set once (never cleared, so
every step sees the same gradients, as the JAX peers do) and ``step()`` is timed.
gradkit's package never imports optax or torch: those peers live in the repository's
``benchmarks/peers.py``, which registers them here (``OPTIMIZER_PEERS``, ``TORCH``). ``load_external``
loads it when ``gradkit bench`` runs from a checkout; installed without one, gradkit is timed against the
measured roofline alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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


# library -> (optimizer name "adamw" or "sgd" -> (transformation, apply_updates)); filled by benchmarks/peers.py.
OPTIMIZER_PEERS: dict[str, Callable[[str], tuple[Any, Callable]]] = {}
# "device": (threads) -> (device or None, note); "stepper": (variant, case, params, grads, device) -> Stepper | str.
TORCH: dict[str, Callable[..., Any]] = {}


def load_external() -> str | None:
    """Register the optax and torch peers from a gradkit checkout's ``benchmarks/peers.py``; None when they are
    registered, else why not (gradkit alone is timed then)."""
    if "benchmarks.peers" in sys.modules:
        return None
    try:
        importlib.import_module("benchmarks.peers")
        return None
    except ImportError:
        pass
    path = Path.cwd() / "benchmarks" / "peers.py"
    if not path.is_file():
        return "the optax and torch peers live in a gradkit checkout's benchmarks/peers.py: run from one"
    spec = importlib.util.spec_from_file_location("benchmarks.peers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks.peers"] = module
    spec.loader.exec_module(module)
    return None


def jax_optimizer(library: str, optimizer: str) -> tuple[Any, Callable]:
    """``(transformation, apply_updates)`` for ``library`` ("gradkit" or a registered peer) with the shared
    hyperparameters."""
    if library == "gradkit":
        import gradkit as gk

        tx = gk.adamw(**ADAMW) if optimizer == "adamw" else gk.sgd(SGD["learning_rate"], momentum=SGD["momentum"])
        return tx, gk.apply_updates
    return OPTIMIZER_PEERS[library](optimizer)


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
    """The torch device matching JAX's backend, or ``(None, reason)`` (also when the torch peer is not loaded)."""
    if "device" not in TORCH:
        return None, "torch peers not loaded (they live in a gradkit checkout's benchmarks/peers.py)"
    return TORCH["device"](threads)


def torch_stepper(variant: str, case: Case, params: dict, grads: dict, device: str) -> Stepper | str:
    """A torch optimizer stepping in place; a string saying why when this variant is unsupported here."""
    return TORCH["stepper"](variant, case, params, grads, device)
