"""What a run leaves behind: ``metrics.json`` (every epoch's numbers, the config, versions, wall time),
``curves.png`` (train vs validation loss and accuracy per epoch; for a sweep, one such column per run) and
``params.npz`` (the last and the best-validation params, read back by ``load``). matplotlib is imported
only when a picture is drawn (extra ``plot``).

metrics.json is strict JSON: a non-finite number (a diverged run) is written as ``null`` and the
``"non_finite"`` entry says which metrics and epochs were NaN or infinite; the picture marks the epoch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from gradkit._style import TRAIN, VALIDATION, pyplot
from gradkit.train.loop import Result


def versions() -> dict[str, str]:
    """The versions that produced a run: python, gradkit, jax, jaxlib, numpy, and the JAX backend."""
    import jax
    import jaxlib.version

    import gradkit

    return {
        "python": platform.python_version(),
        "gradkit": gradkit.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.version.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
    }


def gap(result: Result) -> np.ndarray:
    """The generalization gap per epoch: ``train accuracy - validation accuracy`` (shape of the history)."""
    return result.history["train_acc"] - result.history["val_acc"]


def summary(result: Result) -> dict[str, Any]:
    """The headline numbers of a run (lists for a sweep): last epoch, the best-validation checkpoint, test."""
    last = lambda name: result.history[name][..., -1]
    at_best = lambda curve: np.take_along_axis(curve, result.best_epoch[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):  # inf - inf in a diverged run is NaN (null in metrics.json)
        return _plain(
            {
                "final_train_acc": last("train_acc"),
                "final_val_acc": last("val_acc"),
                "final_gap": gap(result)[..., -1],
                "final_loss_gap": last("val_loss") - last("train_loss"),
                "final_test_acc": result.test["final_acc"],
                "final_test_loss": result.test["final_loss"],
                "best_epoch": result.best_epoch + 1,  # 1-based, as printed
                "best_gap": at_best(gap(result)),
                "best_loss_gap": at_best(result.history["val_loss"] - result.history["train_loss"]),
                "best_test_acc": result.test["best_acc"],
                "best_test_loss": result.test["best_loss"],
                "wall_time_s": result.wall_time,
            }
        )


def write_metrics(path: str | os.PathLike, result: Result, config: dict[str, Any], wall_time_total: float) -> None:
    """Write ``metrics.json``: ``{"config", "versions", "wall_time_s", "epochs": [...], "summary"}``.

    ``epochs[e]`` holds that epoch's ``METRICS`` (each a list over the runs of a sweep).
    """
    n_epochs = result.history["train_loss"].shape[-1]
    epochs = [{"epoch": e + 1, **{k: _plain(v[..., e]) for k, v in result.history.items()}} for e in range(n_epochs)]
    non_finite = {
        name: [int(e) + 1 for e in np.flatnonzero(~np.isfinite(np.asarray(v)).reshape(-1, v.shape[-1]).all(axis=0))]
        for name, v in result.history.items()
    }
    headline = summary(result)
    payload = {
        "non_finite": {k: v for k, v in non_finite.items() if v} or None,
        "config": config,
        "versions": versions(),
        "wall_time_s": wall_time_total,
        "train_time_s": result.wall_time,
        "epochs": epochs,
        "summary": headline,
    }
    with open(path, "w") as f:
        json.dump(_strict(payload), f, indent=2, allow_nan=False)
        f.write("\n")


def diverged_epochs(result: Result) -> str:
    """``""`` for a finite run, else where it went non-finite, e.g. ``"train_loss non-finite from epoch 3"``."""
    parts = []
    for name in ("batch_loss", "train_loss", "val_loss"):
        bad = ~np.isfinite(np.asarray(result.history[name])).reshape(-1, result.history[name].shape[-1]).all(axis=0)
        if bad.any():
            parts.append(f"{name} non-finite from epoch {int(np.argmax(bad)) + 1}")
    return ", ".join(parts)


def _mark_divergence(ax: Any, losses: np.ndarray, n_epochs: int) -> None:
    """A red line and label at the first epoch whose loss is NaN or infinite (the curves stop there)."""
    bad = ~np.isfinite(np.asarray(losses))
    if bad.any():
        epoch = int(np.argmax(bad)) + 1
        ax.axvline(epoch, color="red", lw=2, label=f"diverged (loss NaN/inf) at epoch {epoch}")
        ax.text(epoch, 0.5, " diverged", color="red", transform=ax.get_xaxis_transform(), fontsize=12, va="center")
        ax.set_xlim(0.8, max(n_epochs, 2) + 0.2)  # the loss curve stops early; keep every epoch in view


def _log_if_positive(ax: Any, *curves: np.ndarray) -> None:
    """A log y axis, unless no finite positive value is left to draw (a run diverged from the start)."""
    finite = np.concatenate([np.asarray(c, float).reshape(-1) for c in curves])
    finite = finite[np.isfinite(finite)]
    if finite.size and (finite > 0).all():
        ax.set_yscale("log")


def plot_curves(path: str | os.PathLike, result: Result, title: str = "") -> None:
    """``curves.png`` for one run: loss and accuracy per epoch, train vs validation, best epoch marked."""
    plt = _pyplot()
    epochs = np.arange(1, result.history["train_loss"].shape[-1] + 1)
    best = int(result.best_epoch) + 1
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    # A diverged run may leave single finite points between NaNs: markers keep them visible.
    marker = None if np.isfinite(result.history["train_loss"]).all() else "o"
    for ax, name in ((ax_loss, "loss"), (ax_acc, "acc")):
        ax.plot(epochs, result.history[f"train_{name}"], color=TRAIN, lw=2, marker=marker, label="train")
        ax.plot(epochs, result.history[f"val_{name}"], color=VALIDATION, lw=2, marker=marker, label="validation")
        ax.axvline(best, color="grey", linestyle=":", label=f"best validation loss (epoch {best})")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_loss.set_ylabel("cross-entropy (log scale)")
    _log_if_positive(ax_loss, result.history["train_loss"], result.history["val_loss"])
    for ax in (ax_loss, ax_acc):
        _mark_divergence(ax, result.history["train_loss"], len(epochs))
    ax_acc.set_ylabel("accuracy")
    ax_loss.set_title("loss")
    ax_acc.set_title(f"accuracy; final gap (train - validation): {100 * float(gap(result)[-1]):+.1f} points")
    handles, labels = ax_loss.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(path: str | os.PathLike, result: Result, name: str, labels: Sequence[str], title: str = "") -> None:
    """``curves.png`` for a sweep, as small multiples: one column per run (``labels``, one per run), its
    train and validation loss per epoch above, its accuracies below, on shared axes so the runs compare."""
    fig = sweep_figure(result, name, labels, title)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)


def sweep_figure(result: Result, name: str, labels: Sequence[str], title: str = ""):
    """The figure ``plot_sweep`` writes: ``axes[0, k]`` run k's losses, ``axes[1, k]`` its accuracies."""
    plt = _pyplot()
    runs = len(labels)
    epochs = np.arange(1, result.history["val_loss"].shape[-1] + 1)
    s = summary(result)
    fig, axes = plt.subplots(
        2, runs, figsize=(1.2 + 3.4 * runs, 6.6), sharex=True, sharey="row", squeeze=False, layout="constrained"
    )
    for k, label in enumerate(labels):
        ax_loss, ax_acc = axes[0, k], axes[1, k]
        best = s["best_epoch"][k]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(epochs, result.history[f"train_{metric}"][k], color=TRAIN, lw=2, label="train")
            ax.plot(epochs, result.history[f"val_{metric}"][k], color=VALIDATION, lw=2, label="validation")
            ax.axvline(best, color="grey", linestyle=":", label="best validation loss (checkpoint)")
            _mark_divergence(ax, result.history["train_loss"][k], len(epochs))
            ax.grid(alpha=0.3)
        setting = label if "=" in label else f"{name}={label}"
        gap_points, loss_gap = 100 * s["final_gap"][k], s["final_loss_gap"][k]
        ax_loss.set_title(f"{setting}\ngap {gap_points:.1f} points, loss gap {loss_gap:.2f}", fontsize=10)
        ax_acc.set_xlabel("epoch")
    _log_if_positive(axes[0, 0], result.history["train_loss"], result.history["val_loss"])
    axes[0, 0].set_ylabel("cross-entropy (log scale)")
    axes[1, 0].set_ylabel("accuracy")
    handles, legend_labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle(f"{title}\ngap = train - validation accuracy, loss gap = validation - train loss, last epoch")
    return fig


def _pyplot():
    """pyplot with gradkit's figure style, or an ImportError naming the extra to install."""
    return pyplot("plot")


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON-ready floats, ints and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    array = np.asarray(value)
    return array.tolist()


def _strict(value: Any) -> Any:
    """``value`` with every NaN and inf float replaced by None, so ``json.dump`` writes strict JSON (null)."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- params.npz -------------------------------------------------------------------------------------


def _flatten(tree: Any, prefix: str, into: dict[str, np.ndarray]) -> Any:
    """Store the leaves of a tree of dicts/lists/tuples in ``into`` under ``prefix/...``; return its skeleton."""
    if isinstance(tree, dict):
        return {"dict": {k: _flatten(v, f"{prefix}/{k}", into) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        return {type(tree).__name__: [_flatten(v, f"{prefix}/{i}", into) for i, v in enumerate(tree)]}
    into[prefix] = np.asarray(tree)
    return prefix


def _unflatten(skeleton: Any, arrays: Any) -> Any:
    if isinstance(skeleton, str):
        return np.asarray(arrays[skeleton])
    ((kind, body),) = skeleton.items()
    if kind == "dict":
        return {k: _unflatten(v, arrays) for k, v in body.items()}
    items = [_unflatten(v, arrays) for v in body]
    return items if kind == "list" else tuple(items)


def save_params(path: str | os.PathLike, result: Result) -> None:
    """Write ``params.npz``: the last epoch's params (``final/...``) and the best-validation ones (``best/...``).

    The tree's shape is stored beside the arrays, so ``load`` rebuilds the same dicts and lists.
    """
    arrays: dict[str, np.ndarray] = {}
    skeleton = {"final": _flatten(result.params, "final", arrays), "best": _flatten(result.best_params, "best", arrays)}
    # numpy's stub lets **arrays reach allow_pickle; the keys here are "final/..." and "best/..." only.
    np.savez(path, __structure__=np.asarray(json.dumps(skeleton)), **arrays)  # pyright: ignore[reportArgumentType]


def load(path: str | os.PathLike, which: str = "best") -> Any:
    """The params a ``gradkit train --out DIR`` run saved: ``which="best"`` (best validation loss) or ``"final"``.

    ``path`` is the run's folder or its ``params.npz``. Arrays are NumPy (a sweep's have a leading run axis);
    pass them to ``model.apply`` as they are.

    >>> params = gk.train.load("runs/mlp")
    >>> logits = gk.train.models.mlp(64, (1024,), 10).apply(params, x)
    """
    if which not in ("best", "final"):
        raise ValueError(f"which must be 'best' or 'final', got {which!r}")
    path = os.fspath(path)
    file = os.path.join(path, "params.npz") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"no params.npz at {path!r}: pass a `gradkit train --out DIR` folder or its params.npz")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            skeleton = json.loads(str(arrays["__structure__"]))
            return _unflatten(skeleton[which], arrays)
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{file!r} is not a params.npz written by gradkit train ({e})") from None


__all__ = [
    "diverged_epochs",
    "gap",
    "load",
    "plot_curves",
    "plot_sweep",
    "save_params",
    "summary",
    "sweep_figure",
    "versions",
    "write_metrics",
]
