"""The record of a run (environment, every number) as JSON, and its markdown tables."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import jax

from gradkit.bench import roofline

PEERS = ("gradkit", "gradkit packed", "optax", "torch for-loop", "torch foreach", "torch fused")
TORCH = PEERS[3:]


def environment() -> dict[str, Any]:
    """Date, device, backend, library versions, CPU model and the load average at the start."""
    device = jax.devices()[0]
    versions = {}
    for package in ("gradkit", "jax", "jaxlib", "optax", "torch", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "spec_bandwidth_Bps": roofline.spec_bandwidth(device.device_kind),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or platform.processor() elsewhere."""
    try:
        match = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        return match.group(1).strip() if match else platform.processor()
    except OSError:
        return platform.processor()


def slug(text: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_json(record: dict, path: Path) -> None:
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g}"


def _cell(peer: dict | None, spec: bool) -> str:
    if peer is None:
        return "–"
    if "unavailable" in peer:
        return "n/a"
    text = f"{_ms(peer['median_s'])} [{_ms(peer['min_s'])}–{_ms(peer['max_s'])}] ms, {peer['pct_roofline']:.0f}%"
    return text + (f" ({peer['pct_spec']:.0f}% spec)" if spec and peer.get("pct_spec") is not None else "")


def _ratio(case: dict, peers: tuple[str, ...], of: str = "gradkit") -> str:
    """``of`` (gradkit or gradkit packed) / the fastest of ``peers``, by medians, and in brackets by each one's
    fastest repeat."""
    timed = {p: case["peers"][p] for p in peers if "median_s" in case["peers"].get(p, {})}
    if of not in case["peers"] or not timed:
        return "–"
    mine = case["peers"][of]
    best = min(v["median_s"] for v in timed.values()), min(v["min_s"] for v in timed.values())
    return f"{mine['median_s'] / best[0]:.2f} ({mine['min_s'] / best[1]:.2f})"


def markdown(record: dict) -> str:
    """The run as markdown: the update-step table, a note on where gradkit is slower, compile/HLO, training."""
    return (
        "\n".join(
            _header(record)
            + _step_table(record)
            + _compile_table(record)
            + _compile_vs_leaves(record)
            + _training(record)
        )
        + "\n"
    )


def _header(record: dict) -> list[str]:
    v, s, spec = record["versions"], record["settings"], record["spec_bandwidth_Bps"]
    setup = (
        f"{record['cpu']}, {record['cpu_count']} cores; jax {v['jax']}, optax {v['optax']}, torch {v['torch']}, "
        f"gradkit {v['gradkit']}; load average {_load(record['loadavg_start'])} at the start, "
        f"{_load(record.get('loadavg_end'))} at the end; scale {s['scale']:g}{', quick' if s['quick'] else ''}; "
        f"{record.get('wall_s', 0):.0f} s in all. torch: {record['torch']}."
    )
    legend = (
        "Step time per peer: median [min–max] over the repeats, and the effective bandwidth (minimum bytes moved / "
        "median) as % of the roofline measured in this run (`x = x + a*y`, donated, same size and dtype). "
        "Ratios are gradkit's median / the peer's (in brackets: the same for the fastest repeats, less sensitive "
        "to load from other processes): above 1, gradkit is slower."
        + (f" Spec-sheet bandwidth: {spec / 1e12:.2f} TB/s." if spec else "")
    )
    return [f"### {record['device_kind']} ({record['backend']}), {record['date_utc']}", "", setup, "", legend, ""]


def _step_table(record: dict) -> list[str]:
    spec = record["spec_bandwidth_Bps"]
    lines = [
        "| opt | case | params | leaves | roofline GB/s | "
        + " | ".join(PEERS)
        + " | gradkit/optax | gradkit/fastest torch | packed/optax | packed/fastest torch |",
        "|---|---|---:|---:|---:|" + "---|" * len(PEERS) + "---:|---:|---:|---:|",
    ]
    for c in record["cases"]:
        cells = [_cell(c["peers"].get(p), spec is not None) for p in PEERS]
        line = f"{c['roofline_Bps'] / 1e9:.1f}" + (f" ({100 * c['roofline_Bps'] / spec:.0f}% of spec)" if spec else "")
        head = f"| {c['optimizer']} | {c['name']} | {c['n_params']:,} | {c['n_leaves']} | {line} |"
        ratios = [_ratio(c, ("optax",)), _ratio(c, TORCH), _ratio(c, ("optax",), "gradkit packed")]
        lines.append(f"{head} {' | '.join(cells)} | {' | '.join(ratios)} | {_ratio(c, TORCH, 'gradkit packed')} |")
    slower = [
        f"{c['optimizer']} {c['name']} ({c['ratio_gradkit_over']['optax']:.2f}x)"
        for c in record["cases"]
        if c["ratio_gradkit_over"].get("optax", 0) > 1.1
    ]
    note = (
        f"gradkit is more than 10% slower than optax (median) in: {', '.join(slower)}."
        if slower
        else "gradkit is within 10% of optax (median) in every case."
    )
    reasons = sorted(
        {f"{p}: {r['unavailable']}" for c in record["cases"] for p, r in c["peers"].items() if "unavailable" in r}
    )
    return [*lines, "", note] + (["", "Unavailable peers: " + "; ".join(reasons)] if reasons else [])


def _compile_table(record: dict) -> list[str]:
    lines = [
        "",
        (
            "Compile time (lower + compile; in brackets the lowering alone: tracing to a jaxpr and StableHLO) and "
            "what XLA made of the step: fusions in the optimized HLO's entry "
            "computation, the bytes per parameter they imply (each fusion reading its operands and writing its "
            "result once) against the formula's floor, the static footprint (args + outputs - donated + temps), "
            "and the largest difference between a peer's params and gradkit's after the run (relative to max |param|)."
        ),
        "",
        (
            "| opt | case | leaves | compile gradkit s (lowering) | compile optax s (lowering) | compile packed s "
            "(lowering) | fusions gk / optax "
            "| HLO bytes/param gk / optax (floor) | footprint gk / optax MB | max rel. diff |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in record["cases"]:
        g, n = c["peers"]["gradkit"], c["n_params"]
        o = c["peers"].get("optax", g)  # a user's optimizer has no optax peer: its columns repeat gradkit's
        k = c["peers"].get("gradkit packed")
        timed = [p for p in PEERS[1:] if "median_s" in c["peers"].get(p, {})]
        diff = max((c["peers"][p]["max_rel_diff_vs_gradkit"] for p in timed), default=0.0)
        packed = f"{_compile(k)} ({k['hlo']['fusions']} fusions, {k['hlo']['bytes'] / n:.1f} B/param)" if k else "–"
        lines.append(
            f"| {c['optimizer']} | {c['name']} | {c['n_leaves']} | {_compile(g)} | {_compile(o)} | {packed} | "
            f"{g['hlo']['fusions']} / {o['hlo']['fusions']} | {g['hlo']['bytes'] / n:.1f} / "
            f"{o['hlo']['bytes'] / n:.1f} ({c['bytes_moved'] / n:g}) | {_mb(g['memory'])} / {_mb(o['memory'])} "
            f"| {diff:.1e} |"
        )
    return lines


def _compile_vs_leaves(record: dict) -> list[str]:
    rows = record.get("compile_vs_leaves")
    if not rows:
        return []
    lines = [
        "",
        "Compile time of the AdamW update step against the number of leaves (leaves of 100; lower + compile):",
        "",
        "| leaves | packed s | packed ms per leaf | tree s | tree ms per leaf |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        tree = r.get("tree_compile_s")
        tree_cells = f"{tree:.2f} | {1e3 * tree / r['leaves']:.2f}" if tree is not None else "– | –"
        lines.append(
            f"| {r['leaves']} | {r['packed_compile_s']:.2f} | {1e3 * r['packed_compile_s'] / r['leaves']:.3f} | "
            f"{tree_cells} |"
        )
    return lines


def _training(record: dict) -> list[str]:
    models = record.get("training")
    if not models:
        return []
    lines = [
        "",
        (
            "End-to-end training steps (loss + grad + AdamW update, one jit, donated): median [min–max] and compile "
            "time; the packed step unpacks inside the loss."
        ),
        "",
        (
            "| model | params | leaves | gradkit | gradkit packed | optax | gradkit/optax | packed/optax "
            "| compile gradkit / packed / optax s |"
        ),
        "|---|---:|---:|---|---|---|---:|---:|---:|",
    ]
    for t in models:
        g, k, o = t["peers"]["gradkit"], t["peers"]["gradkit packed"], t["peers"].get("optax")
        if o is None:  # the optax peer was not loaded (gradkit installed without a checkout)
            optax_cells = "– | – | –"
            compile_o = "–"
        else:
            optax_cells = f"{_span(o)} | {t['ratio_gradkit_over_optax']:.2f} | {t['ratio_packed_over_optax']:.2f}"
            compile_o = f"{o['compile_s']:.2f}"
        lines.append(
            f"| {t['name']} | {t['n_params']:,} | {t['n_leaves']} | {_span(g)} | {_span(k)} | {optax_cells} | "
            f"{g['compile_s']:.2f} / {k['compile_s']:.2f} / {compile_o} |"
        )
    return lines


def _compile(peer: dict) -> str:
    return f"{peer['compile_s']:.2f} ({peer['lower_s']:.2f})"


def _span(peer: dict) -> str:
    return f"{_ms(peer['median_s'])} ms [{_ms(peer['min_s'])}–{_ms(peer['max_s'])}]"


def _load(load: Any) -> str:
    return "?" if load is None else " ".join(f"{x:.2f}" for x in load)


def _mb(memory: dict | None) -> str:
    return "?" if memory is None else f"{memory['footprint_bytes'] / 2**20:.1f}"


def summary(record: dict) -> str:
    """A narrow table for the README: gradkit, optax and the fastest torch variant per case, with ratios."""
    lines = [
        (
            "| opt | case | gradkit ms (% roofline) | optax ms | gradkit/optax (of mins) | fastest torch ms "
            "| gradkit/torch (of mins) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in record["cases"]:
        g, o = c["peers"]["gradkit"], c["peers"].get("optax", c["peers"]["gradkit"])
        timed = {k: v for k, v in c["peers"].items() if k.startswith("torch") and "median_s" in v}
        best = min(timed, key=lambda k: timed[k]["median_s"]) if timed else None
        torch_cell = f"{_ms(timed[best]['median_s'])} ({best.removeprefix('torch ')})" if best else "–"
        torch_ratio = f"{c['ratio_gradkit_over'][best]:.2f} ({c['ratio_gradkit_over_min'][best]:.2f})" if best else "–"
        lines.append(
            f"| {c['optimizer']} | {c['name']} | {_ms(g['median_s'])} ({g['pct_roofline']:.0f}%) | "
            f"{_ms(o['median_s'])} | {_ratio(c, ('optax',))} | {torch_cell} | {torch_ratio} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m gradkit.bench.report RESULT.json: the README's summary table
    print(summary(json.loads(Path(sys.argv[1]).read_text())))
