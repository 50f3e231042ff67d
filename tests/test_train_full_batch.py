"""``gradkit train --optimizer lbfgs`` reaches scikit-learn's LogisticRegression objective (same L2) to 1e-6.

Mapping: LogisticRegression(C=C) minimizes C * sum_i CE_i + 0.5 ||W||^2 (multinomial, intercept not
penalized); divided by C n it is mean CE + l2 ||W||^2 with l2 = 1 / (2 C n), the objective gradkit trains.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gradkit.cli import main
from gradkit.train import data as datasets
from gradkit.train.full_batch import l2_from_sklearn_c


def objective(w, b, x, y, l2):
    """mean cross-entropy + l2 ||W||^2 in float64 NumPy (independent of gradkit's losses)."""
    z = x @ w + b
    z = z - z.max(axis=1, keepdims=True)
    ce = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
    return ce.mean() + l2 * np.sum(w**2)


@pytest.mark.slow
def test_lbfgs_linear_reaches_sklearn_logistic_regression_objective(tmp_path, capsys):
    sklearn = pytest.importorskip("sklearn.linear_model")
    threadpoolctl = pytest.importorskip("threadpoolctl")

    assert main(["train", "--model", "linear", "--optimizer", "lbfgs", "--out", str(tmp_path)]) == 0
    run = json.loads((tmp_path / "metrics.json").read_text())
    assert run["solve"]["converged"] and "converged after" in capsys.readouterr().out

    # The same split and standardization as the CLI, then sklearn with C = 1 (the CLI's default L2).
    x, y = datasets.load_digits()
    parts = datasets.split(x, y, 0.15, 0.15, 0)
    parts = datasets.standardize(parts, datasets.feature_stats(parts.x_train))
    xt, yt = np.asarray(parts.x_train, np.float64), parts.y_train
    l2 = l2_from_sklearn_c(1.0, len(yt))
    assert run["config"]["l2"] == l2
    with threadpoolctl.threadpool_limits(1):
        reference = sklearn.LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(xt, yt)
    theirs = objective(reference.coef_.T, reference.intercept_, xt, yt, l2)
    assert run["solve"]["objective"] == pytest.approx(theirs, rel=1e-6)


def test_lbfgs_refuses_augmentation_and_sweeps(capsys):
    assert main(["train", "--optimizer", "lbfgs", "--augment", "shift"]) == 2
    assert "pass --augment none" in capsys.readouterr().err
    assert main(["train", "--optimizer", "lbfgs", "--sweep", "l2=1e-3,1e-2"]) == 2
    assert "--sweep: full-batch L-BFGS runs once" in capsys.readouterr().err
