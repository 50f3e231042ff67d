"""End-to-end training steps: loss + grad + AdamW update in one jit, on the tree or on packed params.

Unlike the update-only cases these steps include the model, so they show how much of a real step the
optimizer is, and what unpacking packed params inside the loss costs: the packed step computes
``jax.grad(lambda pk: loss(pk.unpack(), ...))`` (one split per buffer forward, one concatenate back).
Models: a ReLU MLP (deep and narrow for many leaves) and a small GPT-2 on the GPT-2-shaped tree of
``cases.gpt2_shapes`` (148 leaves at 12 layers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.bench import timing
from gradkit.bench.cases import gpt2_shapes
from gradkit.bench.peers import Stepper, jax_optimizer


def mlp_params(depth: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``depth`` dense layers ``width -> width`` (He-initialised weights, zero biases), as a flat dict."""
    rng = np.random.default_rng(seed)
    scale = np.sqrt(2.0 / width)
    params = {}
    for i in range(depth):
        params[f"l{i:04d}.w"] = (scale * rng.standard_normal((width, width))).astype(np.float32)
        params[f"l{i:04d}.b"] = np.zeros(width, np.float32)
    return params


def mlp_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean squared error of a ReLU MLP (no activation after the last layer)."""
    depth = len(params) // 2
    for i in range(depth):
        x = x @ params[f"l{i:04d}.w"] + params[f"l{i:04d}.b"]
        x = jax.nn.relu(x) if i < depth - 1 else x
    return jnp.mean((x - y) ** 2)


def mlp_batch(width: int, batch: int) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(1)
    return (
        jnp.asarray(rng.standard_normal((batch, width), dtype=np.float32)),
        jnp.asarray(rng.standard_normal((batch, width), dtype=np.float32)),
    )


def gpt2_params(scale: float, n_layers: int, seed: int = 0) -> dict[str, np.ndarray]:
    """GPT-2's tree at ``scale`` (see ``cases.gpt2_shapes``): N(0, 0.02) weights, unit gains, zero biases."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in gpt2_shapes(scale, n_layers).items():
        if name.endswith(".g"):
            params[name] = np.ones(shape, np.float32)
        elif name.endswith(".b"):
            params[name] = np.zeros(shape, np.float32)
        else:
            params[name] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return params


def _layer_norm(x: jax.Array, g: jax.Array, b: jax.Array) -> jax.Array:
    mean = jnp.mean(x, -1, keepdims=True)
    return g * (x - mean) * jax.lax.rsqrt(jnp.var(x, -1, keepdims=True) + 1e-5) + b


def gpt2_loss(params: dict[str, jax.Array], tokens: jax.Array) -> jax.Array:
    """Next-token cross-entropy of a GPT-2 (pre-norm blocks, causal attention with heads of 64, tied embedding)."""
    n_layers = sum(k.endswith("ln_1.g") for k in params)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    batch, length = inputs.shape
    x = params["wte"][inputs] + params["wpe"][:length]
    d = x.shape[-1]
    heads = d // 64
    causal = jnp.tril(jnp.ones((length, length), bool))
    for i in range(n_layers):
        h = f"h{i:02d}."
        a = _layer_norm(x, params[h + "ln_1.g"], params[h + "ln_1.b"])
        qkv = a @ params[h + "attn.c_attn.w"] + params[h + "attn.c_attn.b"]
        q, k, v = (t.reshape(batch, length, heads, 64) for t in jnp.split(qkv, 3, axis=-1))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / 8.0
        weights = jax.nn.softmax(jnp.where(causal, scores, -1e9), axis=-1)
        o = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, d)
        x = x + o @ params[h + "attn.c_proj.w"] + params[h + "attn.c_proj.b"]
        m = _layer_norm(x, params[h + "ln_2.g"], params[h + "ln_2.b"])
        m = jax.nn.gelu(m @ params[h + "mlp.c_fc.w"] + params[h + "mlp.c_fc.b"])
        x = x + m @ params[h + "mlp.c_proj.w"] + params[h + "mlp.c_proj.b"]
    logits = _layer_norm(x, params["ln_f.g"], params["ln_f.b"]) @ params["wte"].T
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, targets[..., None], axis=-1))


def gpt2_batch(vocab: int, batch: int, length: int) -> tuple[jax.Array]:
    rng = np.random.default_rng(1)
    return (jnp.asarray(rng.integers(0, vocab, (batch, length + 1)), jnp.int32),)


def training_stepper(
    library: str, loss: Callable[..., jax.Array], params: dict[str, np.ndarray], batch: tuple, packed: bool = False
) -> Stepper:
    """``value_and_grad`` + AdamW update + apply in one jit, params and state donated; ``packed`` packs the params."""
    import gradkit as gk

    tx, apply_updates = jax_optimizer(library, "adamw")
    objective = (lambda pk, *b: loss(pk.unpack(), *b)) if packed else loss

    def step_fn(p: Any, s: Any, *b: jax.Array) -> tuple[Any, Any, jax.Array]:
        value, grads = jax.value_and_grad(objective)(p, *b)
        updates, s = tx.update(grads, s, p)
        return apply_updates(p, updates), s, value

    p = jax.tree.map(jnp.asarray, params)
    p = gk.pack(p) if packed else p
    s = tx.init(p)
    compiled, lower_s, compile_s = timing.compile_step(step_fn, (p, s, *batch), donate_argnums=(0, 1))
    live = {"p": p, "s": s}

    def step() -> None:
        live["p"], live["s"], value = compiled(live["p"], live["s"], *batch)
        jax.block_until_ready((live["p"], live["s"], value))

    def host_params() -> dict[str, np.ndarray]:
        tree = live["p"].unpack() if packed else live["p"]
        return {k: np.asarray(v) for k, v in tree.items()}

    step()
    info = {"lower_s": lower_s, "compile_s": compile_s, "memory": timing.memory(compiled)}
    return Stepper(step, host_params, info)
