"""Optimizers, each a chain of primitives, grouped by family.

lecture       sgd, adagrad, rmsprop, adam, adamw (the lecture's)
adaptive      nadam, radam, amsgrad, adamax, adadelta, adabelief (Adam's relatives)
large_batch   lars, lamb, lion
adafactor     adafactor (factored second moments)
muon          muon (orthogonalised momentum for matrices, AdamW for the rest)
schedule_free schedule_free_sgd, schedule_free_adamw
"""

from collections.abc import Callable

from gradkit.core import GradientTransformation
from gradkit.lbfgs import lbfgs
from gradkit.optimizers.adafactor import adafactor
from gradkit.optimizers.adaptive import adabelief, adadelta, adamax, amsgrad, nadam, radam
from gradkit.optimizers.large_batch import lamb, lars, lion
from gradkit.optimizers.lecture import adagrad, adam, adamw, rmsprop, sgd
from gradkit.optimizers.muon import muon
from gradkit.optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd

# Every optimizer by name, for the command line and the race (``--optimizer adamw``).
BY_NAME: dict[str, Callable[..., GradientTransformation]] = {
    **{
        f.__name__: f
        for f in (
            sgd,
            adagrad,
            rmsprop,
            adam,
            adamw,
            lbfgs,
            adabelief,
            adadelta,
            adafactor,
            adamax,
            amsgrad,
            lamb,
            lars,
            lion,
            muon,
            nadam,
            radam,
            schedule_free_adamw,
            schedule_free_sgd,
        )
    },
}

__all__ = [
    "BY_NAME",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "lamb",
    "lars",
    "lion",
    "muon",
    "nadam",
    "radam",
    "rmsprop",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "sgd",
]
