"""The memory-bandwidth floor of an optimizer step, and the bandwidth it is measured against.

Bytes moved per parameter (each array read or written once, in the params' dtype of ``itemsize`` bytes):

    adamw   read p, g, m, v; write p, m, v    7 * itemsize   (28 for float32)
    sgd     read p, g, v;    write p, v       5 * itemsize   (20 for float32)
    axpy    read x, y;       write x          3 * itemsize   (the roofline: x = x + a*y, x donated)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from benchmarks import timing

ARRAYS_MOVED = {"adamw": 7, "sgd": 5, "axpy": 3}

# Spec-sheet HBM bandwidths in bytes/s, matched against jax's device_kind (first match wins).
SPEC_BANDWIDTH = (("H200", 4.8e12), ("H100 PCIe", None), ("H100", 3.35e12))


def bytes_moved(optimizer: str, n_params: int, itemsize: int) -> int:
    """The bytes one step must move at least: ``ARRAYS_MOVED[optimizer] * n_params * itemsize``."""
    return ARRAYS_MOVED[optimizer] * n_params * itemsize


def spec_bandwidth(device_kind: str) -> float | None:
    """The spec-sheet bandwidth for an H100 SXM or H200 (bytes/s), None for any other device."""
    for key, bandwidth in SPEC_BANDWIDTH:
        if key.lower() in device_kind.lower():
            return bandwidth
    return None


@partial(jax.jit, donate_argnums=0)
def _axpy(x: jax.Array, y: jax.Array, a: jax.Array) -> jax.Array:
    return x + a * y


def measure(n: int, dtype: str, warmup: int, budget_s: float, min_repeats: int, max_repeats: int) -> dict:
    """Bandwidth of ``x = x + a*y`` on one donated array of ``n`` elements: ``3 * n * itemsize / median``."""
    x, y = jnp.ones((n,), dtype), jnp.full((n,), 0.5, dtype)
    a = jnp.asarray(1e-3, dtype)
    state = {"x": x}

    def step() -> None:
        state["x"] = _axpy(state["x"], y, a)
        state["x"].block_until_ready()

    stats = timing.summary(timing.time_interleaved({"axpy": step}, warmup, budget_s, min_repeats, max_repeats)["axpy"])
    moved = bytes_moved("axpy", n, jnp.dtype(dtype).itemsize)
    return {"n": n, "dtype": dtype, "bytes": moved, **stats, "bandwidth_Bps": moved / stats["median_s"]}
