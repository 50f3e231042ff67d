"""Data for ``gradkit train``: the digits, a user's ``.npz``, the split, and the epoch iterator.

The iterator is the lecture's mini-batch SGD (chapter 5): each epoch visits every training example
once, in a fresh random order drawn from a JAX PRNG key, ``batch_size`` examples per step. It returns
index arrays rather than Python generators, so a whole epoch runs as one ``lax.scan``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# ``augment(key, x_batch) -> x_batch``: a random distortion of a batch of (standardized) training features.
Augment = Callable[[jax.Array, jax.Array], jax.Array]


class Split(NamedTuple):
    """Features ``x`` (n, d) float32 and integer labels ``y`` (n,) of each part, plus the class count."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: 1,797 8x8 images as (1797, 64) pixels 0..16, labels 0..9.

    The data ships inside scikit-learn (no download); it is imported only here (extra ``data``).

    >>> x, y = load_digits()
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:
        raise ImportError(
            "the default data set (digits) comes with scikit-learn: `pip install gradkit[data]`, "
            "or pass your own data with --data PATH.npz"
        ) from e
    x, y = sklearn_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int32)


def load_npz(path: str | os.PathLike, flatten: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load a user's data set: an ``.npz`` holding ``x`` (n, features...) and integer labels ``y`` (n,).

    ``x`` is float32, flattened to (n, d) unless ``flatten=False`` (then images keep their shape, e.g.
    (n, height, width)). Raises ``ValueError`` naming the file and what is wrong.

    >>> np.savez("mine.npz", x=features, y=labels); x, y = load_npz("mine.npz")
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"--data {path!r}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # np.load raises several types for non-npz input
        raise ValueError(f"--data {path!r} is not a readable .npz file ({type(e).__name__}: {e})") from e
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(f"--data {path!r} must hold arrays 'x' and 'y'; missing {missing}, found {sorted(arrays)}")
    x, y = arrays["x"], arrays["y"]
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"--data {path!r}: x must be (n, features...) and y (n,) with the same n, got x {x.shape} and y {y.shape}"
        )
    if x.shape[0] < 3:
        raise ValueError(f"--data {path!r}: need at least 3 examples (train, validation, test), got {x.shape[0]}")
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise ValueError(f"--data {path!r}: x must be real numbers, got dtype {x.dtype}")
    x = (x.reshape(x.shape[0], -1) if flatten else x).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"--data {path!r}: x holds NaN or infinite values")
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"--data {path!r}: y must hold integer class labels, got dtype {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"--data {path!r}: labels must be >= 0, got {int(y.min())}")
    return x, y.astype(np.int32)


def split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> Split:
    """Shuffle with ``seed`` and cut into train / validation / test, stratified by class.

    Each class is split in the same proportions, so small parts keep the class balance. The
    features are left as they are; see ``standardize``.

    >>> parts = split(*load_digits(), val_fraction=0.15, test_fraction=0.15, seed=0)
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test, n_val = round(len(idx) * test_fraction), round(len(idx) * val_fraction)
        parts[0].append(idx[n_test + n_val :])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[2].append(idx[:n_test])
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    if min(len(train), len(val), len(test)) == 0:
        raise ValueError(
            f"{len(y)} examples are too few for val_fraction={val_fraction}, test_fraction={test_fraction}: "
            f"got {len(train)} train, {len(val)} validation, {len(test)} test"
        )
    return Split(x[train], y[train], x[val], y[val], x[test], y[test], int(y.max()) + 1)


def subset(parts: Split, train_size: int, seed: int = 0) -> Split:
    """Keep ``train_size`` training examples (a random, class-stratified subset); validation and test are unchanged."""
    n = len(parts.y_train)
    if not 0 < train_size <= n:
        raise ValueError(f"train_size must be in [1, {n}] (the training examples there are), got {train_size!r}")
    rng = np.random.default_rng(seed)
    # Each example's random rank inside its class; taking the lowest ranks first keeps every class present.
    rank = np.empty(n)
    for c in np.unique(parts.y_train):
        idx = np.flatnonzero(parts.y_train == c)
        rank[idx] = rng.permutation(len(idx))
    keep = np.lexsort((rng.random(n), rank))[:train_size]
    return parts._replace(x_train=parts.x_train[keep], y_train=parts.y_train[keep])


def feature_stats(
    x_train: np.ndarray, image_shape: tuple[int, int] | None = None, max_shift: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The per-feature ``mean`` and ``std`` (std 0 replaced by 1, float32) of the training features.

    With ``max_shift > 0`` the statistics are those of the training images under every shift
    ``(dy, dx)`` in ``{-max_shift, ..., max_shift}^2`` (see ``shift_images``): the distribution a
    network trained with ``random_shift`` sees. Without this, a border pixel that is almost always 0
    gets a tiny std and a shifted stroke landing on it becomes a standardized value in the hundreds.

    >>> mean, std = feature_stats(x_train, (8, 8), max_shift=1)
    """
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
    if max_shift > 0:
        if image_shape is None or len(image_shape) != 2 or int(np.prod(image_shape)) != x_train.shape[1]:
            raise ValueError(
                f"image_shape must be (height, width) with height * width = {x_train.shape[1]} "
                f"features, got {image_shape!r}"
            )
        images = jnp.asarray(x_train.reshape(-1, *image_shape))
        offsets = range(-max_shift, max_shift + 1)
        copies = [
            shift_images(images, jnp.broadcast_to(jnp.array([dy, dx]), (len(images), 2)))
            for dy in offsets
            for dx in offsets
        ]
        x_train = np.asarray(jnp.concatenate(copies)).reshape(-1, x_train.shape[1])
    std = x_train.std(axis=0)
    return x_train.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def standardize(parts: Split, stats: tuple[np.ndarray, np.ndarray] | None = None) -> Split:
    """Shift and scale every feature to mean 0, std 1 using the training part's statistics only.

    ``x' = (x - mean_train) / std_train`` with ``(mean_train, std_train) = stats``, by default
    ``feature_stats(parts.x_train)``; constant features (std 0, like the digits' corner pixels) are
    only shifted. Validation and test never leak into the statistics.
    """
    mean, std = feature_stats(parts.x_train) if stats is None else stats
    scale = lambda x: ((x - mean) / std).astype(np.float32)
    return parts._replace(x_train=scale(parts.x_train), x_val=scale(parts.x_val), x_test=scale(parts.x_test))


def shift_images(images: jax.Array, shifts: jax.Array) -> jax.Array:
    """Move each image by whole pixels, filling the uncovered border with 0.

    ``out[k, r, c] = images[k, r - dy_k, c - dx_k]`` where that pixel exists, else 0, for ``images``
    (n, height, width) and integer ``shifts`` (n, 2) holding ``(dy_k, dx_k)``: positive ``dy`` moves the
    picture down, positive ``dx`` right.

    >>> shift_images(jnp.eye(3)[None], jnp.array([[0, 1]]))[0]   # [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    """
    _, height, width = images.shape

    def one(image: jax.Array, shift: jax.Array) -> jax.Array:
        rows = jnp.arange(height)[:, None] - shift[0]
        cols = jnp.arange(width)[None, :] - shift[1]
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        return jnp.where(inside, image[jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1)], 0)

    return jax.vmap(one)(images, shifts)


def random_shift(image_shape: tuple[int, int], max_shift: int, mean: np.ndarray, std: np.ndarray) -> Augment:
    """Data augmentation: ``augment(key, x)`` moves each standardized image of a batch by a random shift.

    The shift happens in pixel space, before standardizing: ``x' = (shift(x * std + mean) - mean) / std``
    with ``(dy, dx)`` drawn uniformly from ``{-max_shift, ..., max_shift}^2`` per example, so the
    uncovered border holds pixel intensity 0 (standardized ``-mean / std``), as a real shifted image
    would. ``mean``, ``std`` are the statistics the features were standardized with (d = height * width),
    best ``feature_stats(x_train, image_shape, max_shift)``.

    >>> stats = feature_stats(x_train, (8, 8), 1); augment = random_shift((8, 8), 1, *stats)
    """
    height, width = image_shape
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
    if np.shape(mean) != (height * width,) or np.shape(std) != (height * width,):
        raise ValueError(
            f"mean and std must have shape ({height * width},) for {height}x{width} images, "
            f"got {np.shape(mean)} and {np.shape(std)}"
        )
    mu, sigma = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)

    def augment(key: jax.Array, x: jax.Array) -> jax.Array:
        shifts = jax.random.randint(key, (x.shape[0], 2), -max_shift, max_shift + 1)
        pixels = (x * sigma + mu).reshape(-1, height, width)
        return (shift_images(pixels, shifts).reshape(x.shape) - mu) / sigma

    return augment


def batches_per_epoch(n: int, batch_size: int) -> int:
    """``ceil(n / batch_size)``: the steps in one epoch over ``n`` examples (the last batch may be partial)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if n < 1:
        raise ValueError(f"need at least one training example, got n={n!r}")
    return -(-n // batch_size)


def epoch_batches(key: jax.Array, n: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """One epoch's mini-batches as arrays: ``indices`` and ``weights``, both (ceil(n / batch_size), batch_size).

    The examples are permuted with ``key``; batch ``i`` holds examples ``indices[i]``. When ``n`` is not
    a multiple of ``batch_size`` the last batch is partial: its empty slots point at example 0 with weight
    0, so a weighted mean ``sum(w * loss) / sum(w)`` over a batch is exactly the mean over its real
    examples (torch's ``DataLoader(drop_last=False)``). ``n`` and ``batch_size`` are static; ``key`` may
    be traced, so this runs inside ``jit``.

    >>> idx, w = epoch_batches(jax.random.key(0), n=10, batch_size=4)   # shapes (3, 4); w[2] = [1, 1, 0, 0]
    """
    num_batches = batches_per_epoch(n, batch_size)
    pad = num_batches * batch_size - n
    order = jax.random.permutation(key, n)
    indices = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(num_batches, batch_size)
    weights = (jnp.arange(num_batches * batch_size) < n).astype(jnp.float32).reshape(num_batches, batch_size)
    return indices, weights


__all__ = [
    "Augment",
    "Split",
    "batches_per_epoch",
    "epoch_batches",
    "feature_stats",
    "load_digits",
    "load_npz",
    "random_shift",
    "shift_images",
    "split",
    "standardize",
    "subset",
]
