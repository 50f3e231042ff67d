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

from gradkit.bench import timing

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


def axpy_step(n: int, dtype: str) -> timing.Step:
    """One blocking step of ``x = x + a*y`` on a donated array of ``n`` elements: the roofline's kernel."""
    x, y, a = jnp.ones((n,), dtype), jnp.full((n,), 0.5, dtype), jnp.asarray(1e-3, dtype)
    live = {"x": x}

    def step() -> None:
        live["x"] = _axpy(live["x"], y, a)
        live["x"].block_until_ready()

    return step


def bandwidth(n: int, dtype: str, times: list[float]) -> dict:
    """The roofline from timed axpy steps: ``3 * n * itemsize / median``."""
    stats = timing.summary(times)
    moved = bytes_moved("axpy", n, jnp.dtype(dtype).itemsize)
    return {"n": n, "dtype": dtype, "bytes": moved, **stats, "bandwidth_Bps": moved / stats["median_s"]}
