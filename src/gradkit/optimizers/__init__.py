"""Optimizers, each a chain of primitives, grouped by family (``lecture``: sgd .. adamw)."""

from gradkit.optimizers.lecture import BY_NAME, adagrad, adam, adamw, rmsprop, sgd

__all__ = ["BY_NAME", "adagrad", "adam", "adamw", "rmsprop", "sgd"]
