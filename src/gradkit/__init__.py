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
    gk.hyperparams   with_hyperparams (read/set hyperparameters in the state), reduce_on_plateau
    gk.schedules     learning-rate schedules, each a pure step -> lr function (warmup_cosine, one_cycle, ...)
    gk.landscapes    2-D loss surfaces (Beale, Rosenbrock, saddle, narrow valley, Himmelblau); gk.race races optimizers on them
    gk.losses, gk.regularizers, gk.init, gk.gradcheck   cross-entropy/hinge, L1/L2/prox_l1, Xavier/Kaiming, check_grads
    gk.train         the full recipe on real data: digits/.npz data, linear + MLP models, fit (`gradkit train`)
"""

from gradkit import gradcheck, init, landscapes, losses, race, regularizers, schedules, train
from gradkit.core import ChainState, EmptyState, GradientTransformation, apply_updates, chain, identity
from gradkit.hyperparams import (
    HyperparamsState,
    PlateauState,
    reduce_on_plateau,
    set_hyperparams,
    with_hyperparams,
)
from gradkit.optimizers import adagrad, adam, adamw, rmsprop, sgd
from gradkit.primitives import (
    AdamState,
    MomentumState,
    RmsState,
    RssState,
    add_decayed_weights,
    bias_correction,
    clip,
    clip_by_block_rms,
    clip_by_global_norm,
    scale,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_momentum,
    scale_by_rms,
    scale_by_rss,
    scale_by_schedule,
    update_moment,
)

__version__ = "0.1.0"

__all__ = [
    "AdamState",
    "ChainState",
    "EmptyState",
    "GradientTransformation",
    "HyperparamsState",
    "MomentumState",
    "PlateauState",
    "RmsState",
    "RssState",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "bias_correction",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "gradcheck",
    "identity",
    "init",
    "landscapes",
    "losses",
    "race",
    "reduce_on_plateau",
    "regularizers",
    "rmsprop",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_momentum",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "schedules",
    "set_hyperparams",
    "sgd",
    "train",
    "update_moment",
    "with_hyperparams",
]
