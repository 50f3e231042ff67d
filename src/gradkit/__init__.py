"""gradkit: the optimization toolkit of CS231n lecture 3, in JAX.

    import gradkit as gk
    tx = gk.adamw(1e-3, weight_decay=0.01)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = gk.apply_updates(params, updates)

Where things live (the lecture is the architecture):
    gk.core          the contract: GradientTransformation, chain, apply_updates
    gk.primitives    momentum, RSS/RMS scaling, Adam moments, weight decay, clipping
    gk.optimizers    sgd, adagrad, rmsprop, adam, adamw; nadam, radam, amsgrad, adamax, adadelta, adabelief;
                     lars, lamb, lion; adafactor; muon; schedule_free_sgd/adamw
    gk.schedules     learning-rate schedules, each a pure step -> lr function (warmup_cosine, one_cycle, ...)
    gk.landscapes    2-D loss surfaces (Beale, Rosenbrock, saddle, narrow valley, Himmelblau); gk.race races optimizers on them
    gk.losses, gk.regularizers, gk.init, gk.gradcheck   cross-entropy/hinge, L1/L2/prox_l1, Xavier/Kaiming, check_grads
    gk.train         the full recipe on real data: digits/.npz data, linear + MLP models, fit (`gradkit train`)
"""

from gradkit import gradcheck, init, landscapes, losses, race, regularizers, schedules, train
from gradkit.core import ChainState, EmptyState, GradientTransformation, apply_updates, chain, identity
from gradkit.optimizers import (
    adabelief,
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    adamw,
    amsgrad,
    lamb,
    lars,
    lion,
    muon,
    nadam,
    radam,
    rmsprop,
    schedule_free_adamw,
    schedule_free_sgd,
    sgd,
)
from gradkit.primitives import (
    MUON_COEFFICIENTS,
    AdadeltaState,
    AdamState,
    AmsgradState,
    FactoredRmsState,
    LionState,
    MomentumState,
    NadamState,
    RmsState,
    RssState,
    ScheduleFreeState,
    add_decayed_weights,
    bias_correction,
    clip_by_block_rms,
    clip_by_global_norm,
    newton_schulz,
    orthogonalise,
    scale,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_belief,
    scale_by_factored_rms,
    scale_by_fan_ratio,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_momentum,
    scale_by_nadam,
    scale_by_radam,
    scale_by_relative_step,
    scale_by_rms,
    scale_by_rss,
    scale_by_trust_ratio,
    schedule_free,
    schedule_free_eval_params,
    update_moment,
)

__version__ = "0.1.0"

__all__ = [
    "MUON_COEFFICIENTS",
    "AdadeltaState",
    "AdamState",
    "AmsgradState",
    "ChainState",
    "EmptyState",
    "FactoredRmsState",
    "GradientTransformation",
    "LionState",
    "MomentumState",
    "NadamState",
    "RmsState",
    "RssState",
    "ScheduleFreeState",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_decayed_weights",
    "amsgrad",
    "apply_updates",
    "bias_correction",
    "chain",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "gradcheck",
    "identity",
    "init",
    "lamb",
    "landscapes",
    "lars",
    "lion",
    "losses",
    "muon",
    "nadam",
    "newton_schulz",
    "orthogonalise",
    "race",
    "radam",
    "regularizers",
    "rmsprop",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_factored_rms",
    "scale_by_fan_ratio",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_momentum",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_relative_step",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_trust_ratio",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "schedules",
    "sgd",
    "train",
    "update_moment",
]
