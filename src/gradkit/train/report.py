"""What a run leaves behind: ``metrics.json`` (every epoch's numbers, the config, versions, wall time) and
``curves.png`` (train vs validation loss and accuracy per epoch; for a sweep, one such column per run). matplotlib is imported only when a picture is drawn (extra ``plot``).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np

from gradkit._style import TRAIN, VALIDATION, pyplot
from gradkit.train.loop import Result


def versions() -> dict[str, str]:
    """The versions that produced a run: python, gradkit, jax, jaxlib, numpy, and the JAX backend."""
    import jax
    import jaxlib

    import gradkit

    return {
        "python": platform.python_version(),
        "gradkit": gradkit.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
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
    payload = {
        "config": config,
        "versions": versions(),
        "wall_time_s": wall_time_total,
        "train_time_s": result.wall_time,
        "epochs": epochs,
        "summary": summary(result),
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


def plot_curves(path: str | os.PathLike, result: Result, title: str = "") -> None:
    """``curves.png`` for one run: loss and accuracy per epoch, train vs validation, best epoch marked."""
    plt = _pyplot()
    epochs = np.arange(1, result.history["train_loss"].shape[-1] + 1)
    best = int(result.best_epoch) + 1
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    for ax, name in ((ax_loss, "loss"), (ax_acc, "acc")):
        ax.plot(epochs, result.history[f"train_{name}"], color=TRAIN, lw=2, label="train")
        ax.plot(epochs, result.history[f"val_{name}"], color=VALIDATION, lw=2, label="validation")
        ax.axvline(best, color="grey", linestyle=":", label=f"best validation loss (epoch {best})")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_loss.set_ylabel("cross-entropy (log scale)")
    ax_loss.set_yscale("log")
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
            ax.grid(alpha=0.3)
        setting = label if "=" in label else f"{name}={label}"
        gap_points, loss_gap = 100 * s["final_gap"][k], s["final_loss_gap"][k]
        ax_loss.set_title(f"{setting}\ngap {gap_points:.1f} points, loss gap {loss_gap:.2f}", fontsize=10)
        ax_acc.set_xlabel("epoch")
    axes[0, 0].set_yscale("log")
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


__all__ = ["gap", "plot_curves", "plot_sweep", "summary", "sweep_figure", "versions", "write_metrics"]
