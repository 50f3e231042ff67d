"""Large-batch optimizers (the lecture's linear scaling rule taken further): LARS, LAMB, and Lion.

LARS and LAMB rescale each layer's step by the ratio of its weight norm to its update norm (one shared
primitive, ``gk.scale_by_trust_ratio``), so one learning rate suits layers of very different scales.
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
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_momentum,
    scale_by_trust_ratio,
)


@described
def lars(
    learning_rate: Scalar | Schedule,
    weight_decay: Scalar = 0.0,
    trust_coefficient: Scalar = 1e-3,
    eps: Scalar = 0.0,
    momentum: Scalar = 0.9,
    nesterov: bool = False,
    mask: Any = None,
    trust_ratio_mask: Any = None,
) -> GradientTransformation:
    """LARS (You et al., 2017), momentum SGD with a layer-wise trust ratio::

        d = g + weight_decay * W
        v <- momentum * v + lr * trust_coefficient * ||W|| / (||d|| + eps) * d
        W <- W - v

    optax ``lars(lr, weight_decay, weight_decay_mask=mask, trust_coefficient, eps, trust_ratio_mask,
    momentum, nesterov)`` exactly (the learning rate is applied inside the momentum, as in the paper).
    ``mask`` / ``trust_ratio_mask`` select the leaves that decay / are rescaled (commonly: not biases and
    norms). torch has no LARS.

    >>> tx = gk.lars(1.0, weight_decay=1e-4)
    """
    with _checks.aliases(decay="momentum"):
        momentum_part = _unless_zero(momentum, scale_by_momentum(momentum, nesterov))
    return chain(
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay, mask)),
        scale_by_trust_ratio(trust_coefficient, eps, trust_ratio_mask),
        scale_by_learning_rate(learning_rate),
        *momentum_part,
    )


@described
def lamb(
    learning_rate: Scalar | Schedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-6,
    eps_root: Scalar = 0.0,
    weight_decay: Scalar = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """LAMB (You et al., 2020), AdamW with a layer-wise trust ratio::

        r = m_hat / (sqrt(v_hat + eps_root) + eps) + weight_decay * W          Adam step with decoupled decay
        W <- W - lr * ||W|| / ||r|| * r

    optax ``lamb(lr, b1, b2, eps, eps_root, weight_decay, mask)`` exactly. torch has no LAMB.

    >>> tx = gk.lamb(1e-3, weight_decay=1e-2)
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay, mask)),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


@described
def lion(
    learning_rate: Scalar | Schedule = 1e-4,
    b1: Scalar = 0.9,
    b2: Scalar = 0.99,
    weight_decay: Scalar = 1e-3,
    mask: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al., 2023), the sign of an interpolated momentum, with decoupled decay::

        W <- W - lr * (sign(b1*m + (1-b1)*g) + weight_decay * W),     m <- b2*m + (1-b2)*g

    optax ``lion(lr, b1, b2, weight_decay=weight_decay, mask=mask)`` exactly (same defaults). Its steps
    are +-lr per entry, so it wants a learning rate 3-10x below AdamW's (the paper) and a larger decay.

    >>> tx = gk.lion(1e-4)
    """
    return chain(
        scale_by_lion(b1, b2),
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay, mask)),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["lamb", "lars", "lion"]
