"""gk.schedules against torch.optim.lr_scheduler, driven step by step for the whole run.

torch's schedulers are stateful and count epochs; each is stepped like a training loop (optimizer.step,
then scheduler.step) and ``get_last_lr()`` read before every step, so torch's value at index t is the
lr of update t, which is what gradkit's schedule gives at count t. torch computes in Python float64;
gradkit is compared under ``jax.enable_x64`` at 1e-7 relative, and in float32 at the tolerance that
float32 rounding explains (see ``FLOAT32_RTOL``).

Argument mappings are in each case; where torch differs by design the test says so.
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HAS_TORCH, requires_torch

from gradkit import schedules as S

pytestmark = requires_torch

if HAS_TORCH:
    import torch
    from torch.optim import lr_scheduler as L


def drive_torch(make_scheduler, steps: int, lr: float) -> np.ndarray:
    """torch's lr for updates 0 .. steps-1: read get_last_lr(), then optimizer.step(), scheduler.step()."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr, momentum=0.9)  # momentum: OneCycleLR cycles it
    scheduler = make_scheduler(optimizer)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no gradients: SGD warns nothing, but keep the run quiet
        for _ in range(steps):
            lrs.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
    return np.array(lrs, np.float64)


T = 1000
# name -> (torch scheduler on base lr `lr`, gradkit schedule, number of steps, base lr)
CASES = {
    "StepLR": (lambda o: L.StepLR(o, step_size=30, gamma=0.1), lambda: S.step_decay(0.1, 30, 0.1), 200, 0.1),
    "MultiStepLR": (
        lambda o: L.MultiStepLR(o, milestones=[30, 60, 90], gamma=0.1),
        lambda: S.multistep_decay(0.1, [30, 60, 90], 0.1),
        120,
        0.1,
    ),
    "ExponentialLR": (lambda o: L.ExponentialLR(o, gamma=0.99), lambda: S.exponential_decay(0.1, 0.99), T, 0.1),
    # t <= T only: torch keeps cycling after T_max (see test_torch_cosine_annealing_cycles_after_T_max).
    "CosineAnnealingLR": (
        lambda o: L.CosineAnnealingLR(o, T_max=T, eta_min=1e-4),
        lambda: S.cosine_annealing(0.1, T, 1e-4),
        T + 1,
        0.1,
    ),
    "CosineAnnealingLR_to_zero": (
        lambda o: L.CosineAnnealingLR(o, T_max=T, eta_min=0.0),
        lambda: S.cosine_annealing(0.1, T),
        T + 1,
        0.1,
    ),
    # linear_warmup(peak, W, init) = LinearLR(start_factor=init / peak, end_factor=1, total_iters=W) on lr=peak.
    "LinearLR_warmup": (
        lambda o: L.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=100),
        lambda: S.linear_warmup(0.1, 100, init_value=0.001),
        300,
        0.1,
    ),
    # linear_decay(a0, T, end) = LinearLR(start_factor=1, end_factor=end / a0, total_iters=T) on lr=a0.
    "LinearLR_decay": (
        lambda o: L.LinearLR(o, start_factor=1.0, end_factor=0.01, total_iters=T),
        lambda: S.linear_decay(0.1, T, end_value=0.001),
        T + 10,
        0.1,
    ),
    # polynomial(a0, 0, power, T) = PolynomialLR(total_iters=T, power) on lr=a0 (torch decays to 0 only).
    "PolynomialLR": (
        lambda o: L.PolynomialLR(o, total_iters=T, power=2.0),
        lambda: S.polynomial(0.1, 0.0, 2.0, T),
        T + 10,
        0.1,
    ),
    "CosineAnnealingWarmRestarts_T_mult_1": (
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=50, T_mult=1, eta_min=1e-4),
        lambda: S.cosine_restarts(0.1, 50, 1, 1e-4),
        400,
        0.1,
    ),
    "CosineAnnealingWarmRestarts_T_mult_2": (
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-4),
        lambda: S.cosine_restarts(0.1, 10, 2, 1e-4),
        1300,  # restarts at 10, 30, 70, 150, 310, 630, 1270
        0.1,
    ),
    "CosineAnnealingWarmRestarts_T_mult_3": (
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=3, eta_min=0.0),
        lambda: S.cosine_restarts(0.1, 7, 3),
        1000,
        0.1,
    ),
    "OneCycleLR_cos": (
        lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=T),
        lambda: S.one_cycle(0.1, T),
        T,
        0.1,
    ),
    "OneCycleLR_linear": (
        lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=T, anneal_strategy="linear"),
        lambda: S.one_cycle(0.1, T, anneal="linear"),
        T,
        0.1,
    ),
    "OneCycleLR_three_phase_cos": (
        lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=T, three_phase=True),
        lambda: S.one_cycle(0.1, T, three_phase=True),
        T,
        0.1,
    ),
    "OneCycleLR_three_phase_linear": (
        lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=T, anneal_strategy="linear", three_phase=True),
        lambda: S.one_cycle(0.1, T, anneal="linear", three_phase=True),
        T,
        0.1,
    ),
    # pct_start * total_steps = 32.01: phase boundaries between steps.
    "OneCycleLR_three_phase_uneven": (
        lambda o: L.OneCycleLR(
            o, max_lr=0.1, total_steps=97, pct_start=0.33, div_factor=10.0, final_div_factor=100.0, three_phase=True
        ),
        lambda: S.one_cycle(0.1, 97, pct_start=0.33, div_factor=10.0, final_div_factor=100.0, three_phase=True),
        97,
        0.1,
    ),
    # The transformer recipe as people write it in torch.
    "SequentialLR_warmup_cosine": (
        lambda o: L.SequentialLR(
            o,
            [L.LinearLR(o, start_factor=0.01, total_iters=100), L.CosineAnnealingLR(o, T_max=T - 100, eta_min=1e-5)],
            milestones=[100],
        ),
        lambda: S.warmup_cosine(0.1, 100, T, init_value=0.001, end_value=1e-5),
        T + 1,
        0.1,
    ),
    "SequentialLR_join": (
        lambda o: L.SequentialLR(
            o,
            [L.LinearLR(o, start_factor=0.01, total_iters=100), L.StepLR(o, step_size=200, gamma=0.5)],
            milestones=[100],
        ),
        lambda: S.join([S.linear_warmup(0.1, 100, 0.001), S.step_decay(0.1, 200, 0.5)], [100]),
        T,
        0.1,
    ),
}

# float32 against torch's float64, per case, and why.
FLOAT32_RTOL = {
    # float32(0.99) is 9.7e-9 relative off 0.99 and rate**t multiplies that by t: 1e-5 at t = 1000.
    "ExponentialLR": T * 2**-23,
    # float32(0.33) * 97 puts the phase boundaries ~1e-6 steps off torch's; with the lr's slope there that
    # moves the lr by up to 1.1e-6 relative (measured 1.05e-6).
    "OneCycleLR_three_phase_uneven": 2e-6,
}


@functools.cache
def torch_lrs(name: str) -> np.ndarray:
    make, _, steps, lr = CASES[name]
    return drive_torch(make, steps, lr)


@pytest.mark.parametrize("name", CASES)
def test_schedule_matches_torch_lr_scheduler_in_float64(name):
    _, build, steps, _ = CASES[name]
    expected = torch_lrs(name)
    with jax.enable_x64(True):
        got = np.asarray(build()(jnp.arange(steps)))
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_schedule_matches_torch_lr_scheduler_in_float32(name):
    _, build, steps, _ = CASES[name]
    expected = torch_lrs(name)
    got = np.asarray(build()(jnp.arange(steps, dtype=jnp.int32)))
    # Default: the hyperparameters and pi rounded to float32 plus ~6 rounded operations, a few ulps (<= 1e-6).
    np.testing.assert_allclose(got, expected, rtol=FLOAT32_RTOL.get(name, 1e-6), atol=0)


def test_torch_cosine_annealing_recursive_form_equals_its_closed_form():
    # torch steps CosineAnnealingLR recursively (lr_t from lr_{t-1}); its documented closed form is
    # eta_min + (base - eta_min) (1 + cos(pi t / T)) / 2. Measured over T = 1000 steps: at most 1.4e-15
    # relative apart for t < T and both exactly 0 at t = T, i.e. rounding only. A bound that would catch a
    # real drift: T float64 roundings, T * 2**-52 = 2.2e-13.
    recursive = drive_torch(lambda o: L.CosineAnnealingLR(o, T_max=T, eta_min=0.0), T + 1, 0.1)
    closed = np.array([0.1 * (1 + math.cos(math.pi * t / T)) / 2 for t in range(T + 1)])
    np.testing.assert_allclose(recursive[:T], closed[:T], rtol=T * 2**-52, atol=0)
    assert recursive[T] == closed[T] == 0.0


def test_torch_cosine_annealing_cycles_after_T_max_while_gradkit_holds_min_value():
    torch_lrs = drive_torch(lambda o: L.CosineAnnealingLR(o, T_max=100, eta_min=1e-3), 201, 0.1)
    ours = np.asarray(S.cosine_annealing(0.1, 100, 1e-3)(jnp.arange(201)))
    assert torch_lrs[200] == pytest.approx(0.1, rel=1e-12)  # torch: back up to the initial lr at 2 T
    np.testing.assert_allclose(ours[100:], 1e-3, rtol=1e-6)  # gradkit: held at min_value


def test_torch_one_cycle_raises_past_total_steps_while_gradkit_holds_final_value():
    with pytest.raises(ValueError, match="Tried to step"):
        drive_torch(lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=50), 52, 0.1)
    final = 0.1 / 25.0 / 1e4
    np.testing.assert_allclose(np.asarray(S.one_cycle(0.1, 50)(jnp.array([49, 50, 51, 10**6]))), final, rtol=1e-6)


def test_torch_cosine_loses_relative_precision_near_the_end_of_long_runs_gradkit_does_not():
    # torch's (1 + cos(pi t / T)) / 2 cancels near t = T: relative error ~ 2**-53 * 2 T**2 / pi**2 at t = T - 1,
    # past 1e-7 for T >~ 5e4. The 1e-7 comparisons above use T = 1000 (measured 1e-11); here T = 2e5, where
    # gradkit's sin**2 form is exact to rounding and torch is 3e-7 off (in absolute terms 2e-18).
    mpmath = pytest.importorskip("mpmath", reason="mpmath (a dependency of torch's sympy) gives the exact value")
    mpmath.mp.dps = 40
    T, t = 200_000, 199_999
    param = torch.nn.Parameter(torch.zeros(1))
    scheduler = L.CosineAnnealingLR(torch.optim.SGD([param], lr=0.1), T_max=T, eta_min=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch) is deprecated; it evaluates torch's closed form at t
        scheduler.step(t)
    torch_lr = scheduler.get_last_lr()[0]
    exact = float(mpmath.mpf(0.1) * (1 + mpmath.cos(mpmath.pi * t / T)) / 2)
    with jax.enable_x64(True):
        ours = float(S.cosine_annealing(0.1, T)(t))
    assert abs(ours - exact) <= 4 * 2**-53 * exact
    assert abs(torch_lr - exact) > 1e-7 * exact
    assert abs(torch_lr - exact) <= 2**-53 * 0.1
