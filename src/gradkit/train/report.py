"""What a run leaves behind: ``metrics.json`` (every epoch's numbers, the config, versions, wall time),
``curves.png`` (train vs validation loss and accuracy, or, for a sweep, the generalization gap against
the swept value) and ``params.npz`` (the last and the best-validation params, read back by ``load``).
matplotlib is imported only when a picture is drawn (extra ``plot``).

metrics.json is strict JSON: a non-finite number (a diverged run) is written as ``null`` and the
``"non_finite"`` entry says which metrics and epochs were NaN or infinite.
"""

from __future__ import annotations

import json
import os
import platform
import zipfile
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
    with np.errstate(invalid="ignore"):  # inf - inf in a diverged run is NaN, written as null
        return _summary(result, last, at_best)


def _summary(result: Result, last: Any, at_best: Any) -> dict[str, Any]:
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
    payload = {
        "non_finite": {k: v for k, v in non_finite.items() if v} or None,
        "config": config,
        "versions": versions(),
        "wall_time_s": wall_time_total,
        "train_time_s": result.wall_time,
        "epochs": epochs,
        "summary": summary(result),
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, allow_nan=False)
        f.write("\n")


def diverged_epochs(result: Result) -> str:
    """``""`` for a finite run, else where it went non-finite, e.g. ``"train_loss non-finite from epoch 3"``."""
    parts = []
    for name in ("batch_loss", "train_loss", "val_loss"):
        bad = ~np.isfinite(np.asarray(result.history[name])).reshape(-1, result.history[name].shape[-1]).all(axis=0)
        if bad.any():
            parts.append(f"{name} non-finite from epoch {int(np.argmax(bad)) + 1}")
    return ", ".join(parts)


def _mark_divergence(ax: Any, result: Result) -> None:
    """A red line and label at the first epoch whose loss is NaN or infinite (the curves stop there)."""
    bad = ~np.isfinite(np.asarray(result.history["train_loss"])).reshape(-1, result.history["train_loss"].shape[-1])
    if bad.any():
        epoch = int(np.argmax(bad.any(axis=0))) + 1
        ax.axvline(epoch, color="red", linewidth=2, label=f"diverged (loss NaN/inf) at epoch {epoch}")
        ax.text(epoch, 0.5, " diverged", color="red", transform=ax.get_xaxis_transform(), fontsize=12, va="center")


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
        ax.set_xlim(1, max(len(epochs), 2))  # a diverged loss curve stops early; keep every epoch in view
        ax.grid(alpha=0.3)
    ax_loss.set_ylabel("cross-entropy")
    finite = np.asarray(result.history["train_loss"])[np.isfinite(result.history["train_loss"])]
    if finite.size and (finite > 0).all():
        ax_loss.set_yscale("log")
    for ax in (ax_loss, ax_acc):
        _mark_divergence(ax, result)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(f"final gap (train - val accuracy): {float(gap(result)[-1]):+.3f}")
    ax_acc.set_ylim(-0.02, 1.02)
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
    finite = np.asarray(result.history["val_loss"])[np.isfinite(result.history["val_loss"])]
    if finite.size and (finite > 0).all():
        ax_val.set_yscale("log")
    _mark_divergence(ax_val, result)
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
    """NumPy scalars and arrays as JSON-ready floats, ints and lists; NaN and inf become None (null)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        array = np.where(np.isfinite(array), array, None)
    return array.tolist()


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
    np.savez(path, __structure__=np.asarray(json.dumps(skeleton)), **arrays)


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
    "versions",
    "write_metrics",
]
