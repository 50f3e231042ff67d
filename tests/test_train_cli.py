"""`gradkit train` end to end: outputs, sweeps, name lookup, and clean failure on bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gradkit.cli import main
from gradkit.cli import train as cli_train

pytest.importorskip("sklearn", reason="the default data (digits) comes with scikit-learn: `pip install gradkit[data]`")
FAST = ["--hidden", "32", "--train-size", "300", "--no-progress"]


def leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(".gradkit-")]


def test_train_writes_valid_metrics_and_curves_and_the_loss_falls(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="curves.png needs matplotlib")
    import matplotlib.image

    out = tmp_path / "run"
    assert main(["train", "--epochs", "4", *FAST, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4]
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]
    assert metrics["config"]["optimizer"] == "adamw" and metrics["config"]["schedule"] == "warmup_cosine"
    assert metrics["config"]["sizes"]["train"] == 300
    assert metrics["config"]["augment"] == "shift"  # the MLP recipe on the digits shifts its training images
    assert {"jax", "numpy", "gradkit"} <= set(metrics["versions"])
    assert metrics["wall_time_s"] > 0
    s = metrics["summary"]
    np.testing.assert_allclose(s["final_gap"], s["final_train_acc"] - s["final_val_acc"], atol=1e-6)
    assert 0 <= s["best_test_acc"] <= 1
    image = matplotlib.image.imread(out / "curves.png")
    assert image.ndim == 3 and image.shape[0] > 100
    assert "gap" in capsys.readouterr().out
    assert leftovers(tmp_path) == []


def test_sweep_runs_as_one_program_and_draws_the_gap(tmp_path):
    pytest.importorskip("matplotlib", reason="curves.png needs matplotlib")
    out = tmp_path / "sweep"
    code = main(
        [
            "train",
            "--epochs",
            "2",
            *FAST,
            "--sweep",
            "weight_decay=0,0.5,5",
            "--sweep",
            "l2=0,0,1e-3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(len(e["val_acc"]) == 3 for e in metrics["epochs"])
    assert metrics["config"]["hparams"]["weight_decay"] == [0.0, 0.5, 5.0]
    assert metrics["config"]["runs"] == ["weight_decay=0, l2=0", "weight_decay=0.5, l2=0", "weight_decay=5, l2=0.001"]
    assert len(set(metrics["epochs"][-1]["train_loss"])) == 3
    assert (out / "curves.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--optimizer", "adamx"],
            "unknown --optimizer 'adamx'; choose one of: adagrad, adam, adamw, rmsprop, sgd, adabelief",
        ),
        (["--schedule", "cosine"], "unknown --schedule 'cosine'; choose one of: constant, cosine_annealing"),
        (["--momentum", "0.9"], "--momentum: adamw has no argument 'momentum'"),
        (["--schedule", "step_decay"], "--schedule step_decay needs step_size: pass --schedule-arg step_size=VALUE"),
        (["--schedule-arg", "bogus=1"], "--schedule-arg 'bogus=1': warmup_cosine takes NAME=VALUE"),
        (["--lr", "-0.1"], "--lr must be >= 0, got -0.1"),
        (["--sweep", "weight_decay=0,x"], "the values must be numbers"),
        (["--sweep", "lr=0.1,0.2", "--sweep", "l2=0"], "equally many values"),
        (["--hidden", "32,a"], "--hidden must be comma-separated widths"),
        (["--train-size", "0"], "train_size must be in"),
        (["--augment", "blur"], "unknown --augment 'blur'; choose one of: none, shift"),
    ],
)
def test_bad_arguments_fail_clearly_before_any_output(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "8", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "arrays, message",
    [
        (None, "no such file"),
        ("not an npz", "is not a readable .npz file"),
        ({"x": np.zeros((20, 3))}, "must hold arrays 'x' and 'y'; missing ['y']"),
        ({"x": np.zeros((20, 3)), "y": np.zeros((20, 2), np.int64)}, "x must be (n, features...) and y (n,)"),
        ({"x": np.zeros((20, 3)), "y": np.linspace(0, 1, 20)}, "y must hold integer class labels"),
    ],
)
def test_bad_data_files_fail_clearly_and_leave_no_output_directory(tmp_path, capsys, arrays, message):
    path = tmp_path / "data.npz"
    if isinstance(arrays, dict):
        np.savez(path, **arrays)
    elif isinstance(arrays, str):
        path.write_text(arrays)
    out = tmp_path / "run"
    assert main(["train", "--data", str(path), "--epochs", "1", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []


def test_own_npz_data_trains_with_sgd_momentum_and_step_decay_by_name(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 2, 2)) + y[:, None, None]  # images, flattened by the loader
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "mine.npz"),
                "--model",
                "linear",
                "--epochs",
                "3",
                "--no-progress",
                "--optimizer",
                "sgd",
                "--momentum",
                "0.9",
                "--nesterov",
                "--schedule",
                "step_decay",
                "--schedule-arg",
                "step_size=4",
                "--schedule-arg",
                "factor=0.5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["hparams"] == {"learning_rate": 0.1, "momentum": 0.9, "l2": 0.0}
    assert metrics["config"]["schedule_kwargs"] == {"step_size": 4, "factor": 0.5}
    assert metrics["epochs"][-1]["train_loss"] < metrics["epochs"][0]["train_loss"]
    assert metrics["config"]["sizes"] == {"train": 84, "val": 18, "test": 18, "features": 4, "classes": 3}
    assert metrics["config"]["augment"] == "none"  # no augmentation unless asked for, outside the digits recipe


def test_shift_augmentation_takes_npz_images_and_refuses_flat_features(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    np.savez(tmp_path / "flat.npz", x=rng.normal(size=(60, 5)), y=y)
    np.savez(tmp_path / "images.npz", x=rng.uniform(0, 1, (60, 3, 4)), y=y)
    out = tmp_path / "run"
    assert (
        main(["train", "--data", str(tmp_path / "flat.npz"), "--augment", "shift", "--epochs", "1", "--out", str(out)])
        == 2
    )
    assert "--augment shift needs images: x of shape (n, height, width); --data" in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "images.npz"),
                "--augment",
                "shift",
                "--model",
                "linear",
                "--epochs",
                "1",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["config"]["augment"] == "shift"


def test_a_failure_during_training_leaves_no_output_directory(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_train.loop, "fit", explode)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", *FAST, "--out", str(out)]) == 1  # one line, no traceback
    assert not out.exists() and leftovers(tmp_path) == []


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "taken")]) == 2
    assert "--out" in (err := capsys.readouterr().err) and "is a file, not a folder" in err
    assert (tmp_path / "taken").read_text() == "mine"


SCHEDULE_ARGS = {
    "step_decay": ["step_size=10"],
    "multistep_decay": ["milestones=10,20"],
    "exponential_decay": ["rate=0.99"],
    "polynomial": ["end_value=0", "power=2"],
    "cosine_restarts": ["first_period=10"],
}


def first_update_is_finite(optimizer: str, schedule: str) -> None:
    import argparse

    import jax

    parser = argparse.ArgumentParser()
    cli_train.add_arguments(parser)
    argv = ["--optimizer", optimizer, "--schedule", schedule, "--model", "linear", "--epochs", "2"]
    argv += [a for item in SCHEDULE_ARGS.get(schedule, []) for a in ("--schedule-arg", item)]
    plan = cli_train._plan(parser.parse_args(argv))
    tx = plan["make_tx"](plan["hparams"])
    params = plan["model"].init(jax.random.key(0))
    grads = jax.tree.map(lambda p: p + 1.0, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(updates)), (optimizer, schedule)


# Selecting an optimizer and selecting a schedule are independent: each optimizer with the default schedule, each
# schedule with the default optimizer (all pairs would be optimizers x schedules plans).
@pytest.mark.parametrize("optimizer", sorted(cli_train.OPTIMIZERS))
def test_every_optimizer_is_selectable_by_name(optimizer):
    first_update_is_finite(optimizer, "warmup_cosine")


@pytest.mark.parametrize("schedule", sorted(cli_train.SCHEDULES))
def test_every_schedule_is_selectable_by_name(schedule):
    first_update_is_finite("adamw", schedule)
    assert {"warmup_cosine", "step_decay", "cosine_annealing", "one_cycle"} <= set(cli_train.SCHEDULES)
