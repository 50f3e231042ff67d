"""Data + model parallel training with ZeRO-1 optimizer state, on 8 fake CPU devices.

An MLP on a 4 x 2 mesh (``data``, ``model``): the weights are split over ``model`` (Megatron style: the
first layer by columns, the second by rows), the batch over ``data``, and AdamW's two moments over both
(``gk.state_shardings(..., zero_axis="data")``), so each device holds 1/8 of most of the state. The
compiler inserts the communication: gradients are reduced over ``data`` into the state's shards and the
new params are gathered back to their own sharding.

    python examples/distributed_zero1.py                  # one process, 8 devices
    python examples/distributed_zero1.py --processes 2    # two processes of 4 devices (jax.distributed)

Both print the same losses, and the largest difference from the same steps run on one device.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

DEVICES = 8


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=1, help="launch this many local processes (1 or 2)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def launch(args: argparse.Namespace) -> int:
    """Start ``args.processes`` copies of this script around a coordinator on a free local port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, __file__, "--processes", str(args.processes), "--steps", str(args.steps)]
    command += ["--coordinator", f"127.0.0.1:{port}", *(["--json"] if args.json else [])]
    children = [
        subprocess.Popen([*command, "--process-id", str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(args.processes)
    ]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    # Every process prints the same global numbers; gloo logs its connections to stdout.
    print("".join(line for line in outputs[0].splitlines(keepends=True) if not line.startswith("[Gloo]")), end="")
    return max(child.returncode for child in children)


args = parse()
if args.processes > 1 and args.process_id is None:
    sys.exit(launch(args))

# Fake CPU devices: must be set before jax is imported.
local_devices = DEVICES // args.processes
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={local_devices}"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import gradkit as gk  # noqa: E402

if args.processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # cross-process all-reduce on CPU
    jax.distributed.initialize(args.coordinator, num_processes=args.processes, process_id=args.process_id)

# Auto axes: the compiler reshards between the gradients (sharded like the params) and the ZeRO-1
# state (also split over data). With Explicit axes each of those moves would be a jax.sharding.reshard.
mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
IN, HIDDEN, OUT, BATCH = 32, 128, 16, 64
param_specs = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None), "b2": P()}


def host_data() -> tuple[dict, np.ndarray, np.ndarray]:
    """Params, inputs and targets as host arrays, the same in every process (a fixed seed)."""
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.normal(0, IN**-0.5, (IN, HIDDEN)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": rng.normal(0, HIDDEN**-0.5, (HIDDEN, OUT)).astype(np.float32),
        "b2": np.zeros(OUT, np.float32),
    }
    x = rng.normal(size=(BATCH, IN)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(IN, OUT))).astype(np.float32)  # a teacher: gradients stay far from zero
    return params, x, y


def global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """One array over the whole mesh; each process fills the shards its devices hold."""
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)


tx = gk.adamw(1e-2, weight_decay=0.01)


def step(params: dict, state: gk.ChainState, x: jax.Array, y: jax.Array):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, state = tx.update(grads, state, params)
    return gk.apply_updates(params, updates), state, loss


def state_bytes_per_device(state: gk.ChainState) -> int:
    """The most bytes of ``state`` any one of this process's devices holds."""
    per_device: dict = {}
    for leaf in jax.tree.leaves(state):
        for shard in leaf.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    return max(per_device.values())


host_params, host_x, host_y = host_data()
params = {k: global_array(v, NamedSharding(mesh, param_specs[k])) for k, v in host_params.items()}
x, y = (global_array(a, NamedSharding(mesh, P("data", None))) for a in (host_x, host_y))

# The state is created sharded: nothing of it ever sits whole on one device.
param_shardings = jax.tree.map(lambda p: p.sharding, params)
state_shardings = gk.state_shardings(tx, params, zero_axis="data")
state = jax.jit(tx.init, out_shardings=state_shardings)(params)
following = tx.init(params)  # without ZeRO-1 the state just follows the params
total = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
bytes_following, bytes_zero1 = state_bytes_per_device(following), state_bytes_per_device(state)

sharded_step = jax.jit(
    step, out_shardings=(param_shardings, state_shardings, NamedSharding(mesh, P())), donate_argnums=(0, 1)
)
losses = []
for _ in range(args.steps):
    params, state, loss = sharded_step(params, state, x, y)
    losses.append(float(loss.addressable_data(0)))

# The same steps with every array on one of this process's devices.
one = jax.local_devices()[0]
ref_params, ref_x, ref_y = jax.device_put((host_params, host_x, host_y), one)
ref_state, ref_losses, ref_step = tx.init(ref_params), [], jax.jit(step)
for _ in range(args.steps):
    ref_params, ref_state, loss = ref_step(ref_params, ref_state, ref_x, ref_y)
    ref_losses.append(float(loss))
difference = max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses))

result = {
    "processes": jax.process_count(),
    "devices": jax.device_count(),
    "state_bytes_unsharded": total,
    "state_bytes_per_device_following_params": bytes_following,
    "state_bytes_per_device_zero1": bytes_zero1,
    "losses": losses,
    "max_relative_difference_from_one_device": difference,
}
if args.json:
    print(json.dumps(result))
else:
    print(f"{jax.process_count()} process(es), {jax.device_count()} devices, mesh {dict(mesh.shape)}")
    print(f"AdamW state bytes: unsharded {total}, per device following the params {bytes_following}, ", end="")
    print(f"per device with ZeRO-1 {bytes_zero1} (total/8 = {total / DEVICES:.0f})")
    for i, value in enumerate(losses):
        print(f"step {i:3d}  loss {value:.6f}")
    print(f"largest relative difference from one device: {difference:.2e}")
if args.processes > 1:
    jax.distributed.shutdown()
