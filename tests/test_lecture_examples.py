"""The chapter examples print the lecture's worked numbers, computed by gradkit: check them against the lecture."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, capsys) -> dict[str, list[float]]:
    """Run ``examples/name`` in this process; map each printed ``label: numbers`` line to its numbers."""
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    lines = {}
    for line in capsys.readouterr().out.splitlines():
        label, _, rest = line.partition(":")
        lines[label.strip()] = [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?|nan", rest)]
    return lines


def test_ch02_l2_prefers_spread_weights_and_l1_gives_exact_zeros(capsys):
    out = run_example("ch02_regularization.py", capsys)
    assert out["scores w1.x, w2.x"] == [1.0, 1.0]
    assert out["L2 penalty w1, w2"] == [1.0, 0.25]  # the lecture: ||w1||^2 = 1.0, ||w2||^2 = 0.25
    assert out["L2 prefers w2 by a factor"] == [4.0]
    assert out["subgradient L1 exact zeros"][0] == 0
    assert out["subgradient L1 |w| < 0.03"][0] == out["proximal L1 exact zeros"][0] >= 20
    assert 0 < out["largest 'zero' subgradient"][0] < 0.03


def test_ch03_softmax_cross_entropy_and_stability_match_the_lecture(capsys):
    out = run_example("ch03_softmax.py", capsys)
    np.testing.assert_allclose(out["exponentials"], [24.53, 3.67, 9.03], atol=0.005)
    np.testing.assert_allclose(out["sum"], [37.23], atol=0.005)
    # The lecture's [0.659, 0.099, 0.243] divides rounded exponentials (9.03 / 37.23 = 0.2425);
    # the exact third probability is 0.2424, so agreement is to 1e-3.
    np.testing.assert_allclose(out["probabilities"], [0.659, 0.099, 0.243], atol=1e-3)
    assert out["cross-entropy at p=1.0"] == [0.0]  # -log(1) = 0
    np.testing.assert_allclose(out["cross-entropy at p=0.01"], [4.6], atol=0.01)  # the lecture's 4.6
    assert all(np.isnan(out["naive softmax at 1000"]))  # e^1000 overflows
    # The lecture gives no numbers here; the float64 closed form of softmax([2, 1, 0]) is [0.665, 0.245, 0.090].
    np.testing.assert_allclose(out["stable softmax at 1000"], [0.665, 0.245, 0.090], atol=1e-3)
    np.testing.assert_allclose(out["hinge loss, cat scores"], [2.9])  # lecture 2's cat example
    assert out["hinge, confident correct"] == [0.0] and out["CE, confident correct"][0] > 0  # CE never stops caring


def test_ch04_gradcheck_passes_the_true_gradient_and_catches_the_planted_bug(capsys):
    out = run_example("ch04_gradcheck.py", capsys)
    assert out["worst relative error"][0] < 1e-7  # CS231n: < 1e-7, the gradient is right
    assert "planted bug caught in" in out and out["its relative error"][0] > 0.1


def test_ch10_activation_variance_vanishes_stays_or_explodes_and_zero_init_stays_symmetric(capsys):
    out = run_example("ch10_initialization.py", capsys)
    small, kaiming, large = out["N(0, 0.01^2)"], out["kaiming_normal"], out["N(0, 0.1^2)"]
    assert small[-1] < 1e-30  # vanished by layer 50
    assert all(0.1 < v < 10 for v in kaiming)  # roughly constant across 50 layers
    assert large[-1] > 1e15  # exploded
    zero = out["all-zero init"]  # [loss before, after, distinct units, hidden]
    assert zero[-2] == 1 and zero[-1] == 64 and zero[1] < zero[0]  # it trains, yet every hidden unit is the same
    assert out["xavier_normal init"][-2] == 64
