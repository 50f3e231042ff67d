"""The wrappers' overhead: jitted, donated steps of gradkit's wrappers against optax's, as ratios of medians.

    python -m benchmarks.wrappers            # ~4 minutes on a loaded 2-core CPU

Each case wraps AdamW (lr 1e-3, weight decay 0.01) on the same tree: 24 float32 leaves, 2.08M parameters in all.
Peers are timed in alternating rounds (``benchmarks.timing``), so a burst of load hits both alike.
"""

from __future__ import annotations

import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradkit as gk
from benchmarks.timing import time_interleaved


def _tree() -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    leaves = {f"layer{i}": {"w": (416, 416), "bias": (416,)} for i in range(12)}
    return jax.tree.map(
        lambda s: jnp.asarray(rng.normal(size=s), jnp.float32), leaves, is_leaf=lambda x: isinstance(x, tuple)
    )


def _labels(params):
    return {k: {"w": "frozen" if k == "layer0" else "decay", "bias": "no_decay"} for k in params}


def _is_matrix(params):
    return jax.tree.map(lambda x: x.ndim == 2, params)


def cases() -> dict[str, tuple[gk.GradientTransformation, optax.GradientTransformation]]:
    def groups(lib):
        return {"decay": lib.adamw(1e-3, weight_decay=0.01), "no_decay": lib.adam(1e-3), "frozen": lib.set_to_zero()}

    return {
        "adamw (no wrapper)": (gk.adamw(1e-3), optax.adamw(1e-3, weight_decay=0.01)),
        "partition (3 groups, 1 frozen)": (gk.partition(groups(gk), _labels), optax.partition(groups(optax), _labels)),
        "masked adamw (matrices)": (
            gk.masked(gk.adamw(1e-3), _is_matrix),
            optax.masked(optax.adamw(1e-3, weight_decay=0.01), _is_matrix),
        ),
        "accumulate(adamw, 4)": (
            gk.accumulate(gk.adamw(1e-3), 4),
            optax.MultiSteps(optax.adamw(1e-3, weight_decay=0.01), 4).gradient_transformation(),
        ),
        "skip_nonfinite(adamw)": (
            gk.skip_nonfinite(gk.adamw(1e-3), 10),
            optax.apply_if_finite(optax.adamw(1e-3, weight_decay=0.01), 10),
        ),
    }


def _stepper(tx, params, grads):
    step = jax.jit(
        lambda p, s: (lambda u, s: (gk.apply_updates(p, u), s))(*tx.update(grads, s, p)), donate_argnums=(0, 1)
    )
    carry = [jax.tree.map(jnp.copy, params), jax.tree.map(jnp.copy, tx.init(params))]  # distinct buffers to donate

    def run():
        carry[0], carry[1] = step(*carry)
        jax.block_until_ready(carry[0])

    return run


def main() -> None:
    params = _tree()
    grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), params)
    print(
        f"load: {os.getloadavg()}, {jax.devices()[0].platform}, {sum(x.size for x in jax.tree.leaves(params))} params"
    )
    print("| case | gradkit median ms | optax median ms | gradkit / optax | spread (min-max ms, gk / optax) |")
    print("|---|---|---|---|---|")
    for name, (ours, theirs) in cases().items():
        times = time_interleaved(
            {"gradkit": _stepper(ours, params, grads), "optax": _stepper(theirs, params, grads)},
            warmup=3,
            budget_s=8.0,
            min_repeats=20,
            max_repeats=200,
        )
        g, o = (statistics.median(times[k]) * 1e3 for k in ("gradkit", "optax"))
        spread = " / ".join(f"{min(times[k]) * 1e3:.2f}-{max(times[k]) * 1e3:.2f}" for k in ("gradkit", "optax"))
        print(f"| {name} | {g:.2f} | {o:.2f} | {g / o:.2f} | {spread} |")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
