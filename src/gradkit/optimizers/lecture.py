"""The lecture's optimizers, each a chain of primitives.

Every optimizer ends with ``scale_by_learning_rate``, which accepts a number or a schedule. Terms
whose coefficient is a concrete zero (no momentum, no weight decay) are left out of the chain, so
they cost nothing; a traced coefficient always keeps its term.
"""

from __future__ import annotations

from typing import Any

from gradkit import _checks
from gradkit.core import GradientTransformation, chain, described
from gradkit.primitives import (
    Scalar,
    Schedule,
    add_decayed_weights,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_momentum,
    scale_by_rms,
    scale_by_rss,
)


def _unless_zero(coefficient: Scalar, transform: GradientTransformation) -> tuple[GradientTransformation, ...]:
    """``(transform,)``, or nothing when ``coefficient`` is a concrete zero."""
    return () if _checks.is_zero(coefficient) else (transform,)


@described
def sgd(
    learning_rate: Scalar | Schedule,
    momentum: Scalar = 0.0,
    nesterov: bool = False,
    weight_decay: Scalar | Schedule = 0.0,
    mask: Any = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay::

        g <- g + weight_decay * W          coupled L2, as torch.optim.SGD
        v <- momentum * v + g              heavy ball
        W <- W - lr * v                    (Nesterov: W <- W - lr * (g + momentum * v))

    Same as ``torch.optim.SGD(lr, momentum, nesterov=..., weight_decay=...)`` (``dampening=0``) and
    ``optax.sgd`` plus ``optax.add_decayed_weights`` before it. ``mask`` selects the decayed leaves, see
    ``gk.add_decayed_weights`` (torch does this with parameter groups); ``weight_decay`` may be a schedule.
    ``accumulator_dtype`` stores the momentum buffer in another dtype (optax ``sgd(accumulator_dtype=...)``).

    >>> tx = gk.sgd(0.1, momentum=0.9, nesterov=True)
    """
    _checks.flag("nesterov", nesterov)
    if nesterov and _checks.is_zero(momentum):
        raise ValueError(f"nesterov=True needs momentum > 0, got momentum={momentum!r}")
    _checks.non_negative("weight_decay", weight_decay)
    with _checks.aliases(decay="momentum"):
        return chain(
            *_unless_zero(weight_decay, add_decayed_weights(weight_decay, mask)),
            *_unless_zero(momentum, scale_by_momentum(momentum, nesterov, accumulator_dtype)),
            scale_by_learning_rate(learning_rate),
        )


@described
def adagrad(
    learning_rate: Scalar | Schedule, initial_accumulator_value: Scalar = 0.0, eps: Scalar = 1e-7
) -> GradientTransformation:
    """AdaGrad (Duchi et al., 2011): ``h <- h + g^2``, ``W <- W - lr * g / (sqrt(h) + eps)``.

    torch's ``Adagrad`` (``lr_decay=0``) with the same arguments. optax's ``adagrad`` puts ``eps``
    inside the root and starts ``h`` at 0.1: it matches with ``eps=0`` and the accumulator value passed.

    >>> tx = gk.adagrad(0.1)
    """
    return chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))


@described
def rmsprop(
    learning_rate: Scalar | Schedule, decay: Scalar = 0.999, eps: Scalar = 1e-8, eps_in_sqrt: bool = False
) -> GradientTransformation:
    """RMSProp (Tieleman & Hinton, 2012): ``h <- decay*h + (1-decay)*g^2``, ``W <- W - lr * g / (sqrt(h) + eps)``.

    torch's ``RMSprop(lr, alpha=decay, eps=eps)``; optax's ``rmsprop(lr, decay, eps, eps_in_sqrt=False)``.

    >>> tx = gk.rmsprop(1e-3)
    """
    return chain(scale_by_rms(decay, eps, eps_in_sqrt), scale_by_learning_rate(learning_rate))


@described
def adam(
    learning_rate: Scalar | Schedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    eps_root: Scalar = 0.0,
    weight_decay: Scalar | Schedule = 0.0,
    mask: Any = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba, 2015): ``W <- W - lr * m_hat / (sqrt(v_hat) + eps)``; see ``gk.scale_by_adam``.

    ``nesterov=True`` is NAdam's look-ahead first moment (optax ``adam(nesterov=True)``; torch ``NAdam``
    differs, it also decays the momentum). ``mu_dtype`` / ``nu_dtype`` store the moments in another dtype.

    ``weight_decay`` is the lecture's "Adam + L2": ``weight_decay * W`` is added to the gradient before
    the moments, so it is rescaled per parameter like the gradient is (torch ``Adam(weight_decay=...)``).
    For decay applied to the weights directly, use ``gk.adamw``. ``mask`` selects the decayed leaves.

    >>> tx = gk.adam(1e-3)
    """
    _checks.non_negative("weight_decay", weight_decay)
    return chain(
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay, mask)),
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov),
        scale_by_learning_rate(learning_rate),
    )


@described
def adamw(
    learning_rate: Scalar | Schedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    weight_decay: Scalar | Schedule = 0.01,
    mask: Any = None,
    eps_root: Scalar = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter, 2019), decoupled weight decay::

        W <- W - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * W)

    The decay bypasses the adaptive scaling and is multiplied by the learning rate (torch ``AdamW`` and
    optax ``adamw`` both do this; some papers decay by ``weight_decay`` alone). ``mask`` selects the
    decayed leaves, see ``gk.add_decayed_weights``; ``weight_decay`` may be a schedule ``step -> wd``.
    ``nesterov``, ``mu_dtype``, ``nu_dtype``, ``eps_root``: as in ``gk.adam`` (optax ``adamw`` has the same).

    >>> tx = gk.adamw(1e-3, weight_decay=0.05, mask=lambda p: {"w": True, "b": False})
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov),
        *_unless_zero(weight_decay, add_decayed_weights(weight_decay, mask)),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["adagrad", "adam", "adamw", "rmsprop", "sgd"]
