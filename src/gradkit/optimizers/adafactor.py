"""Adafactor (Shazeer & Stern, 2018): Adam-like steps with a factored second moment, for memory.

A matrix of ``R x C`` weights keeps ``R + C`` second-moment numbers instead of ``R * C``, and no first
moment, so the optimizer state is a small fraction of Adam's (see docs/optimizers.md for a transformer).
"""

from __future__ import annotations

from typing import Any

from gradkit import _checks
from gradkit.core import GradientTransformation, chain, described
from gradkit.optimizers.lecture import _unless_zero
from gradkit.primitives import (
    Scalar,
    Schedule,
    add_decayed_weights,
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_learning_rate,
    scale_by_relative_step,
)


@described
def adafactor(
    learning_rate: Scalar | Schedule = 1e-2,
    decay_exponent: Scalar = 0.8,
    eps: Scalar | None = None,
    eps2: Scalar = 1e-3,
    clipping_threshold: Scalar = 1.0,
    weight_decay: Scalar = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Adafactor, torch's convention::

        u = g / sqrt(V_hat)                                   factored second moment (gk.scale_by_factored_rms)
        u <- u / max(1, RMS(u) / clipping_threshold)          update clipping
        W <- W - min(lr, 1/sqrt(t)) * max(eps2, RMS(W)) * u - lr * weight_decay * W

    torch ``Adafactor(lr, beta2_decay=-decay_exponent, eps=(eps, eps2), d=clipping_threshold, weight_decay)``
    exactly, with the same defaults. optax's ``adafactor`` differs in four places (19% apart after 50
    default steps): it factors only the two largest dims and only when both are >= 128, adds ``eps=1e-30``
    to ``g^2`` instead of clamping, multiplies by ``learning_rate`` with no ``1/sqrt(t)`` cap (its default
    ``learning_rate=None`` means 1), and adds ``weight_decay_rate * W`` after the learning rate.

    >>> tx = gk.adafactor(1e-2)
    """
    _checks.non_negative("weight_decay", weight_decay)
    with _checks.aliases(threshold="clipping_threshold"):
        clip = clip_by_block_rms(clipping_threshold)
    return chain(
        scale_by_factored_rms(decay_exponent, eps),
        clip,
        scale_by_relative_step(learning_rate, eps2),
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay, mask)),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["adafactor"]
