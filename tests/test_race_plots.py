"""The race pictures say what happened without hiding it: legends off the plot, ends marked, divergence apart."""

from __future__ import annotations

import numpy as np
import pytest

from gradkit import landscapes
from gradkit.race import optimizer, race

pytest.importorskip("matplotlib", reason="the race pictures need matplotlib (pip install 'gradkit[plot]')")
from gradkit.race import plots

COLOURS = ["#D55E00", "#0072B2"]


@pytest.fixture(scope="module")
def valley():
    # On the valley (curvature 50 across it) SGD diverges for lr > 2/50 and momentum for lr > 2 * 1.9 / 50.
    optimizers = {"SGD": optimizer("sgd"), "Momentum": optimizer("sgd", momentum=0.9)}
    return race(landscapes.narrow_valley(), optimizers, [1e-3, 1e-2, 0.1, 0.5], steps=100)


def test_stability_plot_puts_diverged_runs_in_their_own_strip_not_on_the_loss_axis(valley):
    assert (valley.diverged_at[0] >= 0).tolist() == [False, False, True, True]
    fig = plots.stability_figure([valley], COLOURS)
    ax = fig.axes[0]
    strip = ax.child_axes[0]
    assert strip.get_position().y0 >= ax.get_position().y1  # above the panel
    for i in range(2):
        diverged = valley.diverged_at[i] >= 0
        loss_line = ax.lines[i]
        assert np.isnan(loss_line.get_ydata()[diverged]).all()  # no loss value drawn for a diverged run
        assert np.isfinite(loss_line.get_ydata()[~diverged]).all()
        np.testing.assert_array_equal(strip.lines[i].get_xdata(), valley.learning_rates[i][diverged])
    plots.pyplot().close(fig)


def test_path_plot_marks_start_and_every_end_and_keeps_the_legend_off_the_landscape(valley):
    assert valley.diverged_at[0, 1] < 0 and valley.diverged_at[1, 2] > 1
    fig = plots.paths_figure(valley, [1, 2], COLOURS)  # SGD at lr 0.01 stays, Momentum at 0.1 diverges
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = fig.legends[0].get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())
    ends = {tuple(np.round(np.ravel([line.get_xdata(), line.get_ydata()]), 6)): line.get_marker() for line in ax.lines}
    sgd_end = valley.paths[0, 1, -1]
    momentum_end = valley.paths[1, 2, valley.diverged_at[1, 2] - 1]  # the last good point
    assert ends[tuple(np.round(sgd_end, 6))] == "o"
    assert ends[tuple(np.round(momentum_end, 6))] == "X"  # an x where it diverged
    assert ends[tuple(np.round(valley.landscape.start, 6))] == "s"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "SGD, lr 0.01: not converged" in labels  # 100 steps are too few along the valley
    assert f"Momentum, lr 0.1: diverged at {valley.diverged_at[1, 2]}" in labels
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"
    plots.pyplot().close(fig)
