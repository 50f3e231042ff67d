"""Timing: peers interleaved round by round, compile time, and what XLA made of a step.

The CPU may be shared, so peers are timed in alternating rounds (gradkit, optax, torch..., gradkit, ...):
a burst of load hits every peer alike, and the ratios of medians stay meaningful when absolute times drift.
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any, Callable

import jax

Step = Callable[[], Any]  # one step, blocking until its results are ready


def time_interleaved(
    steps: dict[str, Step], warmup: int, budget_s: float, min_repeats: int, max_repeats: int, rounds: int = 5
) -> dict[str, list[float]]:
    """Seconds per step for each peer, after ``warmup`` untimed steps each.

    The repeats are split into ``rounds``; in each round every peer in turn takes one untimed step (so
    the other runtime's thread pool has gone quiet) and then its share of timed steps, one at a time.
    Alternating single steps would time the hand-over between runtimes instead: a torch step right after
    an XLA one took 60 ms instead of 0.2 ms on the 2-core CPU. The number of repeats fits ``budget_s``
    (from one timed probe step per peer), clamped to ``[min_repeats, max_repeats]``; every peer does the
    same number of steps.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    probe = {}
    for name, step in steps.items():
        step()
        probe[name] = _timed(step)
    repeats = int(min(max_repeats, max(min_repeats, budget_s / max(sum(probe.values()), 1e-9))))
    per_round = [len(range(r, repeats, rounds)) for r in range(min(rounds, repeats))]
    times: dict[str, list[float]] = {name: [] for name in steps}
    for k in per_round:
        for name, step in steps.items():
            step()
            times[name] += [_timed(step) for _ in range(k)]
    return times


def _timed(step: Step) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def summary(times: list[float]) -> dict[str, float]:
    """Median, min and max of the repeats, in seconds."""
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times)}


def compile_step(fn: Callable, args: tuple, donate_argnums: tuple[int, ...]) -> tuple[Any, float]:
    """``jax.jit(fn, donate_argnums).lower(*args).compile()`` and its wall time in seconds."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def memory(compiled: Any) -> dict[str, int] | None:
    """XLA's static footprint of a compiled step: arguments + outputs - donated aliases + temporaries."""
    try:
        m = compiled.memory_analysis()
        return {
            "argument_bytes": int(m.argument_size_in_bytes),
            "output_bytes": int(m.output_size_in_bytes),
            "alias_bytes": int(m.alias_size_in_bytes),
            "temp_bytes": int(m.temp_size_in_bytes),
            "footprint_bytes": int(
                m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
            ),
        }
    except Exception:  # not every backend reports it
        return None


def device_peak_bytes() -> int | None:
    """The device allocator's peak since the process started (GPU/TPU), or None where it is not reported (CPU)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def hlo_summary(compiled: Any) -> dict[str, int]:
    """Counts in the optimized HLO's entry computation: instructions, fusions (kernels/loops), copies."""
    text = compiled.as_text()
    match = re.search(r"^ENTRY .*?^}", text, re.S | re.M)
    entry = match.group(0).splitlines()[1:-1] if match else []
    ops = [line for line in entry if "=" in line]
    return {
        "instructions": len(ops),
        "fusions": sum(" fusion(" in line for line in ops),
        "copies": sum(" copy(" in line for line in ops),
    }
