"""L-BFGS benchmark: gk.minimize against scipy's L-BFGS-B, optax.lbfgs and torch.optim.LBFGS, in float64.

    python -m benchmarks.lbfgs                 # writes benchmarks/results/lbfgs-<date>.json, updates docs/lbfgs.md
    python -m benchmarks.lbfgs --quick         # fewer repeats, no digits story

Every solver stops when ``||grad||_2 <= tol`` (scipy through a callback raising StopIteration; optax in a
compiled while_loop like gk.minimize; torch's own test is ``max|g_i| <= tolerance_grad``, given ``tol``: it
may stop earlier, its final ||g||_2 is reported). Memory 10 for all. scipy gets hand-written NumPy
objectives and gradients with BLAS limited to one thread (threadpoolctl); gradkit and optax are timed as
compiled solves (compile time reported apart); torch runs its own loop with one thread. Times are medians
of repeats with the spread (min - max); the machine's load is recorded before and after.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import gradkit as gk  # noqa: E402

TOL = 1e-5
MEMORY = 10
MAX_ITER = 20_000
ROOT = Path(__file__).resolve().parent.parent


class Problem(NamedTuple):
    name: str
    f: Callable  # jax: x -> scalar
    fg: Callable  # numpy: x -> (f, g)
    x0: np.ndarray


# -- the problems, each in JAX and in NumPy -------------------------------------------------------


def rosenbrock_jax(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_np(x):
    from scipy.optimize import rosen, rosen_der

    return rosen(x), rosen_der(x)


def beale_jax(p):
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def beale_np(p):
    x, y = p
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
    gx = 2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1)
    gy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y**2
    return a**2 + b**2 + c**2, np.array([gx, gy])


def quadratic(n: int = 100, condition: float = 1e4, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.logspace(0, np.log10(condition), n)) @ q.T
    c = rng.normal(size=n)
    aj, cj = jnp.asarray(a), jnp.asarray(c)

    def fg(x):
        r = a @ (x - c)
        return 0.5 * (x - c) @ r, r

    return Problem(f"quadratic, cond 1e4 ({n}-D)", lambda x: 0.5 * (x - cj) @ aj @ (x - cj), fg, np.zeros(n))


def digits_logistic() -> Problem:
    """The linear softmax classifier on the standardized digits training split, sklearn's C = 1 as L2."""
    from gradkit.train import data as datasets
    from gradkit.train.full_batch import l2_from_sklearn_c

    x, y = datasets.load_digits()
    parts = datasets.split(x, y, 0.15, 0.15, 0)
    parts = datasets.standardize(parts, datasets.feature_stats(parts.x_train))
    xt, yt = np.asarray(parts.x_train, np.float64), np.asarray(parts.y_train)
    n, d = xt.shape
    k = parts.num_classes
    l2 = l2_from_sklearn_c(1.0, n)
    onehot = np.eye(k)[yt]
    xj, yj = jnp.asarray(xt), jnp.asarray(yt)

    def f(theta):
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        z = xj @ w + b
        ce = jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, yj[:, None], axis=1)[:, 0]
        return jnp.mean(ce) + l2 * jnp.sum(w**2)

    def fg(theta):
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        z = xt @ w + b
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        value = np.mean(np.log(s[:, 0]) - z[np.arange(n), yt]) + l2 * np.sum(w**2)
        r = (e / s - onehot) / n
        return value, np.concatenate([(xt.T @ r + 2 * l2 * w).ravel(), r.sum(axis=0)])

    return Problem(f"digits logistic regression ({d * k + k} params)", f, fg, np.zeros(d * k + k))


def problems() -> list[Problem]:
    return [
        Problem("Rosenbrock 2-D", rosenbrock_jax, rosenbrock_np, np.array([-1.2, 1.0])),
        Problem("Rosenbrock 100-D", rosenbrock_jax, rosenbrock_np, np.tile([-1.2, 1.0], 50)),
        digits_logistic(),
        quadratic(),
        Problem("Beale", beale_jax, beale_np, np.array([1.0, 1.5])),
    ]


# -- the solvers: each returns (one solve -> stats) -----------------------------------------------


def gradkit_solver(p: Problem) -> tuple[Callable[[], dict], float]:
    optimizer = gk.lbfgs(memory_size=MEMORY)
    solve = jax.jit(lambda x: gk.minimize(p.f, x, optimizer, max_iter=MAX_ITER, tol=TOL))
    x0 = jnp.asarray(p.x0)
    began = time.perf_counter()
    compiled = solve.lower(x0).compile()
    compile_s = time.perf_counter() - began

    def run() -> dict:
        r = jax.block_until_ready(compiled(x0))
        return {
            "iterations": int(r.iterations),
            "evaluations": int(r.evaluations),
            "value": float(r.value),
            "grad_norm": float(r.grad_norm),
        }

    return run, compile_s


def optax_solver(p: Problem) -> tuple[Callable[[], dict], float]:
    import optax
    import optax.tree_utils as otu

    opt = optax.lbfgs(memory_size=MEMORY)
    value_and_grad = optax.value_and_grad_from_state(p.f)

    def solve(x0):
        def step(carry):
            x, state, k, evals = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=p.f)
            steps = otu.tree_get(state, "num_linesearch_steps")
            return optax.apply_updates(x, updates), state, k + 1, evals + steps

        def running(carry):
            _x, state, k, _ = carry
            grad = otu.tree_get(state, "grad")
            return (k == 0) | ((k < MAX_ITER) & (otu.tree_norm(grad) > TOL))

        x, state, k, evals = jax.lax.while_loop(running, step, (x0, opt.init(x0), 0, 1))
        return x, otu.tree_get(state, "value"), otu.tree_norm(otu.tree_get(state, "grad")), k, evals

    x0 = jnp.asarray(p.x0)
    began = time.perf_counter()
    compiled = jax.jit(solve).lower(x0).compile()
    compile_s = time.perf_counter() - began

    def run() -> dict:
        _x, value, grad_norm, k, evals = jax.block_until_ready(compiled(x0))
        return {"iterations": int(k), "evaluations": int(evals), "value": float(value), "grad_norm": float(grad_norm)}

    return run, compile_s


def scipy_solver(p: Problem) -> tuple[Callable[[], dict], float]:
    from scipy.optimize import minimize

    def run() -> dict:
        last = {}

        def fg(x):
            value, grad = p.fg(x)
            last["grad"] = grad
            return value, grad

        def callback(intermediate_result):
            if np.linalg.norm(last["grad"]) <= TOL:
                raise StopIteration

        options = {"maxcor": MEMORY, "gtol": 0.0, "ftol": 0.0, "maxiter": MAX_ITER, "maxfun": 10 * MAX_ITER}
        r = minimize(fg, p.x0, jac=True, method="L-BFGS-B", callback=callback, options=options)
        return {
            "iterations": int(r.nit),
            "evaluations": int(r.nfev),
            "value": float(r.fun),
            "grad_norm": float(np.linalg.norm(last["grad"])),
            "message": str(r.message),
        }

    return run, 0.0


def torch_solver(p: Problem) -> tuple[Callable[[], dict], float]:
    import torch

    def run() -> dict:
        x = torch.tensor(p.x0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [x], lr=1, max_iter=MAX_ITER, max_eval=10 * MAX_ITER, tolerance_grad=TOL, tolerance_change=0.0,
            history_size=MEMORY, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure():
            opt.zero_grad()
            value, grad = p.fg(x.detach().numpy())
            x.grad = torch.from_numpy(np.asarray(grad, np.float64))
            return torch.tensor(value, dtype=torch.float64)

        opt.step(closure)
        value, grad = p.fg(x.detach().numpy())
        state = opt.state[x]
        return {
            "iterations": int(state["n_iter"]),
            "evaluations": int(state["func_evals"]),
            "value": float(value),
            "grad_norm": float(np.linalg.norm(grad)),
        }

    return run, 0.0


SOLVERS = {
    "gradkit": gradkit_solver,
    "scipy L-BFGS-B": scipy_solver,
    "optax.lbfgs": optax_solver,
    "torch LBFGS": torch_solver,
}


def timed(run: Callable[[], dict], repeats: int, budget_s: float) -> tuple[dict, list[float]]:
    stats = run()  # warm-up (and the result)
    times = []
    began = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - began < budget_s):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return stats, times


# -- the lecture's story on the digits: full-batch L-BFGS beside the default mini-batch AdamW -------


def digits_story() -> dict:
    """``gradkit train --model linear`` with its AdamW recipe and with ``--optimizer lbfgs``: one run each."""
    import contextlib
    import io
    import tempfile

    from gradkit.cli import main

    out = {}
    runs = {"adamw": ["--no-progress"], "lbfgs": ["--optimizer", "lbfgs"]}
    for name, argv in runs.items():
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            began = time.perf_counter()
            main(["train", "--model", "linear", *argv, "--out", os.path.join(tmp, "run")])
            wall = time.perf_counter() - began
            metrics = json.loads(Path(tmp, "run", "metrics.json").read_text())
        config = metrics["config"]
        n_train = config["sizes"]["train"] if "sizes" in config else 1259
        if name == "adamw":
            steps = config["total_steps"]
            out[name] = {
                "wall_s": wall,
                "train_time_s": metrics["train_time_s"],
                "gradient_evaluations": f"{steps} mini-batch gradients of {config['batch_size']} "
                f"(= {steps * config['batch_size'] / n_train:.0f} passes over the {n_train} examples)",
                "test_acc": metrics["summary"]["final_test_acc"],
                "train_acc": metrics["summary"]["final_train_acc"],
            }
        else:
            solve = metrics["solve"]
            out[name] = {
                "wall_s": wall,
                "train_time_s": solve["wall_time_s"],
                "compile_s": solve["compile_time_s"],
                "gradient_evaluations": f"{solve['evaluations']} full-batch gradients ({solve['iterations']} iterations)",
                "test_acc": metrics["metrics"]["test_acc"],
                "train_acc": metrics["metrics"]["train_acc"],
                "objective": solve["objective"],
            }
    return out


# -- report ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    import optax
    import scipy
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "scipy": scipy.__version__,
        "optax": optax.__version__,
        "torch": torch.__version__,
        "gradkit": gk.__version__,
    }


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(report: dict) -> str:
    lines = [
        (
            f"Measured {report['date']} on {report['machine']['cpu']} ({report['machine']['cores']} cores, shared), "
            f"jax {report['machine']['jax']}, scipy {report['machine']['scipy']}, optax {report['machine']['optax']}, "
            f"torch {report['machine']['torch']}. Load before: `{report['load_before']}`; after: `{report['load_after']}`."
        ),
        (
            f"float64, memory 10, stop at ||g||_2 <= {TOL:g}; time per solve = median (min - max) of the repeats, "
            "compiled; compile time apart."
        ),
        "",
        "| problem | solver | iterations | evaluations | final f | final \\|\\|g\\|\\| | time per solve | vs scipy | compile |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for problem in report["problems"]:
        scipy_time = problem["solvers"]["scipy L-BFGS-B"]["median_s"]
        for name, s in problem["solvers"].items():
            lines.append(
                f"| {problem['name']} | {name} | {s['iterations']} | {s['evaluations']} | {s['value']:.3g} | "
                f"{s['grad_norm']:.2g} | {_ms(s['median_s'])} ({_ms(s['min_s'])} - {_ms(s['max_s'])}) | "
                f"{s['median_s'] / scipy_time:.2f}x | {s['compile_s']:.2f} s |"
            )
    if report.get("digits_story"):
        lines += [
            "",
            "The digits story, `gradkit train --model linear` (one run each; train time includes compiling):",
            "",
            "| optimizer | gradient evaluations | train time | train acc | test acc |",
            "|---|---|---:|---:|---:|",
        ]
        for name, s in report["digits_story"].items():
            label = "AdamW recipe (mini-batch, 120 epochs)" if name == "adamw" else "L-BFGS (full batch, float64)"
            compiling = f" ({s['compile_s']:.1f} s compiling)" if "compile_s" in s else ""
            lines.append(
                f"| {label} | {s['gradient_evaluations']} | {s['train_time_s']:.1f} s{compiling} | "
                f"{float(s['train_acc']):.4f} | {float(s['test_acc']):.4f} |"
            )
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip the digits story")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed repeats per solver and problem")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats

    import scipy.optimize
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    # threadpool_limits only reaches BLAS libraries already loaded: load scipy's L-BFGS-B first.
    scipy.optimize.minimize(rosenbrock_np, np.zeros(2), jac=True, method="L-BFGS-B")
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_before": load(),
        "tol": TOL,
        "memory_size": MEMORY,
        "problems": [],
    }
    with threadpool_limits(1):
        for p in problems():
            entry = {"name": p.name, "solvers": {}}
            for name, make in SOLVERS.items():
                run, compile_s = make(p)
                stats, times = timed(run, repeats, args.budget)
                entry["solvers"][name] = {
                    **stats,
                    "median_s": statistics.median(times),
                    "min_s": min(times),
                    "max_s": max(times),
                    "repeats": len(times),
                    "compile_s": compile_s,
                }
                print(f"{p.name:40s} {name:15s} {stats['iterations']:6d} it {stats['evaluations']:6d} ev "
                      f"f={stats['value']:.3g} |g|={stats['grad_norm']:.2g} {_ms(statistics.median(times))}", flush=True)  # fmt: skip
            report["problems"].append(entry)
    if not args.quick:
        report["digits_story"] = digits_story()
    report["load_after"] = load()
    table = markdown(report)
    print(table)
    if not args.no_write:
        day = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
        out = ROOT / "benchmarks" / "results" / f"lbfgs-{day}.json"
        out.write_text(json.dumps(report, indent=2) + "\n")
        docs = ROOT / "docs" / "lbfgs.md"
        if docs.exists():
            text = docs.read_text()
            start, end = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
            if start in text and end in text:
                head, rest = text.split(start, 1)
                docs.write_text(head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1])
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
