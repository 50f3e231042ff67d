"""What a run leaves behind: ``metrics.json`` (every epoch's numbers, the config, versions, wall time) and
``curves.png`` (train vs validation loss and accuracy, or, for a sweep, the generalization gap against
the swept value). matplotlib is imported only when a picture is drawn (extra ``plot``).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np

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
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name in ((ax_loss, "loss"), (ax_acc, "acc")):
        ax.plot(epochs, result.history[f"train_{name}"], label="train")
        ax.plot(epochs, result.history[f"val_{name}"], label="validation")
        ax.axvline(best, color="gray", linestyle=":", label=f"best validation loss (epoch {best})")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_yscale("log")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(f"final gap (train - val accuracy): {float(gap(result)[-1]):+.3f}")
    ax_loss.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(path: str | os.PathLike, result: Result, name: str, labels: Sequence[str], title: str = "") -> None:
    """``curves.png`` for a sweep: the generalization gap and the accuracies against the swept value
    (``labels``, one per run), plus each run's validation loss per epoch."""
    plt = _pyplot()
    pos = np.arange(len(labels))  # evenly spaced: sweeps are log grids that often include 0
    s = summary(result)
    fig, (ax_gap, ax_acc, ax_val) = plt.subplots(1, 3, figsize=(15, 4))
    ax_gap.plot(pos, s["final_gap"], "o-", label="last epoch")
    ax_gap.plot(pos, s["best_gap"], "s--", label="best-validation checkpoint")
    ax_gap.set_ylabel("train - validation accuracy")
    ax_gap.set_title("generalization gap")
    ax_acc.plot(pos, s["final_train_acc"], "o-", label="train (last epoch)")
    ax_acc.plot(pos, s["final_val_acc"], "o-", label="validation (last epoch)")
    ax_acc.plot(pos, s["best_test_acc"], "s--", label="test (checkpoint)")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_gap, ax_acc):
        ax.set_xticks(pos, labels, rotation=20 if max(map(len, labels)) > 8 else 0)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    epochs = np.arange(1, result.history["val_loss"].shape[-1] + 1)
    for label, curve in zip(labels, result.history["val_loss"]):
        ax_val.plot(epochs, curve, label=label if "=" in label else f"{name}={label}")
    ax_val.set_yscale("log")
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel("validation cross-entropy")
    ax_val.grid(alpha=0.3)
    ax_val.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("curves.png needs matplotlib: `pip install gradkit[plot]`") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON-ready floats, ints and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    array = np.asarray(value)
    return array.tolist()


__all__ = ["gap", "plot_curves", "plot_sweep", "summary", "versions", "write_metrics"]
