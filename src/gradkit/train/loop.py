"""The training loop: one epoch is one compiled ``lax.scan``; a sweep is the same program under ``vmap``.

``fit`` runs the lecture's recipe step 6 ("train and monitor both training and validation loss"):
after every epoch it evaluates the full training and validation sets and keeps the parameters with the
lowest validation loss so far (the best-validation checkpoint, i.e. early stopping without stopping).
Hyperparameters are data: ``make_tx(hparams)`` builds the optimizer inside the compiled epoch, so
the runs of a sweep over learning rate or weight decay share one program.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import losses, regularizers
from gradkit.core import GradientTransformation, apply_updates
from gradkit.train.data import Augment, Split, batches_per_epoch, epoch_batches
from gradkit.train.models import Model, weights_only

Params = Any
Hyperparams = Mapping[str, Any]
MakeTx = Callable[[Hyperparams], GradientTransformation]
METRICS = ("batch_loss", "train_loss", "train_acc", "val_loss", "val_acc")


class TrainState(NamedTuple):
    """Everything one run carries from epoch to epoch."""

    params: Params
    opt_state: Any
    best_params: Params  # the params at the epoch with the lowest validation loss so far
    best_val_loss: jax.Array
    best_epoch: jax.Array  # int32, -1 before the first epoch
    epoch: jax.Array  # int32, completed epochs


class Result(NamedTuple):
    """What ``fit`` returns; every array has a leading run axis when ``hparams`` held a sweep.

    ``history[name]`` is (epochs,) (or (runs, epochs)) for each name in ``METRICS``; ``test`` holds
    ``final_loss``, ``final_acc`` (last epoch's params) and ``best_loss``, ``best_acc`` (the checkpoint).
    """

    history: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    best_epoch: np.ndarray
    params: Params
    best_params: Params
    wall_time: float


def evaluate(model: Model, params: Params, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean softmax cross-entropy (no regularization term) and accuracy of ``model`` on ``(x, y)``."""
    logits = model.apply(params, x)
    loss = jnp.mean(losses.softmax_cross_entropy(logits, y))
    return loss, jnp.mean(jnp.argmax(logits, axis=-1) == y)


def regularized_loss(
    model: Model, params: Params, x: jax.Array, y: jax.Array, weights: jax.Array, l2: Any
) -> jax.Array:
    """``L = sum_i w_i L_i / sum_i w_i + l2 * R(W)``: weighted mean data loss plus L2 on the weights (not biases)."""
    data_loss = jnp.sum(weights * losses.softmax_cross_entropy(model.apply(params, x), y)) / jnp.sum(weights)
    return data_loss + l2 * regularizers.l2(params, mask=weights_only)


def _programs(
    model: Model, make_tx: MakeTx, batch_size: int, n_train: int, augment: Augment | None
) -> tuple[Callable, Callable]:
    """The two pure functions a run is made of: ``start(hparams, key)`` and ``epoch(state, hparams, key, data)``."""

    def start(hparams: Hyperparams, key: jax.Array) -> TrainState:
        params = model.init(key)
        opt_state = make_tx(hparams).init(params)
        no_epoch, inf = jnp.asarray(-1, jnp.int32), jnp.asarray(jnp.inf, jnp.float32)
        return TrainState(params, opt_state, params, inf, no_epoch, jnp.asarray(0, jnp.int32))

    def epoch(state: TrainState, hparams: Hyperparams, key: jax.Array, data: Split) -> tuple[TrainState, dict]:
        tx = make_tx(hparams)
        l2 = hparams.get("l2", 0.0)
        # ``data`` holds traced arrays here (the epoch is compiled): asarray is a no-op that types them as such.
        x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
        indices, weights = epoch_batches(key, n_train, batch_size)
        # The batch order keeps drawing from ``key`` itself, so a run without augmentation is unchanged.
        augment_keys = jax.random.split(jax.random.fold_in(key, 1), indices.shape[0])

        def step(carry, batch):
            params, opt_state = carry
            i, w, k = batch
            xb = x[i] if augment is None else augment(k, x[i])
            loss, grads = jax.value_and_grad(lambda p: regularized_loss(model, p, xb, y[i], w, l2))(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (apply_updates(params, updates), opt_state), loss

        (params, opt_state), batch_losses = jax.lax.scan(
            step, (state.params, state.opt_state), (indices, weights, augment_keys)
        )
        train_loss, train_acc = evaluate(model, params, x, y)
        val_loss, val_acc = evaluate(model, params, jnp.asarray(data.x_val), jnp.asarray(data.y_val))
        better = val_loss < state.best_val_loss
        best_params = jax.tree.map(lambda new, old: jnp.where(better, new, old), params, state.best_params)
        new_state = TrainState(
            params,
            opt_state,
            best_params,
            jnp.where(better, val_loss, state.best_val_loss),
            jnp.where(better, state.epoch, state.best_epoch),
            state.epoch + 1,
        )
        metrics = dict(zip(METRICS, (jnp.mean(batch_losses), train_loss, train_acc, val_loss, val_acc)))
        return new_state, metrics

    return start, epoch


@functools.lru_cache(maxsize=16)
def _compiled(
    model: Model, make_tx: MakeTx, batch_size: int, n_train: int, sweep: bool, augment: Augment | None
) -> tuple[Callable, ...]:
    """The jitted ``start``, ``epoch`` and test evaluation, vmapped over the runs of a sweep.

    Cached on the model and ``make_tx`` objects: fitting again with other hyperparameter values (they
    are arguments, not constants) reuses the compiled programs.
    """
    start, epoch = _programs(model, make_tx, batch_size, n_train, augment)
    evaluate_test = functools.partial(evaluate, model)
    if sweep:
        start = jax.vmap(start, in_axes=(0, None))
        epoch = jax.vmap(epoch, in_axes=(0, 0, None, None))
        evaluate_test = jax.vmap(evaluate_test, in_axes=(0, None, None))
    return jax.jit(start), jax.jit(epoch), jax.jit(evaluate_test)


def fit(
    model: Model,
    make_tx: MakeTx,
    hparams: Hyperparams,
    data: Split,
    *,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
    augment: Augment | None = None,
    on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> Result:
    """Train ``model`` on ``data`` for ``epochs`` epochs of mini-batch steps with ``make_tx(hparams)``.

    Each step minimises ``mean cross-entropy + hparams["l2"] * gk.regularizers.l2(weights)`` on one
    batch. ``hparams`` maps names to scalars; when its values are 1-D arrays of one length R, the R runs
    are a sweep: they are ``vmap``ped into one compiled epoch and share the init and the batch order
    (both drawn from ``seed``), so they differ only in the swept values. ``augment(key, x_batch)`` (e.g.
    ``gk.train.data.random_shift``), when given, distorts every training batch with a fresh key drawn
    from the epoch's key (the same for every run of a sweep); evaluation always sees the data as they
    are. ``on_epoch(e, metrics)`` is called after each epoch (for progress display) with that epoch's
    ``METRICS``.

    >>> result = fit(mlp(64, (256,), 10), lambda h: gk.adamw(h["learning_rate"]), {"learning_rate": 1e-3},
    ...              data, epochs=20)
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    hparams = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
    ndims = {np.ndim(v) for v in hparams.values()}
    sweep = ndims == {1}
    if ndims - {0, 1} or len(ndims) > 1 or (sweep and len({v.shape[0] for v in hparams.values()}) > 1):
        raise ValueError(
            "hparams must be all scalars (one run) or all 1-D arrays of one length (a sweep), got shapes "
            f"{ {k: tuple(v.shape) for k, v in hparams.items()} }"
        )
    data = data._replace(**{f: jnp.asarray(getattr(data, f)) for f in data._fields if f != "num_classes"})
    n_train = int(data.y_train.shape[0])
    batches_per_epoch(n_train, batch_size)  # validates batch_size
    key_init, key_order = jax.random.split(jax.random.key(seed))
    start, epoch, evaluate_test = _compiled(model, make_tx, batch_size, n_train, sweep, augment)

    began = time.perf_counter()
    state = start(hparams, key_init)
    history: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for e in range(epochs):
        state, metrics = epoch(state, hparams, jax.random.fold_in(key_order, e), data)
        metrics = {k: np.asarray(v) for k, v in metrics.items()}
        for name in METRICS:
            history[name].append(metrics[name])
        if on_epoch is not None:
            on_epoch(e, metrics)
    final_loss, final_acc = evaluate_test(state.params, data.x_test, data.y_test)
    best_loss, best_acc = evaluate_test(state.best_params, data.x_test, data.y_test)
    test = {"final_loss": final_loss, "final_acc": final_acc, "best_loss": best_loss, "best_acc": best_acc}
    test = {k: np.asarray(v) for k, v in test.items()}
    wall_time = time.perf_counter() - began
    return Result(
        {k: np.stack(v, axis=-1) for k, v in history.items()},
        test,
        np.asarray(state.best_epoch),
        state.params,
        state.best_params,
        wall_time,
    )


__all__ = ["METRICS", "Result", "TrainState", "evaluate", "fit", "regularized_loss"]
