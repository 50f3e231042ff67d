"""Adam's relatives: NAdam, RAdam, AMSGrad, Adamax, Adadelta, AdaBelief, each a scaling primitive and a chain.

Weight decay follows torch: ``weight_decay`` is added to the gradient before the scaling (L2, torch's
default), or with ``decoupled_weight_decay=True`` added after it and multiplied by the learning rate only
(AdamW's decay: torch's ``decoupled_weight_decay=True``, i.e. NAdamW, RAdamW, AMSGradW).
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
    scale_by_adadelta,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_belief,
    scale_by_learning_rate,
    scale_by_nadam,
    scale_by_radam,
)


def _decayed(
    scaling: GradientTransformation,
    learning_rate: Scalar | Schedule,
    weight_decay: Scalar,
    decoupled: bool,
    mask: Any,
) -> GradientTransformation:
    """``scaling`` then the learning rate, with L2 decay before the scaling or decoupled decay after it."""
    _checks.non_negative("weight_decay", weight_decay)
    _checks.flag("decoupled_weight_decay", decoupled)
    decay = _unless_zero(weight_decay, add_decayed_weights(weight_decay, mask))
    if decoupled:
        return chain(scaling, *decay, scale_by_learning_rate(learning_rate))
    return chain(*decay, scaling, scale_by_learning_rate(learning_rate))


@described
def nadam(
    learning_rate: Scalar | Schedule = 2e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    momentum_decay: Scalar = 4e-3,
    weight_decay: Scalar = 0.0,
    decoupled_weight_decay: bool = False,
    mask: Any = None,
) -> GradientTransformation:
    """NAdam (Dozat, 2016): Adam with Nesterov momentum; see ``gk.scale_by_nadam`` for the update.

    torch ``NAdam(lr, betas=(b1, b2), eps, weight_decay, momentum_decay, decoupled_weight_decay)`` with the
    same defaults (NAdamW: ``decoupled_weight_decay=True``). optax's ``nadam``/``nadamw`` are Adam/AdamW with
    ``nesterov=True``: no momentum schedule (see ``gk.scale_by_nadam``), and ``nadamw`` decays by 1e-4 by default.

    >>> tx = gk.nadam(2e-3, weight_decay=1e-2, decoupled_weight_decay=True)   # NAdamW
    """
    return _decayed(
        scale_by_nadam(b1, b2, eps, momentum_decay), learning_rate, weight_decay, decoupled_weight_decay, mask
    )


@described
def radam(
    learning_rate: Scalar | Schedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    threshold: Scalar = 5.0,
    weight_decay: Scalar = 0.0,
    decoupled_weight_decay: bool = False,
    mask: Any = None,
) -> GradientTransformation:
    """RAdam (Liu et al., 2020): Adam with a rectified (warmed-up) adaptive step; see ``gk.scale_by_radam``.

    optax ``radam(lr, b1, b2, eps, threshold=threshold)`` exactly (no weight decay there). torch
    ``RAdam(lr, betas, eps, weight_decay, decoupled_weight_decay)`` places ``eps`` before the bias correction
    (identical at ``eps=0``; see ``gk.scale_by_radam``) and has no ``threshold`` (it is 5).

    >>> tx = gk.radam(1e-3)
    """
    return _decayed(scale_by_radam(b1, b2, eps, threshold), learning_rate, weight_decay, decoupled_weight_decay, mask)


@described
def amsgrad(
    learning_rate: Scalar | Schedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    weight_decay: Scalar = 0.0,
    decoupled_weight_decay: bool = False,
    mask: Any = None,
) -> GradientTransformation:
    """AMSGrad (Reddi et al., 2018): Adam with a non-increasing step; see ``gk.scale_by_amsgrad``.

    torch ``Adam(lr, betas, eps, weight_decay, amsgrad=True)`` (``decoupled_weight_decay=True``: ``AdamW(...,
    amsgrad=True)``). optax's ``amsgrad`` takes the maximum after the bias correction (16% apart).

    >>> tx = gk.amsgrad(1e-3)
    """
    return _decayed(scale_by_amsgrad(b1, b2, eps), learning_rate, weight_decay, decoupled_weight_decay, mask)


@described
def adamax(
    learning_rate: Scalar | Schedule = 2e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    weight_decay: Scalar = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Adamax (Kingma & Ba, 2015): Adam with the infinity norm; see ``gk.scale_by_adamax``.

    torch ``Adamax(lr, betas, eps, weight_decay)`` (L2 decay, same defaults); optax ``adamax(lr, b1, b2, eps)``.

    >>> tx = gk.adamax(2e-3)
    """
    return _decayed(scale_by_adamax(b1, b2, eps), learning_rate, weight_decay, False, mask)


@described
def adadelta(
    learning_rate: Scalar | Schedule = 1.0,
    rho: Scalar = 0.9,
    eps: Scalar = 1e-6,
    weight_decay: Scalar = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Adadelta (Zeiler, 2012): ``W <- W - lr * sqrt(E[delta^2] + eps) / sqrt(E[g^2] + eps) * g``; see ``gk.scale_by_adadelta``.

    torch ``Adadelta(lr, rho, eps, weight_decay)`` (L2 decay, same defaults); optax ``adadelta(lr, rho, eps,
    weight_decay, weight_decay_mask=mask)`` (its ``learning_rate=None`` is ``lr=1``).

    >>> tx = gk.adadelta()
    """
    return _decayed(scale_by_adadelta(rho, eps), learning_rate, weight_decay, False, mask)


@described
def adabelief(
    learning_rate: Scalar | Schedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-16,
    eps_root: Scalar = 1e-16,
    weight_decay: Scalar = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al., 2020): Adam whose denominator is the spread of ``g`` around ``m``; see ``gk.scale_by_belief``.

    optax ``adabelief(lr, b1, b2, eps, eps_root)`` exactly; ``weight_decay`` (not in optax's) is decoupled,
    as in the paper's AdamW-style variant. torch has no AdaBelief.

    >>> tx = gk.adabelief(1e-3)
    """
    return _decayed(scale_by_belief(b1, b2, eps, eps_root), learning_rate, weight_decay, True, mask)


__all__ = ["adabelief", "adadelta", "adamax", "amsgrad", "nadam", "radam"]
