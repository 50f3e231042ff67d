"""Shared test helpers: random nested pytrees and optional-dependency skips."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None
requires_torch = pytest.mark.skipif(
    not HAS_TORCH,
    reason="torch is not installed; `pip install torch==2.13.0` (CI installs it) to run the torch parity tests",
)


def random_tree(seed: int = 0, dtype=jnp.float32):
    """A nested pytree of dicts and lists with matrix, vector, scalar, zero-size and None leaves."""
    rng = np.random.default_rng(seed)
    return {
        "dense": {"w": jnp.asarray(rng.normal(size=(4, 3)), dtype), "b": jnp.asarray(rng.normal(size=(3,)), dtype)},
        "layers": [jnp.asarray(rng.normal(size=(2, 2, 3)), dtype), jnp.asarray(rng.normal(), dtype)],
        "empty": jnp.zeros((0, 5), dtype),
        "frozen": None,
    }


def tree_allclose(a, b, rtol: float, atol: float = 0.0) -> None:
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol), a, b)
