"""The 8-device half of tests/test_sharding.py: run as a script, it prints one JSON object of measurements.

The pytest process has one CPU device and jax cannot add more once imported, so every check that needs
a mesh runs here, in one subprocess, and reports what it saw; the tests assert on the report.

    python tests/sharding_worker.py CHECKPOINT_DIR
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import runpy
import sys
import time
import traceback

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradkit as gk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every public primitive, built with arguments that give it state where it can have some.
PRIMITIVES = {
    "identity": gk.identity,
    "scale": lambda: gk.scale(-0.1),
    "scale_by_learning_rate": lambda: gk.scale_by_learning_rate(0.1),
    "scale_by_learning_rate(schedule)": lambda: gk.scale_by_learning_rate(gk.schedules.cosine_annealing(0.1, 100)),
    "clip_by_global_norm": lambda: gk.clip_by_global_norm(1.0),
    "add_decayed_weights": lambda: gk.add_decayed_weights(0.1),
    "scale_by_momentum": gk.scale_by_momentum,
    "scale_by_rss": lambda: gk.scale_by_rss(0.1),
    "scale_by_rms": gk.scale_by_rms,
    "scale_by_adam": gk.scale_by_adam,
    "scale_by_adam(bfloat16 mu)": lambda: gk.scale_by_adam(mu_dtype=jnp.bfloat16),
    "chain(momentum, lr)": lambda: gk.chain(gk.scale_by_momentum(), gk.scale_by_learning_rate(0.1)),
}
TRANSFORMS = {**{f"optimizers.{name}": (lambda make=make: make(0.1)) for name, make in gk.optimizers.BY_NAME.items()}}
TRANSFORMS.update({f"primitives.{name}": make for name, make in PRIMITIVES.items()})


def mesh_of(shape: tuple[int, int], axis_type: AxisType = AxisType.Auto) -> jax.sharding.Mesh:
    return jax.make_mesh(shape, ("data", "model"), axis_types=(axis_type, axis_type))


def place(host: dict, mesh: jax.sharding.Mesh, specs: dict) -> dict:
    return {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in host.items()}


def spec_str(sharding: jax.sharding.Sharding) -> str:
    return str(getattr(sharding, "spec", sharding))


def expected_sharding(path: tuple, params: dict, mesh: jax.sharding.Mesh) -> jax.sharding.Sharding:
    """A leaf whose path ends in a param's name mirrors that param; anything else is replicated on the mesh."""
    last = path[-1] if path else None
    name = getattr(last, "key", None)
    return params[name].sharding if name in params else NamedSharding(mesh, P())


def placement_errors(state: gk.ChainState, params: dict, mesh: jax.sharding.Mesh) -> list[str]:
    errors = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        want = expected_sharding(path, params, mesh)
        if not leaf.sharding.is_equivalent_to(want, leaf.ndim):
            errors.append(f"state{jax.tree_util.keystr(path)}: {leaf.sharding} instead of {spec_str(want)}")
    return errors


def bits(tree: object) -> list[bytes]:
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def check_placement() -> dict:
    """Eager init, jitted init and a jitted update of every transformation, on auto and explicit meshes.

    All transformations are initialised (and updated) in one jitted function, to compile once; a state
    made only of the step count is also jitted alone, where no output would otherwise use the params.
    """
    host = {
        "w": np.linspace(-1, 1, 16 * 8, dtype=np.float32).reshape(16, 8),
        "b": np.linspace(0.5, 1, 8, dtype=np.float32),
        "s": np.float32(0.7),
    }
    specs = {"w": P(None, "model"), "b": P("model"), "s": P()}
    txs = {name: make() for name, make in TRANSFORMS.items()}
    report: dict = {}
    for axis_type in (AxisType.Auto, AxisType.Explicit):
        mesh = mesh_of((4, 2), axis_type)
        params = place(host, mesh, specs)
        grads = jax.tree.map(lambda p: 0.5 * p + 1.0, params)
        eager = {name: tx.init(params) for name, tx in txs.items()}
        jitted = jax.jit(lambda p: {name: tx.init(p) for name, tx in txs.items()})(params)
        jitted["count only, jitted alone"] = jax.jit(gk.sgd(0.1).init)(params)
        eager["count only, jitted alone"] = gk.sgd(0.1).init(params)
        updated = jax.jit(lambda g, s, p: {name: tx.update(g, s[name], p)[1] for name, tx in txs.items()})(
            grads, jitted, params
        )
        for name in eager:
            predicted = gk.state_shardings(txs.get(name, gk.sgd(0.1)), params)
            report[f"{axis_type.name} {name}"] = {
                "eager": placement_errors(eager[name], params, mesh),
                "jit": placement_errors(jitted[name], params, mesh),
                "update": placement_errors(updated.get(name, jitted[name]), params, mesh),
                "state_shardings": [
                    f"{spec_str(s)} vs {spec_str(x.sharding)}"
                    for s, x in zip(jax.tree.leaves(predicted), jax.tree.leaves(eager[name]))
                    if not s.is_equivalent_to(x.sharding, x.ndim)
                ],
                "eager_equals_jit": bits(eager[name]) == bits(jitted[name]),
            }
    return report


def check_shard_map() -> dict:
    """init and update inside ``shard_map`` (per-shard optimizers): the placement hints must not get in the way."""
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    params = {"w": jax.device_put(jnp.linspace(0, 1, 64).reshape(16, 4), NamedSharding(mesh, P("data")))}
    tx = gk.adam(0.1)

    def per_shard(p):
        updates, state = tx.update(p, tx.init(p), p)
        return updates, state.inner[0].mu

    try:
        updates, mu = jax.jit(jax.shard_map(per_shard, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(params)
    except Exception:  # noqa: BLE001 - the report carries the traceback to the test
        return {"error": traceback.format_exc()}
    return {"error": None, "mu_spec": spec_str(mu["w"].sharding), "finite": bool(jnp.isfinite(updates["w"]).all())}


def check_zero_rule() -> dict:
    """The ZeRO-1 spec chosen for leaves of many shapes and shardings (the tests hold the documented answers)."""
    mesh = mesh_of((4, 2))
    shapes_specs = {
        "column": ((16, 8), P(None, "model")),  # dim 0 divides by 4
        "row": ((8, 16), P("model", None)),  # dim 0 holds model (2): 8 divides by 2*4
        "bias": ((8,), P("model")),
        "replicated": ((12, 8), P()),
        "first_too_small": ((3, 8), P()),  # dim 0 indivisible, dim 1 divides
        "indivisible": ((3, 5), P()),
        "scalar": ((), P()),
        "already_data": ((8, 4), P("data", None)),
        "tiny": ((2,), P()),
        "empty": ((0, 8), P()),
    }
    params = {
        k: jax.ShapeDtypeStruct(shape, jnp.float32, sharding=NamedSharding(mesh, spec))
        for k, (shape, spec) in shapes_specs.items()
    }
    shardings = gk.state_shardings(gk.adam(), params, zero_axis="data")
    adam_state = shardings.inner[0]
    errors = {}
    for bad in ("batch", 0):
        try:
            gk.state_shardings(gk.adam(), params, zero_axis=bad)
            errors[str(bad)] = "no error"
        except ValueError as e:
            errors[str(bad)] = str(e)
    return {
        "mu": {k: spec_str(s) for k, s in adam_state.mu.items()},
        "nu": {k: spec_str(s) for k, s in adam_state.nu.items()},
        "count": spec_str(shardings.count),
        "errors": errors,
    }


def check_zero_bytes() -> dict:
    """Per-device state bytes of AdamW with ZeRO-1 on a model whose leaves all divide by 8."""
    mesh = mesh_of((4, 2))
    host = {
        "w1": np.ones((64, 32), np.float32),
        "b1": np.ones((32,), np.float32),
        "w2": np.ones((32, 16), np.float32),
    }
    params = place(host, mesh, {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None)})
    tx = gk.adamw(1e-3)
    shardings = gk.state_shardings(tx, params, zero_axis="data")
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    grads = jax.tree.map(lambda p: p * 0.1, params)
    step = jax.jit(tx.update, out_shardings=(jax.tree.map(lambda p: p.sharding, params), shardings))
    _, state = step(grads, state, params)
    per_device: dict = {}
    for leaf in jax.tree.leaves(state):
        for shard in leaf.addressable_shards:
            per_device[str(shard.device)] = per_device.get(str(shard.device), 0) + shard.data.nbytes
    return {
        "total": sum(leaf.nbytes for leaf in jax.tree.leaves(state)),
        "count_bytes": int(state.count.nbytes),
        "per_device": per_device,
        "abstract_matches_state": [
            spec_str(a.sharding) == spec_str(x.sharding) and a.shape == x.shape and a.dtype == x.dtype
            for a, x in zip(jax.tree.leaves(gk.abstract_state(tx, params, zero_axis="data")), jax.tree.leaves(state))
        ],
    }


def mlp_problem() -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    params = {
        "w1": rng.normal(0, 0.2, (16, 32)).astype(np.float32),
        "b1": np.zeros(32, np.float32),
        "w2": rng.normal(0, 0.2, (32, 8)).astype(np.float32),
    }
    x = rng.normal(size=(64, 16)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(16, 8))).astype(np.float32) + 0.5
    return params, x, y


def mlp_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] - y) ** 2)


def run(tx: gk.GradientTransformation, params, state, loss, batch, steps: int, shardings=None):
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params, *batch)
        updates, state = tx.update(grads, state, params)
        return gk.apply_updates(params, updates), state, value

    step = jax.jit(step) if shardings is None else jax.jit(step, out_shardings=shardings)
    trajectory, values = [], []
    for _ in range(steps):
        params, state, value = step(params, state)
        trajectory.append(jax.device_get(params))
        values.append(float(value))
    return trajectory, values


class _Many:
    """Several optimizers stepped side by side, each on its own copy of the params (one compile for all)."""

    def __init__(self, txs: dict) -> None:
        self.txs = txs

    def init(self, params: dict) -> dict:
        return {n: tx.init(params[n]) for n, tx in self.txs.items()}

    def update(self, grads: dict, states: dict, params: dict) -> tuple[dict, dict]:
        out = {n: tx.update(grads[n], states[n], params[n]) for n, tx in self.txs.items()}
        return {n: u for n, (u, _) in out.items()}, {n: s for n, (_, s) in out.items()}

    def loss(self, fn):
        return lambda params, targets: sum(fn(params[n], targets[n]) for n in self.txs)


def check_trajectories() -> dict:
    """ZeRO-1 data + model parallel training against the same steps on one device."""
    mesh = mesh_of((4, 2))
    host, x, y = mlp_problem()
    specs = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None)}
    tx = gk.adamw(1e-2, weight_decay=0.01)
    params = place(host, mesh, specs)
    batch = tuple(jax.device_put(a, NamedSharding(mesh, P("data", None))) for a in (x, y))
    shardings = gk.state_shardings(tx, params, zero_axis="data")
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    out = (jax.tree.map(lambda p: p.sharding, params), shardings, NamedSharding(mesh, P()))
    sharded, sharded_losses = run(tx, params, state, mlp_loss, batch, 50, out)
    one = jax.devices()[0]
    single_params = jax.device_put(host, one)
    single, single_losses = run(tx, single_params, tx.init(single_params), mlp_loss, jax.device_put((x, y), one), 50)
    relative = max(
        float(np.linalg.norm(a - b) / np.linalg.norm(b))
        for ps, pr in zip(sharded, single)
        for a, b in zip(jax.tree.leaves(ps), jax.tree.leaves(pr))
    )
    loss_relative = max(abs(a - b) / abs(b) for a, b in zip(sharded_losses, single_losses))

    # An elementwise loss: no sum over shards reaches the gradient, so no reduction order can change.
    start = np.linspace(-1, 1, 32 * 16, dtype=np.float32).reshape(32, 16)
    target = np.linspace(-2, 3, 32 * 16, dtype=np.float32).reshape(32, 16)
    txs = {name: make(0.05) for name, make in gk.optimizers.BY_NAME.items()}
    many = _Many(txs)
    sharding = NamedSharding(mesh, P(None, "model"))
    params = {name: jax.device_put(start, sharding) for name in txs}
    shardings = {name: gk.state_shardings(tx, params[name], zero_axis="data") for name, tx in txs.items()}
    states = jax.jit(many.init, out_shardings=shardings)(params)
    out = (dict.fromkeys(txs, sharding), shardings, NamedSharding(mesh, P()))
    targets = {name: jax.device_put(target, sharding) for name in txs}
    loss = many.loss(lambda p, t: jnp.sum(jnp.cosh(p - t)))
    sharded, _ = run(many, params, states, loss, (targets,), 50, out)
    single_params = jax.device_put(dict.fromkeys(txs, start), one)
    single_targets = jax.device_put(dict.fromkeys(txs, target), one)
    single, _ = run(many, single_params, many.init(single_params), loss, (single_targets,), 50)
    identical = {name: bits([p[name] for p in sharded]) == bits([p[name] for p in single]) for name in txs}
    return {"mlp_params_relative": relative, "mlp_losses_relative": loss_relative, "elementwise_identical": identical}


def check_checkpoint(directory: str) -> dict:
    """Save params + ZeRO-1 state with orbax, restore into the same and into other meshes, bit for bit."""
    if importlib.util.find_spec("orbax") is None:
        return {"skipped": "orbax-checkpoint is not installed (pip install 'gradkit[checkpoint]')"}
    import orbax.checkpoint as ocp

    host, _, _ = mlp_problem()
    specs = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None)}
    mesh = mesh_of((4, 2))
    tx = gk.adamw(1e-2)
    params = place(host, mesh, specs)
    state = jax.jit(tx.init, out_shardings=gk.state_shardings(tx, params, zero_axis="data"))(params)
    updates, state = jax.jit(tx.update)(jax.tree.map(jnp.cos, params), state, params)
    trained = {"params": gk.apply_updates(params, updates), "state": state}
    checkpointer = ocp.StandardCheckpointer()
    path = os.path.join(directory, "step")
    checkpointer.save(path, trained)
    checkpointer.wait_until_finished()

    report = {}
    for label, shape, zero_axis in (
        ("same mesh", (4, 2), "data"),
        ("2x4 mesh", (2, 4), "data"),
        ("8x1 no zero", (8, 1), None),
    ):
        target_mesh = mesh_of(shape)
        abstract_params = {
            k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=NamedSharding(target_mesh, specs[k]))
            for k, v in host.items()
        }
        target = {"params": abstract_params, "state": gk.abstract_state(tx, abstract_params, zero_axis=zero_axis)}
        restored = checkpointer.restore(path, target)
        report[label] = {
            "bit_exact": bits(restored) == bits(trained),
            "structure": jax.tree.structure(restored) == jax.tree.structure(trained),
            "shardings": all(
                r.sharding.is_equivalent_to(t.sharding, r.ndim)
                for r, t in zip(jax.tree.leaves(restored), jax.tree.leaves(target))
            ),
            "mu_w1": spec_str(restored["state"].inner[0].mu["w1"].sharding),
        }
    return report


def run_example() -> dict:
    """examples/distributed_zero1.py in this process (8 devices), as the 2-process run's reference."""
    sys.argv = ["distributed_zero1.py", "--json", "--steps", "5"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(os.path.join(ROOT, "examples", "distributed_zero1.py"), run_name="__main__")
    return json.loads(out.getvalue())


def run_docs() -> dict:
    """The python snippets of docs/distributed.md, in order, as one script."""
    if importlib.util.find_spec("orbax") is None:
        return {"skipped": "orbax-checkpoint is not installed (pip install 'gradkit[checkpoint]')"}
    with open(os.path.join(ROOT, "docs", "distributed.md")) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.DOTALL)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            exec(compile("\n".join(blocks), "docs/distributed.md", "exec"), {"__name__": "docs"})
    except Exception:  # noqa: BLE001 - the report carries the traceback to the test
        return {"blocks": len(blocks), "error": traceback.format_exc()}
    return {"blocks": len(blocks), "error": None, "stdout": out.getvalue()}


def timed(check, *args) -> dict:
    start = time.process_time()
    result = check(*args)
    seconds[check.__name__] = round(time.process_time() - start, 2)
    return result


if __name__ == "__main__":
    seconds: dict = {}
    results = {
        "devices": jax.device_count(),
        "primitives_covered": sorted({name.split("(")[0] for name in PRIMITIVES}),
        "placement": timed(check_placement),
        "shard_map": timed(check_shard_map),
        "zero_rule": timed(check_zero_rule),
        "zero_bytes": timed(check_zero_bytes),
        "trajectories": timed(check_trajectories),
        "checkpoint": timed(check_checkpoint, sys.argv[1]),
        "example": timed(run_example),
        "docs": timed(run_docs),
        "cpu_seconds": seconds,
    }
    print(json.dumps(results))
