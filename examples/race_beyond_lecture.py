"""Race the optimizers beyond the lecture on the five landscapes; prints the tables of docs/optimizers.md.

Same setup as the lecture's claims (tests/test_race_claims.py): 32 log-spaced learning rates from 1e-4 to 1,
1000 steps, converged = within 0.01 of a global minimum. Each optimizer runs with its own defaults otherwise.

    PYTHONPATH=src python examples/race_beyond_lecture.py
"""

from __future__ import annotations

import numpy as np

from gradkit import landscapes
from gradkit.race import LECTURE, optimizer, race

LRS = np.logspace(-4, 0, 32)
STEPS = 1000
NEW = (
    "nadam",
    "radam",
    "amsgrad",
    "adamax",
    "adadelta",
    "adabelief",
    "lion",
    "lars",
    "lamb",
    "adafactor",
    "muon",
    "schedule_free_sgd",
    "schedule_free_adamw",
)


def main() -> None:
    makes = {r.label: optimizer(r.name, **r.kwargs) for r in LECTURE}
    makes.update({name: optimizer(name) for name in NEW})
    results = {name: race(landscapes.get(name), makes, LRS, steps=STEPS) for name in landscapes.LANDSCAPES}
    lands = list(results)

    def table(title: str, cell) -> None:
        print(f"\n{title}\n\n| optimizer | {' | '.join(lands)} |\n|---|{'---|' * len(lands)}")
        for i, label in enumerate(makes):
            print(f"| {label} | {' | '.join(cell(results[land], i) for land in lands)} |")

    def converging(r, i):
        return (r.converged_at[i] >= 0) & (r.diverged_at[i] < 0)

    def fewest(r, i):
        ok = converging(r, i)
        if not ok.any():
            return "-"
        j = np.flatnonzero(ok)[np.argmin(r.converged_at[i][ok])]
        return f"{r.converged_at[i, j]} @ {LRS[j]:.2g}"

    def first_divergent(r, i):
        bad = r.diverged_at[i] >= 0
        return f"{LRS[bad][0]:.2g}" if bad.any() else "none"

    table("Learning rates (of 32) at which each converges", lambda r, i: str(int(converging(r, i).sum())))
    table("Fewest steps to converge, at the best learning rate of the grid", fewest)
    table("Smallest learning rate of the grid that diverges", first_divergent)


if __name__ == "__main__":
    main()
