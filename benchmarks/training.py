"""The end-to-end case: one training step of a deep MLP (loss, grad, AdamW update) for gradkit and optax.

Unlike the update-only cases this step is dominated by the matmuls, so it shows how much of a real
step the optimizer is: the two libraries should tie here unless one of them adds work to the update.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing
from benchmarks.peers import Stepper, jax_optimizer


def mlp_params(depth: int, width: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``depth`` dense layers ``width -> width`` (He-initialised weights, zero biases)."""
    rng = np.random.default_rng(seed)
    scale = np.sqrt(2.0 / width)
    return [
        {"w": (scale * rng.standard_normal((width, width))).astype(np.float32), "b": np.zeros(width, np.float32)}
        for _ in range(depth)
    ]


def loss(params: list[dict[str, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean squared error of a ReLU MLP (no activation after the last layer)."""
    for i, layer in enumerate(params):
        x = x @ layer["w"] + layer["b"]
        x = jax.nn.relu(x) if i < len(params) - 1 else x
    return jnp.mean((x - y) ** 2)


def training_stepper(library: str, depth: int, width: int, batch: int) -> Stepper:
    """``value_and_grad`` + AdamW update + apply in one jit, params and state donated."""
    tx, apply_updates = jax_optimizer(library, "adamw")

    def step_fn(p: Any, s: Any, x: jax.Array, y: jax.Array) -> tuple[Any, Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(p, x, y)
        updates, s = tx.update(grads, s, p)
        return apply_updates(p, updates), s, value

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((batch, width), dtype=np.float32))
    y = jnp.asarray(rng.standard_normal((batch, width), dtype=np.float32))
    p = jax.tree.map(jnp.asarray, mlp_params(depth, width))
    s = tx.init(p)
    compiled, lower_s, compile_s = timing.compile_step(step_fn, (p, s, x, y), donate_argnums=(0, 1))
    live = {"p": p, "s": s}

    def step() -> None:
        live["p"], live["s"], value = compiled(live["p"], live["s"], x, y)
        jax.block_until_ready((live["p"], live["s"], value))

    def host_params() -> dict[str, np.ndarray]:
        return {f"{i}.{k}": np.asarray(v) for i, layer in enumerate(live["p"]) for k, v in layer.items()}

    step()
    return Stepper(step, host_params, {"lower_s": lower_s, "compile_s": compile_s, "memory": timing.memory(compiled)})
