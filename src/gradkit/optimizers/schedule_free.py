"""Schedule-free SGD and AdamW (Defazio et al., 2024): no learning-rate schedule, an average instead.

Train the params as usual; evaluate the model at ``gk.schedule_free_eval_params(state, params)``.
"""

from __future__ import annotations

from gradkit import _checks
from gradkit.core import GradientTransformation, chain, described
from gradkit.optimizers.lecture import _unless_zero, sgd
from gradkit.primitives import (
    Scalar,
    Schedule,
    add_decayed_weights,
    scale_by_learning_rate,
    scale_by_rms,
    schedule_free,
)


@described
def schedule_free_sgd(
    learning_rate: Scalar | Schedule = 1.0,
    b1: Scalar = 0.9,
    weight_decay: Scalar = 0.0,
    weight_lr_power: Scalar = 2.0,
) -> GradientTransformation:
    """Schedule-free SGD: ``z <- z - lr * (g + weight_decay * y)``, then the interpolation of ``gk.schedule_free``.

    optax ``contrib.schedule_free_sgd(lr, b1=b1, weight_decay=weight_decay, weight_lr_power)`` (give warmup as
    a schedule, e.g. ``gk.schedules.linear_warmup``, where optax takes ``warmup_steps``).

    >>> tx = gk.schedule_free_sgd(1.0)
    """
    return schedule_free(sgd(learning_rate, weight_decay=weight_decay), learning_rate, b1, weight_lr_power)


@described
def schedule_free_adamw(
    learning_rate: Scalar | Schedule = 2.5e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    weight_decay: Scalar = 0.0,
    weight_lr_power: Scalar = 2.0,
) -> GradientTransformation:
    """Schedule-free AdamW: ``z <- z - lr * (g / (sqrt(v_hat) + eps) + weight_decay * y)``, then ``gk.schedule_free``.

    The base step has no first moment (``b1`` is the interpolation weight instead): it is RMSProp's
    scaling with Adam's bias correction. optax ``contrib.schedule_free_adamw(lr, b1=b1, b2, eps, weight_decay,
    weight_lr_power)`` exactly.

    >>> tx = gk.schedule_free_adamw(2.5e-3)
    """
    with _checks.aliases(decay="b2"):
        rms = scale_by_rms(b2, eps, debias=True)
    base = chain(
        rms,
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay)),
        scale_by_learning_rate(learning_rate),
    )
    return schedule_free(base, learning_rate, b1, weight_lr_power)


__all__ = ["schedule_free_adamw", "schedule_free_sgd"]
