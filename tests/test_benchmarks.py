"""The benchmark harness works: ``gradkit bench --quick`` runs and writes sane JSON and markdown.

These tests check the harness, not the speed: every timing must be a positive finite number, the
byte counts must follow the roofline formula, the peers must end with the same params as gradkit
(they took the same steps on the same gradients), and the tables must name every case.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HAS_TORCH

from gradkit.bench import cases, report, roofline, spec
from gradkit.bench.run import RESULTS, main, max_rel_diff

ROOT = Path(__file__).resolve().parents[1]

# float32: after the same ~10 steps the peers differ only by rounding order. bfloat16: JAX rounds every op,
# so an update below half a bf16 ulp of its param is lost, while torch's fused kernels compute in float32 and
# round once; the gap grows by up to lr*|v| ~ 5e-3 per step, about 1.5e-2 of max |param| ~ 4 after 12 steps
# (gradkit against optax also differs by gradkit's float32 bias correction).
RTOL = {"float32": 1e-5, "bfloat16": 2e-2}
TRAINING_RTOL = {"gpt": 1e-3}  # see test_training_steps_are_timed_on_the_tree_and_packed


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """One ``gradkit bench --quick`` in a fresh interpreter, shared by the xdist workers."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set by pytest-xdist, the same in every worker of a run
    out = tmp_path_factory.getbasetemp().parent / f"bench-{run_id}" if run_id else tmp_path_factory.mktemp("bench")
    out.mkdir(exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker runs the benchmark, the others wait and read it
        if not list(out.glob("*.json")):
            command = "import sys; from gradkit.cli import main; sys.exit(main(sys.argv[1:]))"
            done = subprocess.run(
                [sys.executable, "-c", command, "bench", "--quick", "--out", str(out)],
                cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            (out / "stdout.txt").write_text(done.stdout)
    (json_path,), (md_path,) = sorted(out.glob("*.json")), sorted(out.glob("*.md"))
    assert json_path.stem == md_path.stem
    markdown = md_path.read_text()
    assert markdown in (out / "stdout.txt").read_text(), "the markdown table is printed as well as written"
    return json.loads(json_path.read_text()), markdown


def test_quick_run_records_the_environment(quick_run):
    record, _ = quick_run
    assert record["backend"] == "cpu" and record["device_kind"]
    assert record["versions"]["jax"] and record["versions"]["optax"] and record["versions"]["gradkit"]
    assert len(record["loadavg_start"]) == 3 and len(record["loadavg_end"]) == 3
    assert record["settings"]["quick"] is True
    assert record["spec_bandwidth_Bps"] is None, "no spec-sheet bandwidth is claimed for a CPU"
    assert record["wall_s"] > 0  # how long it took is reported, not asserted (speed is not a unit-test property)


def test_quick_run_covers_every_case_for_both_optimizers(quick_run):
    record, _ = quick_run
    expected = cases.make_cases(quick=True, scale=record["settings"]["scale"], bf16=True)
    got = [(c["optimizer"], c["name"], c["n_params"], c["n_leaves"]) for c in record["cases"]]
    assert got == [(c.optimizer, c.name, c.n_params, c.n_leaves) for c in expected]
    assert {c["optimizer"] for c in record["cases"]} == {"adamw", "sgd"}


def test_every_timing_is_positive_and_ordered(quick_run):
    record, _ = quick_run
    for case in record["cases"]:
        for name, peer in case["peers"].items():
            if "unavailable" in peer:
                assert name.startswith("torch") and peer["unavailable"].startswith("n/a")
                continue
            assert 0 < peer["min_s"] <= peer["median_s"] <= peer["max_s"] < 10, (case["name"], name)
            assert peer["repeats"] == len(peer["times_s"]) >= record["settings"]["min_repeats"]
            assert peer["median_s"] == statistics.median(peer["times_s"]) and peer["min_s"] == min(peer["times_s"])
            assert math.isfinite(peer["pct_roofline"]) and peer["pct_roofline"] > 0


def test_bandwidth_follows_the_byte_count(quick_run):
    record, _ = quick_run
    for case in record["cases"]:
        itemsize = {"float32": 4, "bfloat16": 2}[case["dtype"]]
        per_param = {"adamw": 7, "sgd": 5}[case["optimizer"]] * itemsize  # 28 / 20 bytes in float32
        assert case["bytes_moved"] == per_param * case["n_params"]
        for peer in case["peers"].values():
            if "median_s" in peer:
                assert peer["bandwidth_Bps"] == pytest.approx(case["bytes_moved"] / peer["median_s"], rel=1e-9)
                assert peer["pct_roofline"] == pytest.approx(100 * peer["bandwidth_Bps"] / case["roofline_Bps"])


def test_peers_end_with_the_same_params_as_gradkit(quick_run):
    """Same work: every peer took the same number of steps with the same hyperparameters and gradients."""
    record, _ = quick_run
    for case in record["cases"]:
        for name, peer in case["peers"].items():
            if "median_s" in peer:
                assert peer["max_rel_diff_vs_gradkit"] < RTOL[case["dtype"]], (case["name"], name)


def test_ratios_are_gradkit_over_peer_by_medians_and_by_mins(quick_run):
    record, _ = quick_run
    for case in record["cases"]:
        gk = case["peers"]["gradkit"]["median_s"]
        assert set(case["ratio_gradkit_over"]) == {
            k for k, v in case["peers"].items() if k != "gradkit" and "median_s" in v
        }
        for name, ratio in case["ratio_gradkit_over"].items():
            assert ratio == pytest.approx(gk / case["peers"][name]["median_s"])
            fastest = case["peers"]["gradkit"]["min_s"] / case["peers"][name]["min_s"]
            assert case["ratio_gradkit_over_min"][name] == pytest.approx(fastest)


def test_jax_peers_report_compile_time_hlo_and_memory(quick_run):
    record, _ = quick_run
    for case in record["cases"]:
        for name in ("gradkit", "optax"):
            peer = case["peers"][name]
            assert 0 < peer["lower_s"] <= peer["compile_s"], "compile time includes the lowering"
            assert peer["hlo"]["fusions"] >= case["n_leaves"], "at least one fused loop per leaf"
            itemsize = case["bytes_moved"] // (roofline.ARRAYS_MOVED[case["optimizer"]] * case["n_params"])
            arrays_in = {"adamw": 4, "sgd": 3}[case["optimizer"]]  # params, grads and the moments / velocity
            assert peer["memory"]["argument_bytes"] >= arrays_in * case["n_params"] * itemsize
            assert peer["hlo"]["bytes"] >= case["bytes_moved"], "no program moves less than the formula's floor"
        packed = case["peers"]["gradkit packed"]
        assert packed["hlo"]["fusions"] <= {"adamw": 6, "sgd": 3}[case["optimizer"]], "a few loops, whatever the leaves"
        assert packed["hlo"]["bytes"] >= case["bytes_moved"]


def test_compile_time_is_recorded_against_the_number_of_leaves(quick_run):
    record, _ = quick_run
    rows = record["compile_vs_leaves"]
    assert [r["leaves"] for r in rows] == sorted(r["leaves"] for r in rows) and len(rows) >= 2
    assert all(r["packed_compile_s"] > 0 for r in rows) and "tree_compile_s" in rows[0]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed; the torch peers are optional")
def test_torch_peers_run_or_say_why_not(quick_run):
    record, _ = quick_run
    assert record["torch"].startswith("torch ")
    for case in record["cases"]:
        assert {"torch for-loop", "torch foreach", "torch fused"} <= set(case["peers"])
        assert "median_s" in case["peers"]["torch for-loop"] and "median_s" in case["peers"]["torch foreach"]


def test_training_steps_are_timed_on_the_tree_and_packed(quick_run):
    record, _ = quick_run
    names = [t["name"] for t in record["training"]]
    assert any(n.startswith("MLP") for n in names) and any(n.startswith("GPT-2") for n in names)
    for t in record["training"]:
        assert set(t["peers"]) == {"gradkit", "gradkit packed", "optax"}
        assert t["ratio_packed_over_optax"] == pytest.approx(
            t["peers"]["gradkit packed"]["median_s"] / t["peers"]["optax"]["median_s"]
        )
        # The same steps: packing changes no number beyond rounding. In the GPT-2 model the backward's sums
        # run in another order in each compiled program, and Adam's first steps move a weight by about
        # lr * sign(g) whatever |g| is, so a near-zero gradient that rounds to the other sign moves it by up
        # to 2 * lr = 2e-3 (max |param| ~ 0.1): optax and gradkit differ there by ~1e-5 as well.
        tolerance = TRAINING_RTOL["gpt"] if t["name"].startswith("GPT-2") else RTOL["float32"]
        for peer in ("gradkit packed", "optax"):
            assert t["peers"][peer]["max_rel_diff_vs_gradkit"] < tolerance, (t["name"], peer)


def test_markdown_names_every_case_and_peer(quick_run):
    record, markdown = quick_run
    for case in record["cases"]:
        assert f"| {case['optimizer']} | {case['name']} |" in markdown
    for peer in ("gradkit", "gradkit packed", "optax", "packed/optax", "End-to-end training steps", "number of leaves"):
        assert peer in markdown


def test_gpt2_shapes_at_full_scale_are_gpt2_small():
    shapes = cases.gpt2_shapes(1.0)
    assert len(shapes) == 148
    assert sum(math.prod(s) for s in shapes.values()) == 124_439_808  # GPT-2 small's published count


def test_hlo_shape_bytes_count_every_array_of_a_tuple():
    from gradkit.bench import timing

    assert timing._bytes("bf16[4096,768]{1,0}") == 2 * 4096 * 768
    assert timing._bytes("(f32[8]{0}, s32[])") == 8 * 4 + 4


def test_even_leaves_sum_to_the_total():
    shapes = cases.even_leaves(100, 16 * cases.M + 7)
    assert len(shapes) == 100 and sum(s[0] for s in shapes.values()) == 16 * cases.M + 7


def test_spec_bandwidth_is_named_only_for_h100_sxm_and_h200():
    assert roofline.spec_bandwidth("NVIDIA H100 80GB HBM3") == 3.35e12
    assert roofline.spec_bandwidth("NVIDIA H200") == 4.8e12
    assert roofline.spec_bandwidth("NVIDIA H100 PCIe") is None
    assert roofline.spec_bandwidth("cpu") is None


def test_max_rel_diff_is_relative_to_the_reference():
    ref = {"a": np.array([2.0, -4.0]), "b": np.array([1.0])}
    assert max_rel_diff({"a": np.array([2.0, -4.0]), "b": np.array([1.2])}, ref) == pytest.approx(0.2 / 4.0)


def test_fastest_torch_column_compares_gradkit_with_the_fastest_variant():
    def peer(median: float, fastest: float) -> dict:
        return {"median_s": median, "min_s": fastest}

    # foreach is 4x faster than the for-loop by medians; gradkit takes 2 (median) and 1.5 (fastest)
    case = {"peers": {"gradkit": peer(2.0, 1.5), "torch for-loop": peer(4.0, 3.0), "torch foreach": peer(1.0, 1.0)}}
    assert report._ratio(case, report.TORCH) == "2.00 (1.50)"


def test_bad_scale_is_rejected():
    with pytest.raises(ValueError, match="--scale must be > 0, got -1.0"):
        main(["--scale", "-1"])


def test_results_go_to_an_ignored_folder_by_default():
    assert Path("runs/bench") == RESULTS
    assert "/runs/" in (ROOT / ".gitignore").read_text().split()


def test_optimizer_spec_builds_the_named_optimizer_with_its_arguments():
    assert spec.parse("adamw(learning_rate=1e-3, b1=0.8, mask=None)") == (
        "adamw",
        [],
        {"learning_rate": 1e-3, "b1": 0.8, "mask": None},
    )
    assert spec.parse(" sgd(0.1, momentum=-0.0, nesterov=False) ") == (
        "sgd",
        [0.1],
        {"momentum": -0.0, "nesterov": False},
    )
    assert spec.parse("adam") == ("adam", [], {})
    import jax.numpy as jnp

    import gradkit as gk

    params, grads = {"w": jnp.arange(3.0)}, {"w": jnp.ones(3)}
    got, _ = spec.optimizer("adamw(learning_rate=0.1, weight_decay=0.5)").update(
        grads, gk.adamw(0.1).init(params), params
    )
    want, _ = gk.adamw(0.1, weight_decay=0.5).update(grads, gk.adamw(0.1).init(params), params)
    np.testing.assert_array_equal(got["w"], want["w"])


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("__import__('os').system('true')", "expected a name or a call of a name"),
        ("adamw(learning_rate=lr)", "learning_rate is not a literal: 'lr'"),
        ("adamw(learning_rate=1e-3 * 2)", "not a literal"),
        ("nosuch(1)", "unknown optimizer 'nosuch'"),
        ("gk.adamw(1e-3)", "expected a name or a call of a name"),
        ("adamw(**{'b1': 0.5})", r"\*\*kwargs is not allowed"),
        ("adamw(learning_rate=", "not a Python call expression"),
        ("adamw(colour=1)", "unexpected keyword argument 'colour'"),
        ("adamw(learning_rate=-1.0)", "learning_rate must be"),
    ],
)
def test_bad_optimizer_spec_names_the_spec(bad, why):
    with pytest.raises(ValueError, match=why) as info:
        spec.optimizer(bad)
    assert repr(bad) in str(info.value)


def test_bench_runs_a_users_optimizer_packed_and_not(tmp_path):
    """``gradkit bench --optimizer SPEC --leaves N --leaf-size S --packed``: gradkit on the tree and packed."""
    argv = ["--optimizer", "sgd(learning_rate=0.1, momentum=0.9)", "--leaves", "20", "--leaf-size", "10"]
    assert main([*argv, "--packed", "--quick", "--out", str(tmp_path)]) == 0
    (json_path,) = tmp_path.glob("*custom*.json")
    (case,) = json.loads(json_path.read_text())["cases"]
    assert case["spec"] == "sgd(learning_rate=0.1, momentum=0.9)" and case["n_leaves"] == 20
    assert set(case["peers"]) == {"gradkit", "gradkit packed"}
    assert case["bytes_moved"] == 5 * 200 * 4  # params, grads, velocity read; params, velocity written
    assert case["peers"]["gradkit packed"]["max_rel_diff_vs_gradkit"] == 0.0


def test_bench_rejects_bad_leaf_counts():
    with pytest.raises(ValueError, match="--leaves must be >= 1, got 0"):
        main(["--optimizer", "sgd(0.1)", "--leaves", "0"])


def test_python_m_benchmarks_is_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "--optimizer" in done.stdout and "--suite" in done.stdout
