"""The command line: ``python -m benchmarks [--quick] [--scale S] [--out DIR] [--no-torch] [--only TEXT]``.

For each case: gradkit, optax and the torch variants built on the same tree and timed in alternating
rounds together with the roofline's axpy of the same size; then the end-to-end training step. Writes
``<out>/<stamp>.json`` and ``<out>/<stamp>.md`` and prints the markdown.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report, roofline, timing
from benchmarks.cases import HYPERPARAMETERS, Case, make_arrays, make_cases
from benchmarks.peers import TORCH_VARIANTS, jax_stepper, torch_device, torch_stepper
from benchmarks.training import training_stepper

RESULTS = Path(__file__).parent / "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (also usable as a ``gradkit`` subcommand)."""
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny sizes, few repeats (under a minute on CPU)"
    )
    parser.add_argument(
        "--scale", type=float, default=None,
        help="size of the GPT-2-shaped tree and the end-to-end MLP relative to full size "
        "(default: 1 on an accelerator, 0.25 on CPU; --quick uses 0.001)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the JSON and markdown go (default {RESULTS})")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds of timed steps per case (default 8, quick 0.2)"
    )
    parser.add_argument("--no-torch", action="store_true", help="leave the torch peers out")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the torch peers (default: torch's own, one per core; --quick: 1, because "
        "torch's OpenMP barriers stall for ~10 ms per tensor when the CPU is oversubscribed)",
    )
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this text")


def run(args: argparse.Namespace) -> int:
    """Run the suite and write the results; returns the exit code."""
    if args.scale is not None and not args.scale > 0:
        raise ValueError(f"--scale must be > 0, got {args.scale}")
    if args.budget is not None and not args.budget > 0:
        raise ValueError(f"--budget must be > 0, got {args.budget}")
    accelerator = jax.default_backend() != "cpu"
    scale = args.scale if args.scale is not None else 0.001 if args.quick else 1.0 if accelerator else 0.25
    budget = args.budget if args.budget is not None else 0.2 if args.quick else 8.0
    repeats = {
        "warmup": 1 if args.quick else 3,
        "min_repeats": 3 if args.quick else 7,
        "max_repeats": 4 if args.quick else 200,
        "rounds": 2 if args.quick else 20,
    }

    started = time.time()
    record = report.environment()
    record["settings"] = {"quick": args.quick, "scale": scale, "budget_s": budget, **repeats}
    record["hyperparameters"] = HYPERPARAMETERS
    threads = args.torch_threads if args.torch_threads is not None else 1 if args.quick else None
    device, torch_note = (None, "left out (--no-torch)") if args.no_torch else torch_device(threads)
    record["torch"] = torch_note
    cases = make_cases(args.quick, scale, bf16=supports_bf16())
    if args.only:
        cases = [c for c in cases if args.only in c.name]

    record["cases"] = []
    for case in cases:
        print(f"  {case.optimizer:5s} {case.name} ...", flush=True)
        t0 = time.time()
        record["cases"].append(run_case(case, device, budget, repeats, record["spec_bandwidth_Bps"]))
        record["cases"][-1]["wall_s"] = time.time() - t0
        gc.collect()
    if not args.only:
        record["training"] = run_training(args.quick, scale, budget, repeats)
    record["loadavg_end"] = os.getloadavg()
    record["wall_s"] = time.time() - started

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    name = f"{record['backend']}-{report.slug(record['device_kind'])}-{'quick-' if args.quick else ''}{stamp}"
    markdown = report.markdown(record)
    json_path, md_path = args.out / f"{name}.json", args.out / f"{name}.md"
    report.write_json(record, json_path)
    md_path.write_text(markdown)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")
    return 0


def supports_bf16() -> bool:
    """Whether the default backend computes in bfloat16 (XLA:CPU, GPU and TPU all do)."""
    try:
        return bool(jnp.isfinite(jax.jit(lambda x: x * 2 + 1)(jnp.ones(4, jnp.bfloat16))).all())
    except Exception:  # noqa: BLE001 - any failure means "no bf16 here"
        return False


def run_case(case: Case, device: str | None, budget: float, repeats: dict, spec: float | None) -> dict:
    """Build every peer on the case's tree, time them in alternating rounds with the roofline's axpy of the
    same size (so the roofline sees the same load), and compare their params afterwards."""
    params, grads = make_arrays(case)
    steppers, unavailable = {}, {}
    for library in ("gradkit", "optax"):
        steppers[library] = jax_stepper(library, case, params, grads)
    if device is not None:
        for variant in TORCH_VARIANTS:
            stepper = torch_stepper(variant, case, params, grads, device)
            if isinstance(stepper, str):
                unavailable[variant] = stepper
            else:
                steppers[variant] = stepper
    load = os.getloadavg()
    steps = {"roofline": roofline.axpy_step(case.n_params, case.dtype)} | {k: s.step for k, s in steppers.items()}
    times = timing.time_interleaved(steps, budget_s=budget, **repeats)
    line = roofline.bandwidth(case.n_params, case.dtype, times["roofline"])

    moved = roofline.bytes_moved(case.optimizer, case.n_params, np.dtype(jnp.dtype(case.dtype)).itemsize)
    reference = steppers["gradkit"].params()
    peers: dict[str, dict] = {}
    for name, stepper in steppers.items():
        stats = timing.summary(times[name])
        bandwidth = moved / stats["median_s"]
        peers[name] = {
            **stats,
            **stepper.info,
            "bandwidth_Bps": bandwidth,
            "pct_roofline": 100 * bandwidth / line["bandwidth_Bps"],
            "pct_spec": None if spec is None else 100 * bandwidth / spec,
            "max_rel_diff_vs_gradkit": max_rel_diff(stepper.params(), reference),
            "times_s": times[name],  # every timed step, in the order taken
        }
    peers |= {name: {"unavailable": reason} for name, reason in unavailable.items()}
    gk = peers["gradkit"]["median_s"]
    return {
        "name": case.name,
        "optimizer": case.optimizer,
        "dtype": case.dtype,
        "n_params": case.n_params,
        "n_leaves": case.n_leaves,
        "bytes_moved": moved,
        "roofline_Bps": line["bandwidth_Bps"],
        "roofline": line,
        "loadavg": load,
        "device_peak_bytes": timing.device_peak_bytes(),  # the process's peak so far (GPU/TPU), None on CPU
        "peers": peers,
        "ratio_gradkit_over": {k: gk / v["median_s"] for k, v in peers.items() if k != "gradkit" and "median_s" in v},
        # the same with the fastest repeat of each: less sensitive to load bursts on a shared machine
        "ratio_gradkit_over_min": {
            k: peers["gradkit"]["min_s"] / v["min_s"] for k, v in peers.items() if k != "gradkit" and "min_s" in v
        },
    }


def max_rel_diff(params: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """``max |a - b| / max |b|`` over all leaves: the peers took the same steps, so this should be rounding."""
    diff = max(float(np.max(np.abs(params[k] - reference[k]), initial=0.0)) for k in reference)
    size = max(float(np.max(np.abs(reference[k]), initial=0.0)) for k in reference)
    return diff / size if size > 0 else diff


def run_training(quick: bool, scale: float, budget: float, repeats: dict) -> dict:
    """The end-to-end MLP training step, gradkit against optax."""
    depth, batch = (4, 32) if quick else (16, 128)
    width = max(32, round(1024 * np.sqrt(scale) / 32) * 32)
    print(f"  training step: MLP {depth} x {width}, batch {batch} ...", flush=True)
    steppers = {lib: training_stepper(lib, depth, width, batch) for lib in ("gradkit", "optax")}
    times = timing.time_interleaved({k: s.step for k, s in steppers.items()}, budget_s=budget, **repeats)
    reference = steppers["gradkit"].params()
    peers = {
        k: {**timing.summary(times[k]), **s.info, "max_rel_diff_vs_gradkit": max_rel_diff(s.params(), reference)}
        for k, s in steppers.items()
    }
    return {
        "depth": depth,
        "width": width,
        "batch": batch,
        "n_params": depth * (width * width + width),
        "peers": peers,
        "ratio_gradkit_over_optax": peers["gradkit"]["median_s"] / peers["optax"]["median_s"],
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="jitted optimizer steps of gradkit, optax and torch, as a fraction of the bandwidth roofline",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
