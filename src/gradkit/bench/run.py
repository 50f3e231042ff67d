"""The command line: ``gradkit bench [--suite | --quick | --optimizer SPEC --leaves N --leaf-size S [--packed]]``.

Suite (the default): for each case, gradkit on the tree and packed, optax and the torch variants built on
the same tree and timed in alternating rounds together with the roofline's axpy of the same size; then
compile time against the number of leaves, and the end-to-end training steps. A user's optimizer
(``--optimizer``) runs gradkit on the tree (and packed with ``--packed``) against the roofline. Writes
``<out>/<stamp>.json`` and ``<out>/<stamp>.md`` (default ``runs/bench/``) and prints the markdown.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.bench import report, roofline, timing, training
from gradkit.bench.cases import HYPERPARAMETERS, Case, custom_case, even_leaves, make_arrays, make_cases
from gradkit.bench.peers import OPTIMIZER_PEERS, TORCH_VARIANTS, jax_stepper, load_external, torch_device, torch_stepper

RESULTS = Path("runs/bench")
COMPILE_LEAVES = (100, 300, 1000, 3000, 10000)  # the compile-time row; the tree is compiled up to TREE_COMPILE_MAX
TREE_COMPILE_MAX = 1000


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
    parser.add_argument(
        "--suite", action="store_true", help="the built-in suite (the default when no --optimizer is given)"
    )
    parser.add_argument(
        "--optimizer",
        default=None,
        help='benchmark your optimizer instead of the suite, e.g. "adamw(learning_rate=1e-3)"',
    )
    parser.add_argument("--leaves", type=int, default=1000, help="--optimizer: number of leaves (default 1000)")
    parser.add_argument("--leaf-size", type=int, default=100, help="--optimizer: elements per leaf (default 100)")
    parser.add_argument("--packed", action="store_true", help="--optimizer: also time the step on packed params")
    parser.add_argument("--dtype", default="float32", help="--optimizer: params dtype (default float32)")
    parser.add_argument(
        "--parts",
        default="cases,compile,training",
        help="which parts of the suite to run, comma-separated: cases (update steps), compile (compile time vs "
        "leaves), training (end-to-end steps); default all",
    )


def run(args: argparse.Namespace) -> int:
    """Run the suite and write the results; returns the exit code."""
    if args.scale is not None and not args.scale > 0:
        raise ValueError(f"--scale must be > 0, got {args.scale}")
    if args.budget is not None and not args.budget > 0:
        raise ValueError(f"--budget must be > 0, got {args.budget}")
    if args.optimizer and args.suite:
        raise ValueError("--optimizer and --suite are alternatives: give one")
    parts = set(args.parts.split(","))
    if not parts <= {"cases", "compile", "training"}:
        raise ValueError(f"--parts takes cases, compile and training, got {args.parts!r}")
    if args.optimizer:
        for name, value in (("--leaves", args.leaves), ("--leaf-size", args.leaf_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if args.dtype not in ("float32", "bfloat16", "float16", "float64"):
            raise ValueError(f"--dtype must be float32, bfloat16, float16 or float64, got {args.dtype!r}")
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
    missing_peers = load_external()
    if missing_peers:
        record["peers_note"] = missing_peers
        print(f"  note: {missing_peers}", flush=True)
    record["settings"] = {"quick": args.quick, "scale": scale, "budget_s": budget, **repeats}
    record["hyperparameters"] = HYPERPARAMETERS
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    kind = "custom-" if args.optimizer else "quick-" if args.quick else ""
    kind += "" if args.optimizer or parts == {"cases", "compile", "training"} else "-".join(sorted(parts)) + "-"
    name = f"{record['backend']}-{report.slug(record['device_kind'])}-{kind}{stamp}"
    partial = args.out / f"{name}.partial.json"  # rewritten after every part, so a run cut short leaves its results
    if args.optimizer:
        record["settings"] |= {"optimizer": args.optimizer, "leaves": args.leaves, "leaf_size": args.leaf_size}
        case = custom_case(args.optimizer, args.leaves, args.leaf_size, args.dtype)
        record["torch"] = "not run for a user's optimizer"
        print(f"  {args.optimizer} on {case.name} ({args.dtype}) ...", flush=True)
        record["cases"] = [run_case(case, None, budget, repeats, record["spec_bandwidth_Bps"], args.packed)]
    else:
        threads = args.torch_threads if args.torch_threads is not None else 1 if args.quick else None
        device, torch_note = (None, "left out (--no-torch)") if args.no_torch else torch_device(threads)
        record["torch"] = torch_note
        cases = make_cases(args.quick, scale, bf16=supports_bf16()) if "cases" in parts else []
        if args.only:
            cases = [c for c in cases if args.only in c.name]
        record["cases"] = []
        for case in cases:
            print(f"  {case.optimizer:5s} {case.name} ...", flush=True)
            t0 = time.time()
            record["cases"].append(run_case(case, device, budget, repeats, record["spec_bandwidth_Bps"], True))
            record["cases"][-1]["wall_s"] = time.time() - t0
            report.write_json(record, partial)
            gc.collect()
        if "compile" in parts:
            record["compile_vs_leaves"] = compile_vs_leaves(args.quick)
            report.write_json(record, partial)
        if "training" in parts:
            record["training"] = run_training(args.quick, scale, budget, repeats)
    record["loadavg_end"] = os.getloadavg()
    record["wall_s"] = time.time() - started

    markdown = report.markdown(record)
    json_path, md_path = args.out / f"{name}.json", args.out / f"{name}.md"
    report.write_json(record, json_path)
    md_path.write_text(markdown)
    partial.unlink(missing_ok=True)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")
    return 0


def supports_bf16() -> bool:
    """Whether the default backend computes in bfloat16 (XLA:CPU, GPU and TPU all do)."""
    try:
        return bool(jnp.isfinite(jax.jit(lambda x: x * 2 + 1)(jnp.ones(4, jnp.bfloat16))).all())
    except Exception:  # noqa: BLE001 - any failure means "no bf16 here"
        return False


def run_case(
    case: Case,
    device: str | None,
    budget: float,
    repeats: dict,
    spec: float | None,
    packed: bool = True,
    peers_wanted: tuple[str, ...] | None = None,
) -> dict:
    """Build every peer on the case's tree, time them in alternating rounds with the roofline's axpy of the
    same size (so the roofline sees the same load), and compare their params afterwards."""
    params, grads = make_arrays(case)
    steppers, unavailable = {"gradkit": jax_stepper("gradkit", case, params, grads)}, {}
    if packed:
        steppers["gradkit packed"] = jax_stepper("gradkit", case, params, grads, packed=True)
    if case.spec is None and "optax" in OPTIMIZER_PEERS and (peers_wanted is None or "optax" in peers_wanted):
        steppers["optax"] = jax_stepper("optax", case, params, grads)
    if device is not None:
        for variant in TORCH_VARIANTS if peers_wanted is None else [v for v in TORCH_VARIANTS if v in peers_wanted]:
            stepper = torch_stepper(variant, case, params, grads, device)
            if isinstance(stepper, str):
                unavailable[variant] = stepper
            else:
                steppers[variant] = stepper
    load = os.getloadavg()
    steps = {"roofline": roofline.axpy_step(case.n_params, case.dtype)} | {k: s.step for k, s in steppers.items()}
    times = timing.time_interleaved(steps, budget_s=budget, **repeats)
    line = roofline.bandwidth(case.n_params, case.dtype, times["roofline"])

    itemsize = np.dtype(jnp.dtype(case.dtype)).itemsize
    if case.spec is None:
        moved = roofline.bytes_moved(case.optimizer, case.n_params, itemsize)
    else:  # read params, grads and the state, write params and the state
        moved = (3 * case.n_params + 2 * steppers["gradkit"].info["state_elements"]) * itemsize
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
        "spec": case.spec,
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
        "ratio_packed_over": {
            k: peers["gradkit packed"]["median_s"] / v["median_s"]
            for k, v in peers.items()
            if k != "gradkit packed" and "median_s" in v and "gradkit packed" in peers
        },
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


def compile_vs_leaves(quick: bool) -> list[dict]:
    """Compile time of the AdamW update step on ``n`` leaves of 100, packed (every count) and on the tree
    (up to ``TREE_COMPILE_MAX`` leaves: beyond that it takes minutes on a CPU)."""
    rows = []
    for n in (10, 100) if quick else COMPILE_LEAVES:
        case = Case(f"{n} leaves x 100", "adamw", even_leaves(n, 100 * n))
        params, grads = make_arrays(case)
        print(f"  compile time, {n} leaves ...", flush=True)
        row = {"leaves": n, "packed_compile_s": jax_stepper("gradkit", case, params, grads, True).info["compile_s"]}
        if n <= (10 if quick else TREE_COMPILE_MAX):
            row["tree_compile_s"] = jax_stepper("gradkit", case, params, grads).info["compile_s"]
        rows.append(row)
        gc.collect()
    return rows


def run_training(quick: bool, scale: float, budget: float, repeats: dict) -> list[dict]:
    """End-to-end training steps (loss + grad + AdamW): gradkit on the tree and packed, optax on the tree."""
    width = max(32, round(1024 * np.sqrt(scale) / 32) * 32)
    models: list[tuple[str, Callable[..., jax.Array], dict[str, np.ndarray], tuple[jax.Array, ...]]] = [
        # (name, loss, params, batch); quick: one small many-leaf MLP
        ("MLP 20 x 16 (40 leaves)", training.mlp_loss, training.mlp_params(20, 16), training.mlp_batch(16, 32))
    ] if quick else [
        (f"MLP 16 x {width}", training.mlp_loss, training.mlp_params(16, width), training.mlp_batch(width, 128)),
        ("MLP 500 x 32 (1000 leaves)", training.mlp_loss, training.mlp_params(500, 32), training.mlp_batch(32, 64)),
    ]  # fmt: skip
    gpt_scale, layers = (scale, 2) if quick else (scale / 4, 12)
    gpt = training.gpt2_params(gpt_scale, layers)
    models.append(
        (f"GPT-2 x{gpt_scale:g}, {layers} layers ({len(gpt)} leaves)", training.gpt2_loss, gpt,
         training.gpt2_batch(gpt["wte"].shape[0], 2 if quick else 4, 16 if quick else 64))
    )  # fmt: skip
    results = []
    for name, loss, params, batch in models:
        print(f"  training step: {name} ...", flush=True)
        steppers = {
            "gradkit": training.training_stepper("gradkit", loss, params, batch),
            "gradkit packed": training.training_stepper("gradkit", loss, params, batch, packed=True),
        }
        if "optax" in OPTIMIZER_PEERS:
            steppers["optax"] = training.training_stepper("optax", loss, params, batch)
        times = timing.time_interleaved({k: s.step for k, s in steppers.items()}, budget_s=budget, **repeats)
        reference = steppers["gradkit"].params()
        peers = {
            k: {**timing.summary(times[k]), **s.info, "max_rel_diff_vs_gradkit": max_rel_diff(s.params(), reference)}
            for k, s in steppers.items()
        }
        optax = peers.get("optax")  # absent when the optax peer is not loaded: no ratio then
        results.append({
            "name": name,
            "n_params": int(sum(v.size for v in params.values())),
            "n_leaves": len(params),
            "peers": peers,
            "ratio_gradkit_over_optax": peers["gradkit"]["median_s"] / optax["median_s"] if optax else None,
            "ratio_packed_over_optax": peers["gradkit packed"]["median_s"] / optax["median_s"] if optax else None,
        })  # fmt: skip
        gc.collect()
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks`` (the same as ``gradkit bench``)."""
    parser = argparse.ArgumentParser(
        prog="gradkit bench",
        description="jitted optimizer steps of gradkit, optax and torch, as a fraction of the bandwidth roofline",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
