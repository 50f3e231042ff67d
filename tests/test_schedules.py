"""gk.schedules against their closed forms, written here independently in NumPy float64.

Tolerances: under ``jax.enable_x64`` gradkit computes in float64 and must agree to 1e-10 relative
(the textbook ``(1 + cos(pi t / T)) / 2`` used as the reference here itself cancels near ``t = T``,
losing up to ~1e-11 relative at ``T - 1`` for the lengths below). In the default float32 it must agree
to 1e-6 relative: the hyperparameters and pi are rounded to float32 (2**-24 relative each) and a
formula rounds ~6 more times, so a few ulps (1 ulp <= 1.2e-7) are expected. The exception is
``exponential_decay``: ``rate`` itself is rounded to float32, and ``rate**t`` multiplies that
rounding by ``t`` (float32(0.99) is 9.6e-9 relative off, float32(0.99)**1000 ~1e-5), so its float32
tolerance is ``t * 2**-23``.
"""

from __future__ import annotations

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk
from gradkit import schedules as S

INT32_MAX = 2**31 - 1


# -- independent closed forms (float64, textbook form) --------------------------------------------


def cos_anneal(start, end, x):
    return end + (start - end) * (1 + np.cos(np.pi * x)) / 2


def ref_cosine_restarts(t, a0, T0, mult, lo):
    if mult == 1:
        return cos_anneal(a0, lo, (t % T0) / T0)
    s, T = 0, T0
    while t >= s + T:
        s, T = s + T, T * mult
    return cos_anneal(a0, lo, (t - s) / T)


def ref_one_cycle(t, hi, T, pct, div, final_div, anneal, three_phase):
    lo = hi / div
    end = lo / final_div
    p = pct * T
    phases = [(0.0, p - 1, lo, hi)]
    phases += [(p - 1, 2 * p - 2, hi, lo), (2 * p - 2, T - 1, lo, end)] if three_phase else [(p - 1, T - 1, hi, end)]
    t = min(t, T - 1)
    for s, e, a, b in phases:
        if t <= e:
            break
    x = (t - s) / (e - s)
    return cos_anneal(a, b, x) if anneal == "cos" else a + (b - a) * x


def ref_warmup_cosine(t, peak, W, T, init, end):
    if t < W:
        return init + (peak - init) * t / W
    return cos_anneal(peak, end, (min(t, T) - W) / (T - W))


# name -> (gradkit schedule, reference t -> lr, the steps to check: 0, every boundary +-1, T-1, T, beyond)
CASES = {
    "constant": (lambda: S.constant(0.1), lambda t: 0.1, [0, 1, 7, 1000]),
    "step_decay": (
        lambda: S.step_decay(0.1, 30),
        lambda t: 0.1 * 0.1 ** (t // 30),
        [0, 29, 30, 31, 59, 60, 61, 89, 90, 150],
    ),
    "multistep_decay": (
        lambda: S.multistep_decay(0.1, [30, 60, 90], 0.1),
        lambda t: 0.1 * 0.1 ** sum(t >= m for m in (30, 60, 90)),
        [0, 29, 30, 31, 59, 60, 61, 89, 90, 91, 500],
    ),
    "exponential_decay": (lambda: S.exponential_decay(0.1, 0.99), lambda t: 0.1 * 0.99**t, [0, 1, 2, 100, 999, 1000]),
    "cosine_annealing": (
        lambda: S.cosine_annealing(0.1, 100, 1e-4),
        lambda t: cos_anneal(0.1, 1e-4, min(t, 100) / 100),
        [0, 1, 50, 98, 99, 100, 101, 1000],
    ),
    "linear_warmup": (
        lambda: S.linear_warmup(0.1, 50, 1e-3),
        lambda t: 1e-3 + (0.1 - 1e-3) * min(t, 50) / 50,
        [0, 1, 25, 49, 50, 51, 1000],
    ),
    "warmup_cosine": (
        lambda: S.warmup_cosine(0.1, 20, 100, 1e-3, 1e-5),
        lambda t: ref_warmup_cosine(t, 0.1, 20, 100, 1e-3, 1e-5),
        [0, 1, 19, 20, 21, 60, 99, 100, 101, 1000],
    ),
    "linear_decay": (
        lambda: S.linear_decay(0.1, 100, 1e-3),
        lambda t: 0.1 + (1e-3 - 0.1) * min(t, 100) / 100,
        [0, 1, 50, 99, 100, 101, 1000],
    ),
    "polynomial": (
        lambda: S.polynomial(0.1, 1e-3, 2.0, 100),
        lambda t: 1e-3 + (0.1 - 1e-3) * (1 - min(t, 100) / 100) ** 2,
        [0, 1, 50, 99, 100, 101, 1000],
    ),
    "inverse_sqrt": (
        lambda: S.inverse_sqrt(0.01, 40),
        lambda t: 0.01 * min(t / 40, math.sqrt(40 / t)) if t else 0.0,
        [0, 1, 39, 40, 41, 160, 10_000],
    ),
    "cosine_restarts_mult1": (
        lambda: S.cosine_restarts(0.1, 25, 1, 1e-4),
        lambda t: ref_cosine_restarts(t, 0.1, 25, 1, 1e-4),
        [0, 1, 24, 25, 26, 49, 50, 51, 1000],
    ),
    "cosine_restarts_mult2": (
        lambda: S.cosine_restarts(0.1, 10, 2, 1e-4),
        lambda t: ref_cosine_restarts(t, 0.1, 10, 2, 1e-4),
        [0, 9, 10, 11, 29, 30, 31, 69, 70, 71, 149, 150, 151, 5000],
    ),
    "cosine_restarts_mult3": (
        lambda: S.cosine_restarts(0.1, 7, 3, 0.0),
        lambda t: ref_cosine_restarts(t, 0.1, 7, 3, 0.0),
        [0, 6, 7, 8, 27, 28, 29, 90, 91, 92, 1000],
    ),
    "one_cycle_cos": (
        lambda: S.one_cycle(0.1, 100),
        lambda t: ref_one_cycle(t, 0.1, 100, 0.3, 25.0, 1e4, "cos", False),
        [0, 1, 28, 29, 30, 31, 98, 99, 100, 1000],
    ),
    "one_cycle_linear_three_phase": (
        lambda: S.one_cycle(0.1, 100, pct_start=0.25, anneal="linear", three_phase=True),
        lambda t: ref_one_cycle(t, 0.1, 100, 0.25, 25.0, 1e4, "linear", True),
        [0, 1, 23, 24, 25, 47, 48, 49, 98, 99, 100, 1000],
    ),
    "one_cycle_cos_three_phase_odd": (
        lambda: S.one_cycle(0.1, 97, pct_start=0.33, div_factor=10.0, final_div_factor=100.0, three_phase=True),
        lambda t: ref_one_cycle(t, 0.1, 97, 0.33, 10.0, 100.0, "cos", True),
        [0, 1, 31, 32, 62, 63, 95, 96, 97, 1000],
    ),
    "join": (
        lambda: S.join([S.linear_warmup(0.1, 10, 1e-3), S.constant(0.05), S.step_decay(0.05, 30)], [10, 40]),
        lambda t: 1e-3 + (0.1 - 1e-3) * t / 10 if t < 10 else 0.05 if t < 40 else 0.05 * 0.1 ** ((t - 40) // 30),
        [0, 9, 10, 11, 39, 40, 41, 69, 70, 71, 200],
    ),
}


def reference(name: str, steps) -> np.ndarray:
    return np.array([CASES[name][1](int(t)) for t in steps], np.float64)


@pytest.mark.parametrize("name", CASES)
def test_schedule_matches_closed_form_in_float64(name):
    build, _, steps = CASES[name]
    with jax.enable_x64(True):
        got = np.asarray(build()(jnp.asarray(steps)))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, reference(name, steps), rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_schedule_matches_closed_form_in_float32(name):
    build, _, steps = CASES[name]
    got = np.asarray(build()(jnp.asarray(steps, jnp.int32)))
    assert got.dtype == np.float32
    # exponential_decay: float32(rate)**t carries t times the rounding of rate (see the module docstring).
    rtol = max(steps) * 2**-23 if name == "exponential_decay" else 1e-6
    np.testing.assert_allclose(got, reference(name, steps), rtol=rtol, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_schedule_same_for_int_int32_array_and_traced_steps(name):
    build, _, steps = CASES[name]
    sched = build()
    from_ints = np.array([sched(int(t)) for t in steps])
    from_array = np.asarray(sched(jnp.asarray(steps, jnp.int32)))
    from_scan = np.asarray(jax.jit(lambda ts: jax.lax.map(sched, ts))(jnp.asarray(steps, jnp.int32)))
    from_vmap = np.asarray(jax.vmap(sched)(jnp.asarray(steps, jnp.int32)))
    # The same formula compiled for a scalar and for a vector: equal up to 2 float32 ulps (XLA may vectorise sin).
    for other in (from_array, from_scan, from_vmap):
        np.testing.assert_allclose(other, from_ints, rtol=2**-22, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_schedule_is_finite_at_int32_max(name):
    sched = CASES[name][0]()
    for step in (INT32_MAX, jnp.int32(INT32_MAX), jnp.array([0, INT32_MAX], jnp.int32)):
        lr = np.asarray(sched(step))
        assert np.all(np.isfinite(lr)) and np.all(lr >= 0), (name, lr)
    if name.startswith("cosine_restarts"):
        # float32 cannot place step 2**31 inside a cycle (its ulp there is 256 steps): only the bounds hold.
        assert 0.0 <= float(sched(INT32_MAX)) <= 0.1 * (1 + 2**-23)
        return
    # float32(2**31 - 1) is 2**31: compare with the closed form there (exactly representable in float64).
    np.testing.assert_allclose(np.asarray(sched(INT32_MAX)), CASES[name][1](2**31), rtol=1e-6, atol=1e-30)


def test_schedule_compiles_once_not_per_step():
    sched = S.warmup_cosine(0.1, 10, 100)
    sched(0)
    for t in range(1, 40):
        sched(t)
    assert sched._cache_size() == 1  # Python ints: one compiled program for every step value
    for t in range(40):
        sched(jnp.int32(t))
    assert sched._cache_size() == 2  # plus one for (strongly typed) int32 scalars


def test_schedule_output_has_the_shape_of_the_steps():
    steps = jnp.arange(12, dtype=jnp.int32).reshape(3, 4)
    assert S.constant(0.1)(steps).shape == (3, 4)
    assert S.one_cycle(0.1, 10, three_phase=True, pct_start=0.4)(steps).shape == (3, 4)
    assert S.join([S.constant(0.1), S.constant(0.2)], [5])(steps).shape == (3, 4)


def test_negative_steps_count_as_zero():
    sched = S.cosine_restarts(0.1, 10, 2)
    np.testing.assert_array_equal(np.asarray(sched(jnp.array([-5, -1, 0]))), np.full(3, np.float32(0.1)))


def test_cosine_annealing_holds_min_value_after_total_steps():
    sched = S.cosine_annealing(0.1, 100, 1e-3)
    np.testing.assert_array_equal(np.asarray(sched(jnp.array([100, 150, 200, 10**6]))), np.float32(1e-3))


def test_one_cycle_holds_final_value_after_last_step():
    sched = S.one_cycle(0.1, 100, div_factor=25.0, final_div_factor=1e4)
    np.testing.assert_allclose(np.asarray(sched(jnp.array([99, 100, 5000]))), 0.1 / 25 / 1e4, rtol=1e-6)


def test_schedule_vmaps_over_traced_hyperparameters():
    peaks = jnp.array([0.1, 0.3, 1.0])
    steps = jnp.array([0, 5, 10, 55, 100], jnp.int32)
    swept = jax.jit(jax.vmap(lambda p: S.warmup_cosine(p, 10, 100, end_value=p / 100)(steps)))(peaks)
    for p, row in zip([0.1, 0.3, 1.0], np.asarray(swept)):
        np.testing.assert_allclose(row, [ref_warmup_cosine(int(t), p, 10, 100, 0.0, p / 100) for t in steps], rtol=1e-6)
    lengths = jax.vmap(lambda T: S.cosine_annealing(0.1, T)(jnp.int32(50)))(jnp.array([100, 200]))
    np.testing.assert_allclose(np.asarray(lengths), [cos_anneal(0.1, 0.0, 0.5), cos_anneal(0.1, 0.0, 0.25)], rtol=1e-6)


def test_linear_scaling_rule_scales_lr_with_batch_size():
    assert S.linear_scaling_rule(0.1, 256, 8192) == pytest.approx(3.2, rel=1e-15)
    assert S.linear_scaling_rule(0.1, 256, 64) == pytest.approx(0.025, rel=1e-15)
    traced = jax.jit(lambda lr: S.linear_scaling_rule(lr, 256, 512))(0.1)
    np.testing.assert_allclose(float(traced), 0.2, rtol=1e-7)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: S.constant(-0.1), "value must be >= 0, got -0.1"),
        (lambda: S.step_decay(0.1, 0), "step_size must be an integer >= 1, got 0"),
        (lambda: S.step_decay(0.1, 10, factor=1.5), "factor must be in [0, 1], got 1.5"),
        (lambda: S.multistep_decay(0.1, [60, 30]), "milestones must be strictly increasing, got [60, 30]"),
        (lambda: S.multistep_decay(0.1, []), "milestones must name at least one step"),
        (lambda: S.exponential_decay(0.1, -0.5), "rate must be in [0, 1], got -0.5"),
        (lambda: S.cosine_annealing(0.1, -100), "total_steps must be an integer >= 1, got -100"),
        (lambda: S.cosine_annealing(0.1, 10.5), "total_steps must be an integer >= 1, got 10.5"),
        (lambda: S.cosine_annealing(0.1, 100, min_value=-1e-3), "min_value must be >= 0, got -0.001"),
        (lambda: S.linear_warmup(0.1, 0), "warmup_steps must be an integer >= 1, got 0"),
        (lambda: S.warmup_cosine(0.1, 100, 100), "warmup_steps must be < total_steps=100, got 100"),
        (lambda: S.polynomial(0.1, 0.0, 0.0, 100), "power must be > 0, got 0.0"),
        (lambda: S.inverse_sqrt(0.1, 0), "warmup_steps must be an integer >= 1, got 0"),
        (lambda: S.cosine_restarts(0.1, 10, period_mult=0), "period_mult must be an integer >= 1, got 0"),
        (lambda: S.one_cycle(0.1, 100, pct_start=1.0), "pct_start must be in (0, 1), got 1.0"),
        (lambda: S.one_cycle(0.1, 100, pct_start=0.0), "pct_start must be in (0, 1), got 0.0"),
        (lambda: S.one_cycle(0.1, 100, pct_start=0.005), "pct_start * total_steps must be > 1"),
        (lambda: S.one_cycle(0.1, 100, pct_start=0.6, three_phase=True), "three_phase needs pct_start <"),
        (lambda: S.one_cycle(0.1, 100, anneal="cosine"), "anneal must be one of 'cos', 'linear', got 'cosine'"),
        (lambda: S.one_cycle(0.1, 100, div_factor=0.0), "div_factor must be > 0, got 0.0"),
        (lambda: S.join([S.constant(0.1), S.constant(0.2)], [5, 10]), "boundaries must have one entry fewer"),
        (lambda: S.join([S.constant(0.1), S.constant(0.2)], [0]), "boundaries[0] must be an integer >= 1, got 0"),
        (lambda: S.linear_scaling_rule(0.1, 0, 512), "base_batch_size must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_raise_value_error_naming_argument(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_join_rejects_non_schedules():
    with pytest.raises(TypeError, match="schedules must be a non-empty list"):
        S.join([0.1, S.constant(0.2)], [5])


# -- a schedule inside an optimizer ---------------------------------------------------------------


def numpy_adamw(params, grads_fn, lrs, b1=0.9, b2=0.999, eps=1e-8, wd=0.01):
    """AdamW in float64 NumPy, the learning rate of step t given as ``lrs[t]``."""
    w = params.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    path = []
    for t, lr in enumerate(lrs, start=1):
        g = grads_fn(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * ((m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps) + wd * w)
        path.append(w)
    return np.array(path)


def run_adamw_with_schedule(w0, target, hand_lrs, schedule):
    """The trajectory of gk.adamw(schedule), and of gk.adamw(lr) rebuilt each step with ``hand_lrs[t]``."""
    tx = gk.adamw(schedule, weight_decay=0.01)

    @jax.jit
    def step(w, state):
        updates, state = tx.update(2 * (w - target), state, w)
        return gk.apply_updates(w, updates), state

    @jax.jit
    def step_by_hand(w, state, lr):  # lr traced: rebuilding the optimizer each step does not recompile
        updates, state = gk.adamw(lr, weight_decay=0.01).update(2 * (w - target), state, w)
        return gk.apply_updates(w, updates), state

    w, state = w0, tx.init(w0)
    w_hand, state_hand = w0, gk.adamw(0.0, weight_decay=0.01).init(w0)
    path, path_hand = [], []
    for lr in hand_lrs:
        w, state = step(w, state)
        w_hand, state_hand = step_by_hand(w_hand, state_hand, jnp.asarray(lr, w0.dtype))
        path.append(np.asarray(w))
        path_hand.append(np.asarray(w_hand))
    assert int(state.count) == len(hand_lrs)
    return np.array(path), np.array(path_hand)


def test_schedule_inside_adamw_matches_recomputing_lr_by_hand_each_step():
    n, W, T = 60, 10, 50
    target = np.linspace(-1.0, 1.0, 5)
    hand_lrs = [ref_warmup_cosine(t, 0.05, W, T, 0.0, 1e-4) for t in range(n)]  # update t sees count = t

    # float32: the two differ only by the float32 rounding of the lr (a few ulps), so 1e-6 relative.
    path, path_hand = run_adamw_with_schedule(
        jnp.full(5, 0.5, jnp.float32),
        jnp.asarray(target, jnp.float32),
        hand_lrs,
        S.warmup_cosine(0.05, W, T, end_value=1e-4),
    )
    np.testing.assert_allclose(path, path_hand, rtol=1e-6, atol=1e-7)

    # float64 against AdamW written out in NumPy. (In float32 this comparison is not tight: where a gradient
    # passes through 0, m / sqrt(v) amplifies rounding, and coordinates near 0 drift by ~1e-3 relative.)
    with jax.enable_x64(True):
        path, path_hand = run_adamw_with_schedule(
            jnp.full(5, 0.5, jnp.float64), jnp.asarray(target), hand_lrs, S.warmup_cosine(0.05, W, T, end_value=1e-4)
        )
    expected = numpy_adamw(np.full(5, 0.5), lambda w: 2 * (w - target), hand_lrs)
    np.testing.assert_allclose(path, expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(path_hand, expected, rtol=1e-10, atol=1e-14)


# -- the picture ----------------------------------------------------------------------------------


def test_cli_schedules_draws_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed; `pip install gradkit[plot]` to draw")
    from gradkit.cli import main

    out = tmp_path / "schedules.png"
    assert main(["schedules", "--out", str(out), "--steps", "200"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_schedules_without_matplotlib_says_how_to_install(tmp_path, monkeypatch, capsys):
    from gradkit.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["schedules", "--out", str(tmp_path / "x.png")]) == 3  # exit 3: a missing optional dependency
    assert "pip install 'gradkit[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_importing_gradkit_does_not_import_matplotlib():
    import subprocess

    code = "import sys, gradkit, gradkit.schedules; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("warmup_steps", [3, 5, 47, 100])
def test_lr_after_warmup_is_exactly_peak_in_float32(warmup_steps):
    # Without the optimization barrier on hyperparameters XLA folds peak / W into one constant and the lr
    # after warmup comes out 1 ulp off peak (it did for W = 3, 5, 47, ...).
    steps = jnp.array([warmup_steps, warmup_steps + 1, INT32_MAX], jnp.int32)
    warmup = S.linear_warmup(0.1, warmup_steps, 0.001)
    np.testing.assert_array_equal(np.asarray(warmup(steps)), np.float32(0.1))
    np.testing.assert_array_equal(np.asarray(jax.jit(warmup)(steps)), np.float32(0.1))
    peak = S.warmup_cosine(0.1, warmup_steps, 10 * warmup_steps)(warmup_steps)
    assert np.asarray(peak) == np.float32(0.1)
