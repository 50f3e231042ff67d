"""What the race shows about the optimizers beyond the lecture, checked on the engine's numbers (docs/optimizers.md).

One small race on Beale (steep start, gradient norm ~270): Adam, RAdam, Muon and schedule-free SGD at six learning rates.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradkit import landscapes
from gradkit.race import optimizer, race

LRS = np.array([1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0])
NAMES = ("adam", "radam", "muon", "schedule_free_sgd")
ADAM, RADAM, MUON, SF_SGD = range(4)


@pytest.fixture(scope="module")
def beale():
    return race(landscapes.beale(), {n: optimizer(n) for n in NAMES}, LRS, steps=300)


def test_muon_races_as_its_adamw_fallback_because_a_point_has_no_matrix(beale):
    # The landscapes' params are one (2,) vector: Muon sends it to AdamW (adam_weight_decay=0), i.e. Adam.
    np.testing.assert_array_equal(beale.paths[MUON], beale.paths[ADAM])


def test_radam_blows_up_in_its_first_five_steps_where_adam_never_does(beale):
    # While rho_t <= 5 (t <= 5 at b2 = 0.999) RAdam's step is lr * m_hat, un-normalised momentum SGD, so Beale's
    # steep start throws it out at SGD-like learning rates; Adam's first step is lr per coordinate.
    assert (beale.diverged_at[ADAM] < 0).all()
    blown = beale.diverged_at[RADAM] >= 0
    assert blown[LRS >= 3e-2].all() and not blown[LRS <= 1e-3].any()
    assert (beale.diverged_at[RADAM][blown] <= 5).all()


def test_schedule_free_sgd_at_its_default_learning_rate_leaves_the_box_at_once(beale):
    # optax's default lr = 1 is a step of |g| ~ 270 from Beale's start.
    assert beale.diverged_at[SF_SGD, -1] == 1
