"""Muon (Jordan et al., 2024): momentum whose matrix steps are orthogonalised, AdamW for every other leaf.

The split between matrices and the rest is ``gk.partition`` with labels from each leaf's ``ndim``, so each
group's state holds only its leaves (``state.groups["muon"]``, ``state.groups["adamw"]``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradkit import _checks
from gradkit.combine import partition
from gradkit.core import GradientTransformation, Params, chain, described
from gradkit.optimizers.lecture import _unless_zero, adamw
from gradkit.primitives import (
    MUON_COEFFICIENTS,
    Scalar,
    Schedule,
    add_decayed_weights,
    orthogonalise,
    scale,
    scale_by_fan_ratio,
    scale_by_learning_rate,
    scale_by_momentum,
)


def _label_by_ndim(params: Params) -> Any:
    """``"muon"`` for the leaves with >= 2 dims (matrices, conv kernels), ``"adamw"`` for the rest."""
    return jax.tree.map(lambda x: "muon" if jnp.ndim(x) >= 2 else "adamw", params)


@described
def muon(
    learning_rate: Scalar | Schedule = 1e-3,
    momentum: Scalar = 0.95,
    nesterov: bool = True,
    weight_decay: Scalar = 0.1,
    ns_coefficients: Any = MUON_COEFFICIENTS,
    ns_steps: int = 5,
    eps: Scalar = 1e-7,
    adam_learning_rate: Scalar | Schedule | None = None,
    adam_b1: Scalar = 0.9,
    adam_b2: Scalar = 0.999,
    adam_eps: Scalar = 1e-8,
    adam_weight_decay: Scalar = 0.0,
) -> GradientTransformation:
    """Muon for the matrices (leaves with >= 2 dims), AdamW for the rest::

        B <- momentum * B + (1-momentum) * g                      EMA momentum
        M = (1-momentum) * g + momentum * B  (Nesterov)   or  B
        O = NS(M)                                                 gk.newton_schulz, 5 steps
        W <- W - lr * (sqrt(max(1, fan_out/fan_in)) * O + weight_decay * W)

    Leaves with more than 2 dims are orthogonalised as ``(prod(leading dims), last dim)`` (see
    ``gk.orthogonalise``); vectors and scalars (biases, norms) get ``gk.adamw(adam_learning_rate or lr,
    adam_b1, adam_b2, adam_eps, adam_weight_decay)``.

    torch ``Muon(lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps)`` with the same
    defaults on weights stored transposed (torch's ``(out, in)`` is our ``(in, out)``: its
    ``sqrt(max(1, A/B))`` is our fan ratio), except that torch runs Newton-Schulz in bfloat16; torch's Muon
    takes 2-D params only (give the rest to ``AdamW``). optax ``contrib.muon`` bias-corrects the momentum
    (``b*m/(1-b^(t+1)) + (1-b)*g/(1-b^t)`` with Nesterov), divides by ``||M|| + eps`` (``eps=1e-8``), and
    sends leaves with more than 2 dims to Adam.

    >>> tx = gk.muon(0.02, adam_learning_rate=3e-4)
    """
    _checks.unit_interval("momentum", momentum)
    matrices = chain(
        scale(1 - momentum),  # with heavy-ball momentum after it: B <- momentum*B + (1-momentum)*g
        scale_by_momentum(momentum, nesterov),
        orthogonalise(ns_coefficients, ns_steps, eps),
        scale_by_fan_ratio(),
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay)),
        scale_by_learning_rate(learning_rate),
    )
    adam_names = {"b1": "adam_b1", "b2": "adam_b2", "eps": "adam_eps", "weight_decay": "adam_weight_decay"}
    if adam_learning_rate is not None:
        adam_names["learning_rate"] = "adam_learning_rate"
    with _checks.aliases(**adam_names):
        others = adamw(
            learning_rate if adam_learning_rate is None else adam_learning_rate,
            adam_b1,
            adam_b2,
            adam_eps,
            adam_weight_decay,
        )
    return partition({"muon": matrices, "adamw": others}, _label_by_ndim)


__all__ = ["muon"]
