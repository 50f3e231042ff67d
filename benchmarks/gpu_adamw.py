"""AdamW, float32, ~1B params on one accelerator: gradkit on the tree and packed, optax, torch fused, against
the streaming roofline (``x = x + a*y``, donated) measured in the same rounds. Run by ``benchmarks/gpu.sh``.

Two trees of the same size: one leaf of ``--params`` elements, and GPT-2's 148 leaves scaled to about
``--params``. Writes ``<out>/<backend>-<device>-adamw1b-<stamp>.json`` and ``.md``.
Usage: python benchmarks/gpu_adamw.py [--params 1e9] [--out DIR] [--budget S]
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


from gradkit.bench import report
from gradkit.bench.cases import HYPERPARAMETERS, Case, gpt2_shapes
from gradkit.bench.peers import load_external, torch_device
from gradkit.bench.run import run_case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=1e9)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-gpu"))
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed steps per case")
    parser.add_argument("--no-optax", action="store_true")
    args = parser.parse_args()
    n = int(args.params)
    gpt_scale = n / 124_439_808  # GPT-2 small's count
    repeats = {"warmup": 2, "min_repeats": 5, "max_repeats": 50, "rounds": 5}
    record = report.environment()
    record["settings"] = {"quick": False, "scale": gpt_scale, "budget_s": args.budget, **repeats, "params": n}
    record["hyperparameters"] = HYPERPARAMETERS
    load_external()  # the torch peer lives in benchmarks/peers.py
    device, record["torch"] = torch_device()
    peers = ("torch fused",) + (() if args.no_optax else ("optax",))
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    name = f"{record['backend']}-{report.slug(record['device_kind'])}-adamw1b-{stamp}"
    args.out.mkdir(parents=True, exist_ok=True)
    record["cases"] = []
    for case in (
        Case(f"1 leaf x {n / 1e9:g}B", "adamw", {"w": (n,)}),
        Case(f"GPT-2 small x{gpt_scale:.3g}", "adamw", gpt2_shapes(gpt_scale)),
    ):
        print(f"  {case.name}: {case.n_params:,} params, {case.n_leaves} leaves ...", flush=True)
        t0 = time.time()
        record["cases"].append(run_case(case, device, args.budget, repeats, record["spec_bandwidth_Bps"], True, peers))
        record["cases"][-1]["wall_s"] = time.time() - t0
        report.write_json(record, args.out / f"{name}.partial.json")  # kept if the run is cut short
        gc.collect()
        if device == "cuda":
            import torch

            torch.cuda.empty_cache()
    record["loadavg_end"] = os.getloadavg()
    record["wall_s"] = time.time() - started
    report.write_json(record, args.out / f"{name}.json")
    (args.out / f"{name}.partial.json").unlink(missing_ok=True)
    markdown = report.markdown(record)
    (args.out / f"{name}.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
