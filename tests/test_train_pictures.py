"""A sweep's picture shows each setting's own train and validation curves (small multiples), same colours."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="curves.png needs matplotlib (pip install 'gradkit[plot]')")

from gradkit import _style
from gradkit.train import report
from gradkit.train.loop import METRICS, Result


def sweep_result(runs: int = 3, epochs: int = 8) -> Result:
    rng = np.random.default_rng(0)
    history = {name: rng.uniform(0.1, 1.0, (runs, epochs)) for name in METRICS}
    test = {k: rng.uniform(0.5, 1.0, runs) for k in ("final_loss", "final_acc", "best_loss", "best_acc")}
    return Result(history, test, np.array([2, 5, 7][:runs]), None, None, 1.0)


def test_sweep_picture_is_one_column_of_train_and_validation_curves_per_setting():
    result = sweep_result()
    labels = ["weight_decay=0, l2=0", "weight_decay=3, l2=0", "weight_decay=0, l2=0.03"]
    fig = report.sweep_figure(result, "weight_decay / l2", labels, "mlp on digits, 100 training examples")
    axes = np.asarray(fig.axes).reshape(2, 3)
    for k, label in enumerate(labels):
        assert axes[0, k].get_title().startswith(label)
        for row, metric in enumerate(("loss", "acc")):
            train, validation = axes[row, k].lines[:2]
            assert (train.get_color(), validation.get_color()) == (_style.TRAIN, _style.VALIDATION)
            np.testing.assert_array_equal(train.get_ydata(), result.history[f"train_{metric}"][k])
            np.testing.assert_array_equal(validation.get_ydata(), result.history[f"val_{metric}"][k])
    assert "100 training examples" in fig.get_suptitle()
    assert axes[0, 0].get_yscale() == "log"
    report._pyplot().close(fig)
