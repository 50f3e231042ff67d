"""The benchmark cases: parameter trees (shapes and dtype) and the optimizers' hyperparameters.

Every peer gets the same tree, the same dtype and the same hyperparameters:

    adamw   lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01 (decoupled; optax's default is 1e-4)
    sgd     lr=1e-2, momentum=0.9 (heavy ball, no Nesterov, no weight decay)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

import numpy as np


class AdamWHyperparameters(TypedDict):
    """AdamW's keyword arguments, shared by gradkit and optax (typed, so ``adamw(**ADAMW)`` type-checks)."""

    learning_rate: float
    b1: float
    b2: float
    eps: float
    weight_decay: float


ADAMW: AdamWHyperparameters = {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
SGD = {"learning_rate": 1e-2, "momentum": 0.9}
HYPERPARAMETERS = {"adamw": ADAMW, "sgd": SGD}

M = 2**20  # "16M params" is 16 * 2**20


@dataclass(frozen=True)
class Case:
    """One benchmark: an optimizer applied to a tree of leaves with the given shapes and dtype."""

    name: str
    optimizer: str  # "adamw" or "sgd" (the shared hyperparameters), or a user's spec such as "adamw(b1=0.8)"
    shapes: dict[str, tuple[int, ...]]  # leaf name -> shape; the tree is a flat dict
    dtype: str = "float32"
    spec: str | None = None  # set for a user's optimizer: only gradkit (tree and packed) runs it

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    @property
    def n_leaves(self) -> int:
        return len(self.shapes)


def even_leaves(n_leaves: int, total: int) -> dict[str, tuple[int, ...]]:
    """``n_leaves`` vectors whose sizes sum to ``total`` (the remainder goes to the first leaves)."""
    base, extra = divmod(total, n_leaves)
    return {f"leaf{i:04d}": (base + (i < extra),) for i in range(n_leaves)}


def gpt2_shapes(scale: float = 1.0, n_layers: int = 12) -> dict[str, tuple[int, ...]]:
    """GPT-2 small's 148 leaves (HF names), widths scaled by ``sqrt(scale)`` so the count scales by ``scale``.

    At ``scale=1``: d_model 768, vocab 50257, context 1024, 124M params.
    """
    r = math.sqrt(scale)
    d = max(64, round(768 * r / 64) * 64)
    vocab, ctx = max(64, round(50257 * r)), max(64, round(1024 * r))
    shapes: dict[str, tuple[int, ...]] = {"wte": (vocab, d), "wpe": (ctx, d)}
    for i in range(n_layers):
        h = f"h{i:02d}."
        shapes |= {
            h + "ln_1.g": (d,), h + "ln_1.b": (d,),
            h + "attn.c_attn.w": (d, 3 * d), h + "attn.c_attn.b": (3 * d,),
            h + "attn.c_proj.w": (d, d), h + "attn.c_proj.b": (d,),
            h + "ln_2.g": (d,), h + "ln_2.b": (d,),
            h + "mlp.c_fc.w": (d, 4 * d), h + "mlp.c_fc.b": (4 * d,),
            h + "mlp.c_proj.w": (4 * d, d), h + "mlp.c_proj.b": (d,),
        }  # fmt: skip
    return shapes | {"ln_f.g": (d,), "ln_f.b": (d,)}


def make_cases(quick: bool, scale: float, bf16: bool) -> list[Case]:
    """The issue's cases, each for AdamW and SGD with momentum; ``quick`` shrinks every size for a smoke run.

    Full: 1 leaf of 16M, 100 leaves totalling 16M, 1,000 and 3,000 leaves of 100, GPT-2 small's 148 leaves
    times ``scale``, and (``bf16``) 1 leaf of 16M in bfloat16. Quick: 64K, 20 leaves, 30 and 100 leaves,
    2 GPT-2 layers.
    """
    big = 2**16 if quick else 16 * M
    split, small_counts, layers = (20, (30, 100), 2) if quick else (100, (1000, 3000), 12)
    trees = [
        (f"1 leaf x {big / M:g}M", {"w": (big,)}, "float32"),
        (f"{split} leaves, {big / M:g}M total", even_leaves(split, big), "float32"),
        *[(f"{n} leaves x 100", even_leaves(n, 100 * n), "float32") for n in small_counts],
        (f"GPT-2 small x{scale:g}" + (f", {layers} layers" if quick else ""), gpt2_shapes(scale, layers), "float32"),
    ]
    if bf16:
        trees.append((f"1 leaf x {big / M:g}M bf16", {"w": (big,)}, "bfloat16"))
    return [Case(name, opt, shapes, dtype) for opt in ("adamw", "sgd") for name, shapes, dtype in trees]


def custom_case(spec: str, leaves: int, leaf_size: int, dtype: str) -> Case:
    """``leaves`` vectors of ``leaf_size`` elements for the optimizer a spec names (``gradkit bench --optimizer``)."""
    from gradkit.bench import spec as specs

    name, _, _ = specs.parse(spec)
    return Case(f"{leaves} leaves x {leaf_size}", name, even_leaves(leaves, leaves * leaf_size), dtype, spec)


def make_arrays(case: Case, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Host copies of the params and the (fixed) gradients, float32; peers cast them to ``case.dtype``."""
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s, dtype=np.float32) for k, s in case.shapes.items()}
    grads = {k: 1e-2 * rng.standard_normal(s, dtype=np.float32) for k, s in case.shapes.items()}
    return params, grads
