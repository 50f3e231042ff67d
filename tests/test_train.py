"""gradkit train: data, iterator, models, the loop, the sweep, optax parity (the library side)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradkit as gk
import gradkit.schedules
from gradkit.train import data, loop, models


@pytest.fixture(scope="module")
def digits() -> data.Split:
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn (`pip install gradkit[data]`)")
    return data.standardize(data.split(*data.load_digits(), seed=0))


def small(parts: data.Split, n: int = 300) -> data.Split:
    return data.subset(parts, n, seed=0)


def adamw_recipe(spe: int, epochs: int):
    return lambda h: gk.adamw(
        gk.schedules.warmup_cosine(h["learning_rate"], 2 * spe, epochs * spe),
        weight_decay=h["weight_decay"],
        mask=models.weights_only,
    )


# -- data -----------------------------------------------------------------------------------------


def test_epoch_batches_visit_every_example_once_and_weight_out_the_padding():
    idx, w = data.epoch_batches(jax.random.key(3), n=10, batch_size=4)
    assert idx.shape == w.shape == (3, 4)
    np.testing.assert_array_equal(np.asarray(w).sum(axis=1), [4, 4, 2])
    real = np.asarray(idx)[np.asarray(w) > 0]
    np.testing.assert_array_equal(np.sort(real), np.arange(10))


def test_epoch_batches_reshuffle_with_the_key_and_run_under_jit():
    a, _ = jax.jit(data.epoch_batches, static_argnums=(1, 2))(jax.random.key(0), 64, 8)
    b, _ = data.epoch_batches(jax.random.key(1), 64, 8)
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.sort(np.asarray(a).ravel()), np.arange(64))


def test_weighted_mean_over_a_partial_batch_is_the_mean_over_its_real_examples():
    model = models.linear(3, 4)
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 3))
    y = jnp.array([0, 1, 2, 3, 1])
    padded_x, padded_y = jnp.concatenate([x, x[:3]]), jnp.concatenate([y, y[:3]])
    weights = jnp.array([1.0, 1, 1, 1, 1, 0, 0, 0])
    got = loop.regularized_loss(model, params, padded_x, padded_y, weights, 0.0)
    expected = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), y))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_split_is_stratified_disjoint_seeded_and_covers_everything():
    x = np.arange(200, dtype=np.float32)[:, None]
    y = np.repeat(np.arange(4), 50).astype(np.int32)
    parts = data.split(x, y, val_fraction=0.2, test_fraction=0.1, seed=5)
    seen = np.concatenate([parts.x_train, parts.x_val, parts.x_test]).ravel()
    np.testing.assert_array_equal(np.sort(seen), x.ravel())
    for part, per_class in ((parts.y_val, 10), (parts.y_test, 5)):
        np.testing.assert_array_equal(np.bincount(part, minlength=4), [per_class] * 4)
    again = data.split(x, y, val_fraction=0.2, test_fraction=0.1, seed=5)
    np.testing.assert_array_equal(parts.x_test, again.x_test)
    assert not np.array_equal(parts.x_test, data.split(x, y, 0.2, 0.1, seed=6).x_test)


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    parts = data.Split(
        rng.normal(3, 2, (100, 2)).astype(np.float32),
        np.zeros(100, np.int32),
        np.full((5, 2), 3.0, np.float32),
        np.zeros(5, np.int32),
        np.full((5, 2), 100.0, np.float32),
        np.zeros(5, np.int32),
        1,
    )
    out = data.standardize(parts)
    np.testing.assert_allclose(out.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.x_train.std(0), 1, rtol=1e-5)
    mean, std = parts.x_train.mean(0), parts.x_train.std(0)
    np.testing.assert_allclose(out.x_test, np.broadcast_to((100 - mean) / std, (5, 2)), rtol=1e-5)


def test_subset_keeps_every_class_and_leaves_val_and_test_alone(digits):
    sub = data.subset(digits, 30, seed=1)
    assert len(sub.y_train) == 30
    np.testing.assert_array_equal(np.bincount(sub.y_train, minlength=10), [3] * 10)
    assert sub.x_val is digits.x_val and sub.x_test is digits.x_test


def test_digits_have_the_documented_shape():
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn")
    x, y = data.load_digits()
    assert x.shape == (1797, 64) and y.shape == (1797,) and x.dtype == np.float32
    assert set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((5, 2))}, "missing \\['y'\\]"),
        ({"x": np.zeros((5, 2)), "y": np.zeros(4, np.int64)}, "same n"),
        ({"x": np.zeros(5), "y": np.zeros(5, np.int64)}, "x must be \\(n, features"),
        ({"x": np.zeros((5, 2)), "y": np.array([0, 1, 0.5, 1, 0])}, "integer class labels"),
        ({"x": np.zeros((5, 2)), "y": np.array([0, -1, 0, 1, 0])}, "labels must be >= 0"),
        ({"x": np.array([[0.0, np.nan]] * 5), "y": np.zeros(5, np.int64)}, "NaN"),
    ],
)
def test_load_npz_rejects_bad_files_naming_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        data.load_npz(path)


def test_load_npz_accepts_images_and_integral_float_labels(tmp_path):
    path = tmp_path / "ok.npz"
    np.savez(path, x=np.ones((6, 2, 3), np.uint8), y=np.array([0.0, 1, 2, 0, 1, 2]))
    x, y = data.load_npz(path)
    assert x.shape == (6, 6) and x.dtype == np.float32 and y.dtype == np.int32


def shifted_by_numpy(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Reference shift: pad with zeros, then cut the window that moves the picture by (dy, dx)."""
    h, w = image.shape
    m = max(abs(dy), abs(dx))
    padded = np.pad(image, m)
    return padded[m - dy : m - dy + h, m - dx : m - dx + w]


def test_shift_images_moves_every_pixel_by_its_shift_and_fills_with_zero():
    rng = np.random.default_rng(0)
    images = rng.uniform(1, 2, (25, 5, 6)).astype(np.float32)  # no zero pixel: a 0 in the output is fill
    shifts = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)])
    got = np.asarray(data.shift_images(jnp.asarray(images), jnp.asarray(shifts)))
    for k, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(got[k], shifted_by_numpy(images[k], dy, dx), err_msg=f"shift {(dy, dx)}")
    np.testing.assert_array_equal(got[shifts.tolist().index([0, 1]), :, 0], 0)  # moved right: column 0 uncovered
    np.testing.assert_array_equal(got[shifts.tolist().index([-1, 0]), -1, :], 0)  # moved up: last row uncovered


def test_random_shift_is_a_pixel_space_shift_of_at_most_one_with_standardized_zero_fill():
    rng = np.random.default_rng(1)
    pixels = rng.integers(1, 17, (500, 8, 8)).astype(np.float32)  # intensities 1..16: fill (0) is recognisable
    x = pixels.reshape(500, 64)
    mean, std = data.feature_stats(x)
    out = np.asarray(jax.jit(data.random_shift((8, 8), 1, mean, std))(jax.random.key(0), jnp.asarray((x - mean) / std)))
    back = (out * std + mean).reshape(500, 8, 8)  # undo the standardization: the shifted pixels
    seen = set()
    for k in range(500):
        matches = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if np.allclose(back[k], shifted_by_numpy(pixels[k], dy, dx), atol=1e-4)
        ]
        assert len(matches) == 1, k
        seen.add(matches[0])
    assert seen == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}  # all nine shifts are drawn
    # In standardized space an uncovered pixel holds the standardized value of intensity 0: -mean / std.
    fill = back.reshape(500, 64) < 0.5
    np.testing.assert_allclose(out[fill], np.broadcast_to(-mean / std, out.shape)[fill], rtol=1e-5)


def test_feature_stats_under_shifts_are_those_of_every_shifted_copy():
    rng = np.random.default_rng(2)
    pixels = rng.uniform(0, 16, (40, 4, 5)).astype(np.float32)
    x = pixels.reshape(40, 20)
    mean, std = data.feature_stats(x)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, x.std(0), rtol=1e-6)
    copies = np.stack([shifted_by_numpy(p, dy, dx) for p in pixels for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    mean, std = data.feature_stats(x, (4, 5), max_shift=1)
    np.testing.assert_allclose(mean, copies.reshape(-1, 20).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, copies.reshape(-1, 20).std(0), rtol=1e-5)


def test_standardizing_with_shifted_statistics_keeps_shifted_digits_in_range():
    # Why the recipe standardizes with the shifted statistics: with the plain ones, border pixels that are
    # almost always 0 have a tiny std, and a stroke shifted onto them becomes a value in the hundreds.
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn")
    raw = data.split(*data.load_digits(), seed=0).x_train
    largest = {}
    for max_shift in (0, 1):
        mean, std = data.feature_stats(raw, (8, 8), max_shift)
        augment = data.random_shift((8, 8), 1, mean, std)
        largest[max_shift] = float(np.abs(augment(jax.random.key(0), jnp.asarray((raw - mean) / std))).max())
    assert largest[0] > 100 and largest[1] < 30, largest


def test_random_shift_validates_its_arguments():
    with pytest.raises(ValueError, match="max_shift must be an int >= 0, got -1"):
        data.random_shift((8, 8), -1, np.zeros(64), np.ones(64))
    with pytest.raises(ValueError, match=r"mean and std must have shape \(64,\)"):
        data.random_shift((8, 8), 1, np.zeros(63), np.ones(63))
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width\) with height \* width = 64"):
        data.feature_stats(np.zeros((5, 64)), (8, 7), max_shift=1)


# -- models ---------------------------------------------------------------------------------------


def test_mlp_has_kaiming_weights_zero_biases_and_relu_layers():
    model = models.mlp(400, (300, 200), 10)
    params = model.init(jax.random.key(0))
    assert [p["w"].shape for p in params] == [(400, 300), (300, 200), (200, 10)]
    for layer in params:
        n_in = layer["w"].shape[0]
        np.testing.assert_allclose(np.std(layer["w"]), np.sqrt(2 / n_in), rtol=0.05)  # >= 2000 samples per layer
        np.testing.assert_array_equal(layer["b"], 0)
    x = jax.random.normal(jax.random.key(1), (7, 400))
    h = x
    for layer in params[:-1]:
        h = np.maximum(h @ layer["w"] + layer["b"], 0)
    np.testing.assert_allclose(model.apply(params, x), h @ params[-1]["w"] + params[-1]["b"], rtol=1e-5, atol=1e-5)


def test_weights_only_masks_off_every_bias():
    mask = models.weights_only(models.mlp(4, (3,), 2).init(jax.random.key(0)))
    assert mask == [{"w": True, "b": False}, {"w": True, "b": False}]
    assert models.weights_only({"w": 1.0, "b": 2.0}) == {"w": True, "b": False}


def test_model_sizes_are_validated():
    with pytest.raises(ValueError, match=r"hidden\[1\] must be a positive int, got 0"):
        models.mlp(4, (3, 0), 2)


# -- the loop -------------------------------------------------------------------------------------


def test_fit_lowers_the_loss_and_keeps_the_best_validation_checkpoint(digits):
    parts = small(digits)
    spe = data.batches_per_epoch(300, 64)
    result = loop.fit(
        models.mlp(64, (32,), 10), adamw_recipe(spe, 6), {"learning_rate": 1e-2, "weight_decay": 0.01}, parts, epochs=6
    )
    h = result.history
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h["batch_loss"][-1] < h["batch_loss"][0]
    best = int(result.best_epoch)
    assert h["val_loss"][best] == h["val_loss"].min()
    # The checkpoint is the params of that epoch: its validation loss, recomputed, is the recorded one.
    val_loss, _ = loop.evaluate(models.mlp(64, (32,), 10), result.best_params, parts.x_val, parts.y_val)
    np.testing.assert_allclose(val_loss, h["val_loss"][best], rtol=1e-5)


@pytest.mark.parametrize("augmented", [False, True])
def test_vmapped_sweep_equals_separate_runs(digits, augmented):
    # Same init, batch order (and shifts, when augmented) in every run; only the swept values differ. vmap
    # batches the matmuls, which may reorder float32 sums: agreement to 1e-5 (a few ulps of accumulated
    # rounding), not bitwise.
    parts = small(digits, 200)
    augment = data.random_shift((8, 8), 1, np.zeros(64), np.ones(64)) if augmented else None
    spe = data.batches_per_epoch(200, 64)
    model, make_tx = models.mlp(64, (16,), 10), adamw_recipe(spe, 3)
    wds, lrs = [0.0, 0.1, 1.0], [1e-3, 3e-3, 1e-2]
    swept = loop.fit(model, make_tx, {"learning_rate": lrs, "weight_decay": wds}, parts, epochs=3, augment=augment)
    for r, (lr, wd) in enumerate(zip(lrs, wds)):
        alone = loop.fit(model, make_tx, {"learning_rate": lr, "weight_decay": wd}, parts, epochs=3, augment=augment)
        for name in loop.METRICS:
            np.testing.assert_allclose(swept.history[name][r], alone.history[name], rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(swept.test["final_acc"][r], alone.test["final_acc"], atol=1e-6)
    assert len({float(swept.history["train_loss"][r, -1]) for r in range(3)}) == 3  # the runs really differ


def test_identity_augmentation_is_exactly_no_augmentation_and_shifts_change_only_training(digits):
    # The augmentation keys are drawn beside the batch order, not from it: with an augment that changes
    # nothing the run is bit for bit the unaugmented one. Random shifts change the training steps; the
    # per-epoch evaluation still sees the unshifted training data.
    parts = small(digits, 200)
    spe = data.batches_per_epoch(200, 64)
    model, make_tx, hp = models.linear(64, 10), adamw_recipe(spe, 3), {"learning_rate": 3e-3, "weight_decay": 0.1}
    plain = loop.fit(model, make_tx, hp, parts, epochs=2)
    identity = loop.fit(model, make_tx, hp, parts, epochs=2, augment=lambda key, x: x)
    for name in loop.METRICS:
        np.testing.assert_array_equal(identity.history[name], plain.history[name], err_msg=name)
    augment = data.random_shift((8, 8), 1, np.zeros(64), np.ones(64))
    shifted = loop.fit(model, make_tx, hp, parts, epochs=2, augment=augment)
    assert not np.allclose(shifted.history["batch_loss"], plain.history["batch_loss"], rtol=1e-3)
    train_loss, _ = loop.evaluate(model, shifted.params, parts.x_train, parts.y_train)
    np.testing.assert_allclose(train_loss, shifted.history["train_loss"][-1], rtol=1e-5)


def test_recipe_with_gradkit_and_optax_gives_the_same_loss_curve(digits):
    # The recipe: AdamW, warmup + cosine, decay masked off the biases, Kaiming init, batch 64.
    parts = small(digits, 400)
    epochs, spe = 5, data.batches_per_epoch(400, 64)
    model = models.mlp(64, (64,), 10)
    peak, wd = 3e-3, 0.05

    def optax_recipe(h):
        # optax's schedule tests `peak_value == 0.0` in Python, so it cannot take a traced peak: constants here.
        schedule = optax.warmup_cosine_decay_schedule(0.0, peak, 2 * spe, epochs * spe, 0.0)
        return optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=wd, mask=models.weights_only)

    hp = {"learning_rate": peak, "weight_decay": wd}
    ours = loop.fit(model, adamw_recipe(spe, epochs), hp, parts, epochs=epochs)
    theirs = loop.fit(model, optax_recipe, hp, parts, epochs=epochs)
    for name in ("batch_loss", "train_loss", "val_loss"):
        np.testing.assert_allclose(ours.history[name], theirs.history[name], rtol=0, atol=1e-5, err_msg=name)
    assert ours.history["train_loss"][-1] < 0.5 * ours.history["train_loss"][0]  # a real training curve


def test_fit_rejects_ragged_sweeps(digits):
    with pytest.raises(ValueError, match="all 1-D arrays of one length"):
        loop.fit(
            models.linear(64, 10),
            lambda h: gk.sgd(h["learning_rate"]),
            {"learning_rate": [0.1, 0.2], "momentum": [0.9]},
            digits,
            epochs=1,
        )


# -- the lecture's claims, measured ---------------------------------------------------------------


def test_linear_classifier_matches_sklearn_logistic_regression(digits):
    # sklearn minimises 0.5 ||W||^2 + C * sum_i L_i (bias not penalised); divided by C n that is
    # mean L_i + ||W||^2 / (2 C n): the same objective as l2 = 1 / (2 C n) on the weights only.
    from sklearn.linear_model import LogisticRegression

    n = len(digits.y_train)
    reference = LogisticRegression(C=1.0, tol=1e-8, max_iter=10_000).fit(digits.x_train, digits.y_train)
    model = models.linear(64, 10)
    epochs, spe = 200, data.batches_per_epoch(n, 64)

    def make_tx(h):
        return gk.adamw(gk.schedules.warmup_cosine(h["learning_rate"], 2 * spe, epochs * spe), weight_decay=0.0)

    ours = loop.fit(model, make_tx, {"learning_rate": 0.05, "l2": 1 / (2 * n)}, digits, epochs=epochs)

    def objective(params):
        return float(loop.regularized_loss(model, params, digits.x_train, digits.y_train, jnp.ones(n), 1 / (2 * n)))

    optimum = objective({"w": jnp.asarray(reference.coef_.T), "b": jnp.asarray(reference.intercept_)})
    assert objective(ours.params) - optimum < 1e-3 * optimum  # mini-batch AdamW + cosine reaches L-BFGS's optimum
    assert abs(float(ours.test["final_acc"]) - reference.score(digits.x_test, digits.y_test)) <= 0.01


def test_weight_decay_and_l2_shrink_the_loss_gap_of_an_overfitting_mlp(digits):
    # 100 training examples, a wide MLP: without regularization the validation loss ends far above the
    # training loss; decoupled weight decay or an L2 penalty (same init, same batches) narrows that gap.
    parts = data.subset(digits, 100, seed=0)
    epochs, spe = 60, data.batches_per_epoch(100, 64)
    result = loop.fit(
        models.mlp(64, (512,), 10),
        adamw_recipe(spe, epochs),
        {"learning_rate": [5e-3] * 3, "weight_decay": [0.0, 3.0, 0.0], "l2": [0.0, 0.0, 0.03]},
        parts,
        epochs=epochs,
    )
    h = result.history
    loss_gap = h["val_loss"][:, -1] - h["train_loss"][:, -1]
    assert h["train_acc"][0, -1] == 1.0 and loss_gap[0] > 0.3  # it overfits
    assert loss_gap[1] < 0.75 * loss_gap[0] and loss_gap[2] < 0.75 * loss_gap[0]


def test_overfitting_polynomial_example_tells_the_lecture_story(tmp_path):
    # Chapter 1: the high-degree polynomial fits the training points better than the line and predicts
    # new points far worse; L2 on the same polynomial predicts better than both.
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "overfitting_polynomial.py"
    spec = importlib.util.spec_from_file_location("overfitting_polynomial", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    (line_train, line_test), (poly_train, poly_test), (_l2_train, l2_test) = example.main(
        str(tmp_path / "p.png")
    ).values()
    assert poly_train < 0.1 * line_train and poly_test > 10 * line_test
    assert l2_test < line_test and l2_test < poly_test
