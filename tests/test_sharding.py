"""Optimizer state on a device mesh: state follows the params, gk.state_shardings, ZeRO-1, checkpoints, 2 processes.

The pytest process has one CPU device; the checks that need eight run in one subprocess
(tests/sharding_worker.py, which reports JSON) next to a two-process run of examples/distributed_zero1.py,
both started once per module. Tests here assert on their reports; the single-device tests run in-process.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradkit as gk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 600  # seconds, for a heavily loaded machine; both runs take ~10 s of CPU each


def _has_cpu_collectives() -> bool:
    from jax._src.lib import _jax

    return hasattr(_jax, "make_gloo_tcp_collectives")


def _python(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The 8-device worker's report and the 2-process example's output, run side by side."""
    worker = _python(os.path.join(ROOT, "tests", "sharding_worker.py"), str(tmp_path_factory.mktemp("checkpoint")))
    example = None
    if _has_cpu_collectives():
        example = _python(
            os.path.join(ROOT, "examples", "distributed_zero1.py"), "--processes", "2", "--steps", "5", "--json"
        )
    out, err = worker.communicate(timeout=TIMEOUT)
    assert worker.returncode == 0, f"sharding_worker.py failed:\n{err[-4000:]}"
    result = {"worker": json.loads(out)}
    if example is not None:
        out, err = example.communicate(timeout=TIMEOUT)
        assert example.returncode == 0, f"distributed_zero1.py --processes 2 failed:\n{err[-4000:]}"
        result["two_processes"] = json.loads(out.strip().splitlines()[-1])
    return result


def _failures(report: dict, key: str) -> dict:
    return {name: entry[key] for name, entry in report.items() if entry[key] not in ([], True)}


# -- 8 devices: state follows the params -------------------------------------------------------------


def test_the_worker_had_eight_devices(runs):
    assert runs["worker"]["devices"] == 8


@pytest.mark.parametrize("when", ["eager", "jit", "update"])
def test_every_state_leaf_has_its_params_sharding(runs, when):
    # Every optimizer in BY_NAME and every primitive, on auto and explicit mesh axes; the count replicated.
    placement = runs["worker"]["placement"]
    assert any(name.startswith("Auto optimizers.") for name in placement)
    assert any(name.startswith("Explicit optimizers.") for name in placement)
    assert _failures(placement, when) == {}


def test_every_optimizer_and_primitive_is_checked(runs):
    placement = runs["worker"]["placement"]
    for name in gk.optimizers.BY_NAME:
        assert f"Auto optimizers.{name}" in placement and f"Explicit optimizers.{name}" in placement
    primitives = {
        name
        for name in gk.primitives.__all__
        if inspect.isfunction(getattr(gk.primitives, name))
        and inspect.signature(getattr(gk.primitives, name)).return_annotation == "GradientTransformation"
    }
    assert primitives, "no primitive found: the selection above no longer matches how primitives are declared"
    assert primitives <= set(runs["worker"]["primitives_covered"])


def test_eager_and_jitted_init_agree(runs):
    assert _failures(runs["worker"]["placement"], "eager_equals_jit") == {}


def test_state_shardings_predicts_the_placement_of_init(runs):
    assert _failures(runs["worker"]["placement"], "state_shardings") == {}


def test_init_and_update_work_inside_shard_map(runs):
    report = runs["worker"]["shard_map"]
    assert report["error"] is None, report["error"]
    assert report["mu_spec"] == "P('data',)" and report["finite"]


# -- 8 devices: ZeRO-1 -------------------------------------------------------------------------------


def test_zero_rule_splits_the_leftmost_divisible_dimension(runs):
    # Mesh data=4, model=2. The documented rule in gradkit/sharding.py, worked out by hand.
    expected = {
        "column": "P('data', 'model')",  # (16, 8) P(None, model): dim 0 divides by 4
        "row": "P(('model', 'data'), None)",  # (8, 16) P(model, None): 8 divides by 2 * 4
        "bias": "P(('model', 'data'),)",  # (8,) P(model)
        "replicated": "P('data', None)",  # (12, 8) P()
        "first_too_small": "P(None, 'data')",  # (3, 8): 3 does not divide, 8 does
        "indivisible": "P()",  # (3, 5)
        "scalar": "P()",
        "already_data": "P('data', None)",  # (8, 4) already split over data: unchanged
        "tiny": "P()",  # (2,): smaller than the axis
        "empty": "P(None, 'data')",  # (0, 8): a zero-size dimension is skipped
    }
    rule = runs["worker"]["zero_rule"]
    assert rule["mu"] == expected
    assert rule["nu"] == expected
    assert rule["count"] == "P()"


def test_zero_axis_errors_name_the_argument(runs):
    errors = runs["worker"]["zero_rule"]["errors"]
    assert "zero_axis='batch'" in errors["batch"] and "('data', 'model')" in errors["batch"]
    assert "zero_axis" in errors["0"] and "got 0" in errors["0"]


def test_zero1_state_bytes_per_device_are_an_eighth(runs):
    report = runs["worker"]["zero_bytes"]
    sharded = report["total"] - report["count_bytes"]  # every leaf but the count divides by 8
    assert sharded % 8 == 0
    assert report["per_device"] == {f"cpu:{i}": sharded // 8 + report["count_bytes"] for i in range(8)}
    assert all(report["abstract_matches_state"])


def test_zero1_training_matches_one_device(runs):
    trajectories = runs["worker"]["trajectories"]
    # Data + model parallel MLP, 50 AdamW steps: the gradient sums over the batch in another order.
    assert trajectories["mlp_params_relative"] < 1e-6
    assert trajectories["mlp_losses_relative"] < 1e-6
    # An elementwise loss changes no reduction order: every optimizer gives the same bits for 50 steps.
    assert trajectories["elementwise_identical"] == dict.fromkeys(gk.optimizers.BY_NAME, True)


# -- 8 devices: checkpoints, the example, two processes -----------------------------------------------


requires_orbax = pytest.mark.skipif(
    importlib.util.find_spec("orbax") is None,
    reason="orbax-checkpoint is not installed: pip install 'gradkit[checkpoint]'",
)


@requires_orbax
@pytest.mark.parametrize("target", ["same mesh", "2x4 mesh", "8x1 no zero"])
def test_orbax_restore_is_bit_exact_in_any_sharding(runs, target):
    restored = runs["worker"]["checkpoint"][target]
    assert restored["bit_exact"] and restored["structure"] and restored["shardings"]
    assert restored["mu_w1"] == ("P(None, 'model')" if target == "8x1 no zero" else "P('data', 'model')")


def test_example_shards_adamw_state_and_matches_one_device(runs):
    example = runs["worker"]["example"]
    assert example["devices"] == 8 and example["processes"] == 1
    # Following the params halves the state (model=2); ZeRO-1 splits it 4 times more, except the output
    # bias (replicated over model) and the count, which the exact test above leaves out.
    assert example["state_bytes_per_device_following_params"] < 0.51 * example["state_bytes_unsharded"]
    assert example["state_bytes_per_device_zero1"] < 0.26 * example["state_bytes_per_device_following_params"]
    assert example["max_relative_difference_from_one_device"] < 1e-6


@requires_orbax
def test_docs_snippets_run(runs):
    docs = runs["worker"]["docs"]
    assert docs["error"] is None, docs["error"]
    assert docs["blocks"] >= 5
    assert "P('data', 'model')" in docs["stdout"] and "{'data': 2, 'model': 4}" in docs["stdout"]


@pytest.mark.skipif(not _has_cpu_collectives(), reason="this jaxlib has no gloo CPU collectives for jax.distributed")
def test_two_processes_give_the_losses_of_one(runs):
    one, two = runs["worker"]["example"], runs["two_processes"]
    assert two["processes"] == 2 and two["devices"] == 8
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-6)
    assert two["state_bytes_per_device_zero1"] == one["state_bytes_per_device_zero1"]


# -- one device, in this process -----------------------------------------------------------------------


def _params() -> dict:
    return {"w": jnp.ones((4, 3)), "b": jnp.linspace(0, 1, 3), "frozen": None}


def test_state_shardings_on_one_device_put_everything_there():
    device = jax.devices()[0]
    params = jax.device_put(_params(), device)
    tx = gk.adamw(1e-3)
    shardings = gk.state_shardings(tx, params)
    assert all(s.device_set == {device} for s in jax.tree.leaves(shardings))
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    assert jax.tree.structure(state) == jax.tree.structure(tx.init(params))


def test_state_shardings_accepts_shape_dtype_structs():
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    structs = {"w": jax.ShapeDtypeStruct((4, 3), jnp.bfloat16, sharding=device)}
    abstract = gk.abstract_state(gk.adam(), structs)
    mu = abstract.inner[0].mu["w"]
    assert (mu.shape, mu.dtype, mu.sharding) == ((4, 3), jnp.bfloat16, device)
    assert abstract.count.dtype == jnp.int32


def test_state_shardings_rejects_params_without_a_sharding():
    with pytest.raises(ValueError, match=r"params\['w'\] has no sharding"):
        gk.state_shardings(gk.adam(), {"w": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match=r"params\['w'\] has no sharding"):
        gk.state_shardings(gk.adam(), {"w": jax.ShapeDtypeStruct((3,), jnp.float32)})


def test_zero_axis_needs_a_mesh_with_that_axis():
    one = jax.device_put({"w": jnp.ones(8)}, jax.devices()[0])
    with pytest.raises(ValueError, match="zero_axis='data' needs params with NamedShardings"):
        gk.state_shardings(gk.adam(), one, zero_axis="data")
    mesh = jax.make_mesh((1,), ("model",))
    on_mesh = jax.device_put({"w": jnp.ones(8)}, NamedSharding(mesh, P()))
    with pytest.raises(
        ValueError, match=r"zero_axis='data' is not an axis of the params' mesh, whose axes are \('model',\)"
    ):
        gk.state_shardings(gk.adam(), on_mesh, zero_axis="data")


def test_init_under_vmap_and_jit_keeps_its_values():
    # The placement hint must not change what init computes, also batched over a grid of params.
    params = {"w": jnp.ones((5, 4, 3)), "z": jnp.ones((5, 2), jnp.complex64)}
    tx = gk.chain(gk.scale_by_rss(0.25), gk.scale_by_adam(mu_dtype=jnp.bfloat16), gk.scale_by_momentum())
    batched = jax.jit(jax.vmap(tx.init))(params)
    for state in (batched, jax.jit(tx.init)(params)):
        rss, adam, momentum = state.inner
        assert rss.sum_of_squares["z"].dtype == jnp.float32 and np.all(rss.sum_of_squares["z"] == 0.25)
        assert adam.mu["w"].dtype == jnp.bfloat16 and np.all(adam.mu["w"] == 0)
        assert momentum.velocity["z"].dtype == jnp.complex64
    assert batched.count.shape == (5,)


def test_count_of_committed_params_sits_on_their_device():
    device = jax.devices()[-1]
    state = gk.sgd(0.1).init(jax.device_put(_params(), device))
    assert state.count.committed and state.count.devices() == {device}
    assert not gk.sgd(0.1).init(_params()).count.committed
