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
    gk.packing       gk.pack(params) -> gk.Packed: a many-leaf tree as a few buffers, for fast steps
    gk.schedules     learning-rate schedules, each a pure step -> lr function (warmup_cosine, one_cycle, ...)
    gk.landscapes    2-D loss surfaces (Beale, Rosenbrock, saddle, narrow valley, Himmelblau); gk.race races optimizers on them
    gk.losses, gk.regularizers, gk.init, gk.gradcheck   cross-entropy/hinge, L1/L2/prox_l1, Xavier/Kaiming, check_grads
    gk.train         the full recipe on real data: digits/.npz data, linear + MLP models, fit (`gradkit train`)
"""

from gradkit import gradcheck, init, landscapes, losses, race, regularizers, schedules, train
from gradkit.core import ChainState, EmptyState, GradientTransformation, apply_updates, chain, identity
from gradkit.optimizers import adagrad, adam, adamw, rmsprop, sgd
from gradkit.packing import Packed, pack
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

__version__ = "0.1.0"

__all__ = [
    "AdamState",
    "ChainState",
    "EmptyState",
    "GradientTransformation",
    "MomentumState",
    "Packed",
    "RmsState",
    "RssState",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "bias_correction",
    "chain",
    "clip_by_global_norm",
    "gradcheck",
    "identity",
    "init",
    "landscapes",
    "losses",
    "pack",
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
    "sgd",
    "train",
    "update_moment",
]
