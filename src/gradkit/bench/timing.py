"""Timing: peers interleaved round by round, compile time, and what XLA made of a step.

The CPU may be shared, so peers are timed in alternating rounds (gradkit, optax, torch..., gradkit, ...):
a burst of load hits every peer alike, and the ratios of medians stay meaningful when absolute times drift.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax

Step = Callable[[], Any]  # one step, blocking until its results are ready


def time_interleaved(
    steps: dict[str, Step], warmup: int, budget_s: float, min_repeats: int, max_repeats: int, rounds: int = 20
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


def compile_step(fn: Callable, args: tuple, donate_argnums: tuple[int, ...]) -> tuple[Any, float, float]:
    """``jax.jit(fn, donate_argnums).lower(*args).compile()``, with the seconds spent lowering (tracing the
    Python into a jaxpr and StableHLO) and in all (lowering + XLA's compile)."""
    t0 = time.perf_counter()
    lowered = jax.jit(fn, donate_argnums=donate_argnums).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    return compiled, t1 - t0, time.perf_counter() - t0


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
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None


def device_peak_bytes() -> int | None:
    """The device allocator's peak since the process started (GPU/TPU), or None where it is not reported (CPU)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


ITEMSIZE = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "bf16": 2,
    "f16": 2,
    "s16": 2,
    "f32": 4,
    "s32": 4,
    "u32": 4,
    "f64": 8,
    "s64": 8,
}
FREE_OPS = {"parameter", "tuple", "get-tuple-element", "bitcast", "constant"}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%(\S+) = (\([^=]*?\)|\S+) ([\w-]+)\(([^)]*)\)")


def hlo_summary(compiled: Any) -> dict[str, int]:
    """What XLA made of a step, from the optimized HLO's entry computation.

    ``instructions``, ``fusions`` (each one loop or kernel) and ``copies``; ``bytes`` is the traffic the
    program implies if every fusion or other op reads each operand once and writes its result once
    (parameters, tuples and bitcasts are free). Set against the formula's minimum (28 bytes per float32
    parameter for AdamW) it shows the work the fusion decisions add: re-read inputs, materialized temps.
    """
    text = compiled.as_text()
    match = re.search(r"^ENTRY .*?^}", text, re.DOTALL | re.MULTILINE)
    entry = match.group(0).splitlines()[1:-1] if match else []
    shapes, ops = {}, []
    for line in entry:
        m = _INSTRUCTION.match(line)
        if m:
            name, shape, op, operands = m.groups()
            shapes[name] = _bytes(shape)
            ops.append((op, shapes[name], re.findall(r"%([^\s,()]+)", operands)))
    moved = sum(out + sum(shapes.get(o, 0) for o in operands) for op, out, operands in ops if op not in FREE_OPS)
    return {
        "instructions": len(ops),
        "fusions": sum(op == "fusion" for op, _, _ in ops),
        "copies": sum(op == "copy" for op, _, _ in ops),
        "bytes": moved,
    }


def _bytes(shape: str) -> int:
    """Bytes of an HLO shape such as ``f32[4096,768]{1,0}`` or a tuple ``(f32[8]{0}, s32[])``."""
    total = 0
    for dtype, dims in re.findall(r"(\w+)\[([\d,]*)\]", shape):
        size = ITEMSIZE.get(dtype, 4)
        for d in filter(None, dims.split(",")):
            size *= int(d)
        total += size
    return total
