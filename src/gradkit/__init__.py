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
    gk.hyperparams   with_hyperparams (read/set hyperparameters in the state), reduce_on_plateau
    gk.linesearch    zoom_linesearch (strong Wolfe), backtracking_linesearch (Armijo), value_and_grad_from_state
    gk.lbfgs, gk.minimize   L-BFGS (two-loop recursion + line search); minimize(f, params): a full-batch solve
    gk.optimizers    sgd, adagrad, rmsprop, adam, adamw; nadam, radam, amsgrad, adamax, adadelta, adabelief;
                     lars, lamb, lion; adafactor; muon; schedule_free_sgd/adamw
    gk.packing       gk.pack(params) -> gk.Packed: a many-leaf tree as a few buffers, for fast steps
    gk.schedules     learning-rate schedules, each a pure step -> lr function (warmup_cosine, one_cycle, ...)
    gk.landscapes    2-D loss surfaces (Beale, Rosenbrock, saddle, narrow valley, Himmelblau); gk.race races optimizers on them
    gk.losses, gk.regularizers, gk.init, gk.gradcheck   cross-entropy/hinge, L1/L2/prox_l1, Xavier/Kaiming, check_grads
    gk.sharding      state_shardings, abstract_state: optimizer state on a device mesh (ZeRO-1 with zero_axis)
    gk.train         the full recipe on real data: digits/.npz data, linear + MLP models, fit (`gradkit train`)
"""

from gradkit import gradcheck, init, landscapes, losses, race, regularizers, schedules, sharding, train
from gradkit.combine import MaskedState, PartitionState, freeze, labels_by_path, masked, partition, set_to_zero
from gradkit.core import ChainState, EmptyState, GradientTransformation, apply_updates, chain, identity
from gradkit.hyperparams import (
    HyperparamsState,
    PlateauState,
    reduce_on_plateau,
    set_hyperparams,
    with_hyperparams,
)
from gradkit.lbfgs import LbfgsState, lbfgs, scale_by_lbfgs
from gradkit.linesearch import LineSearchState, backtracking_linesearch, value_and_grad_from_state, zoom_linesearch
from gradkit.minimize import MinimizeResult, minimize
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
from gradkit.packing import Packed, pack
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
    clip,
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
    scale_by_schedule,
    scale_by_trust_ratio,
    schedule_free,
    schedule_free_eval_params,
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
    "MUON_COEFFICIENTS",
    "AccumulateState",
    "AdadeltaState",
    "AdamState",
    "AmsgradState",
    "ChainState",
    "EmaParamsState",
    "EmptyState",
    "FactoredRmsState",
    "GradientTransformation",
    "HyperparamsState",
    "LbfgsState",
    "LineSearchState",
    "LionState",
    "MaskedState",
    "MinimizeResult",
    "MomentumState",
    "NadamState",
    "Packed",
    "PartitionState",
    "PlateauState",
    "RmsState",
    "RssState",
    "ScheduleFreeState",
    "SkipNonfiniteState",
    "abstract_state",
    "accumulate",
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
    "backtracking_linesearch",
    "bias_correction",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "ema_params",
    "freeze",
    "gradcheck",
    "identity",
    "init",
    "labels_by_path",
    "lamb",
    "landscapes",
    "lars",
    "lbfgs",
    "lion",
    "losses",
    "masked",
    "minimize",
    "muon",
    "nadam",
    "newton_schulz",
    "orthogonalise",
    "pack",
    "partition",
    "race",
    "radam",
    "reduce_on_plateau",
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
    "scale_by_lbfgs",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_momentum",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_relative_step",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_trust_ratio",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "schedules",
    "set_hyperparams",
    "set_to_zero",
    "sgd",
    "sharding",
    "skip_nonfinite",
    "state_shardings",
    "train",
    "update_moment",
    "value_and_grad_from_state",
    "with_hyperparams",
    "zoom_linesearch",
]
