"""gradkit: the optimization toolkit of CS231n lecture 3, in JAX.

    import gradkit as gk
    tx = gk.adamw(1e-3, weight_decay=0.01)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = gk.apply_updates(params, updates)

Where things live (the lecture is the architecture):
    gk.core          the contract: GradientTransformation, chain, apply_updates
    gk.primitives    momentum, RSS/RMS scaling, Adam moments, weight decay, clipping
    gk.optimizers    sgd, adagrad, rmsprop, adam, adamw
    gk.combine       parameter groups and masks: partition, labels_by_path, masked, set_to_zero, freeze
    gk.wrappers      accumulate (gradient accumulation), skip_nonfinite, ema_params
    gk.schedules     learning-rate schedules, each a pure step -> lr function (warmup_cosine, one_cycle, ...)
    gk.landscapes    2-D loss surfaces (Beale, Rosenbrock, saddle, narrow valley, Himmelblau); gk.race races optimizers on them
    gk.losses, gk.regularizers, gk.init, gk.gradcheck   cross-entropy/hinge, L1/L2/prox_l1, Xavier/Kaiming, check_grads
    gk.sharding      state_shardings, abstract_state: optimizer state on a device mesh (ZeRO-1 with zero_axis)
    gk.train         the full recipe on real data: digits/.npz data, linear + MLP models, fit (`gradkit train`)
"""

from gradkit import gradcheck, init, landscapes, losses, race, regularizers, schedules, sharding, train
from gradkit.combine import MaskedState, PartitionState, freeze, labels_by_path, masked, partition, set_to_zero
from gradkit.core import ChainState, EmptyState, GradientTransformation, apply_updates, chain, identity
from gradkit.optimizers import adagrad, adam, adamw, rmsprop, sgd
from gradkit.primitives import (
    AdamState,
    MomentumState,
    RmsState,
    RssState,
    add_decayed_weights,
    bias_correction,
    clip_by_global_norm,
    scale,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_momentum,
    scale_by_rms,
    scale_by_rss,
    update_moment,
)
from gradkit.sharding import abstract_state, state_shardings
from gradkit.wrappers import (
    AccumulateState,
    EmaParamsState,
    SkipNonfiniteState,
    accumulate,
    ema_params,
    skip_nonfinite,
)


def _version() -> str:
    """The installed distribution's version: pyproject.toml is the one place it is written."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradkit")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "AccumulateState",
    "AdamState",
    "ChainState",
    "EmaParamsState",
    "EmptyState",
    "GradientTransformation",
    "MaskedState",
    "MomentumState",
    "PartitionState",
    "RmsState",
    "RssState",
    "SkipNonfiniteState",
    "abstract_state",
    "accumulate",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "bias_correction",
    "chain",
    "clip_by_global_norm",
    "ema_params",
    "freeze",
    "gradcheck",
    "identity",
    "init",
    "labels_by_path",
    "landscapes",
    "losses",
    "masked",
    "partition",
    "race",
    "regularizers",
    "rmsprop",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_momentum",
    "scale_by_rms",
    "scale_by_rss",
    "schedules",
    "set_to_zero",
    "sgd",
    "sharding",
    "skip_nonfinite",
    "state_shardings",
    "train",
    "update_moment",
]
