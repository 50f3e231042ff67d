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

from benchmarks import roofline

PEERS = ("gradkit", "optax", "torch for-loop", "torch foreach", "torch fused")


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


def _ratio(case: dict, peers: tuple[str, ...]) -> str:
    ratios = [case["ratio_gradkit_over"][p] for p in peers if p in case["ratio_gradkit_over"]]
    return f"{min(ratios):.2f}" if ratios else "–"


def markdown(record: dict) -> str:
    """The run as markdown: the update-step table, compile/HLO table, training step, notes."""
    spec = record["spec_bandwidth_Bps"]
    v = record["versions"]
    s = record["settings"]
    lines = [
        f"### {record['device_kind']} ({record['backend']}), {record['date_utc']}",
        "",
        f"{record['cpu']}, {record['cpu_count']} cores; jax {v['jax']}, optax {v['optax']}, torch {v['torch']}, "
        f"gradkit {v['gradkit']}; load average {_load(record['loadavg_start'])} at the start, "
        f"{_load(record.get('loadavg_end'))} at the end; scale {s['scale']:g}{', quick' if s['quick'] else ''}; "
        f"{record.get('wall_s', 0):.0f} s in all. torch: {record['torch']}.",
        "",
        "Step time per peer: median [min–max] over the repeats, and the effective bandwidth (minimum bytes moved / "
        "median) as % of the roofline measured in this run (`x = x + a*y`, donated, same size and dtype). "
        "Ratios are gradkit's median / the peer's: above 1, gradkit is slower."
        + (f" Spec-sheet bandwidth: {spec / 1e12:.2f} TB/s." if spec else ""),
        "",
        "| opt | case | params | leaves | roofline GB/s | " + " | ".join(PEERS) + " | gradkit/optax | gradkit/best torch |",
        "|---|---|---:|---:|---:|" + "---|" * len(PEERS) + "---:|---:|",
    ]
    for c in record["cases"]:
        cells = [_cell(c["peers"].get(p), spec is not None) for p in PEERS]
        lines.append(
            f"| {c['optimizer']} | {c['name']} | {c['n_params']:,} | {c['n_leaves']} | {c['roofline_Bps'] / 1e9:.1f} | "
            + " | ".join(cells)
            + f" | {_ratio(c, ('optax',))} | {_ratio(c, PEERS[2:])} |"
        )
    lines += [
        "",
        "Compile time (lower + compile) and what XLA made of the step: fusions / instructions in the optimized "
        "HLO's entry computation, and the static footprint (args + outputs - donated + temps).",
        "",
        "| opt | case | leaves | compile gradkit s | compile optax s | fusions gk / optax | instructions gk / optax "
        "| footprint gk / optax MB | max rel. diff optax, torch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in record["cases"]:
        g, o = c["peers"]["gradkit"], c["peers"]["optax"]
        diffs = [c["peers"][p]["max_rel_diff_vs_gradkit"] for p in PEERS[1:] if "median_s" in c["peers"].get(p, {})]
        lines.append(
            f"| {c['optimizer']} | {c['name']} | {c['n_leaves']} | {g['compile_s']:.2f} | {o['compile_s']:.2f} | "
            f"{g['hlo']['fusions']} / {o['hlo']['fusions']} | {g['hlo']['instructions']} / {o['hlo']['instructions']} | "
            f"{_mb(g['memory'])} / {_mb(o['memory'])} | {max(diffs):.1e} |"
        )
    t = record.get("training")
    if t:
        g, o = t["peers"]["gradkit"], t["peers"]["optax"]
        lines += [
            "",
            f"End-to-end training step (loss + grad + AdamW, MLP {t['depth']} x {t['width']}, batch {t['batch']}, "
            f"{t['n_params']:,} params): gradkit {_ms(g['median_s'])} ms [{_ms(g['min_s'])}–{_ms(g['max_s'])}], "
            f"optax {_ms(o['median_s'])} ms [{_ms(o['min_s'])}–{_ms(o['max_s'])}], ratio {t['ratio_gradkit_over_optax']:.2f}; "
            f"compile {g['compile_s']:.2f} s vs {o['compile_s']:.2f} s.",
        ]
    reasons = sorted({f"{p}: {r['unavailable']}" for c in record["cases"] for p, r in c["peers"].items() if "unavailable" in r})
    if reasons:
        lines += ["", "Unavailable peers: " + "; ".join(reasons)]
    return "\n".join(lines) + "\n"


def _load(load: Any) -> str:
    return "?" if load is None else " ".join(f"{x:.2f}" for x in load)


def _mb(memory: dict | None) -> str:
    return "?" if memory is None else f"{memory['footprint_bytes'] / 2**20:.1f}"
