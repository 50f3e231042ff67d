"""Every bad input gets a clear error, no numerical failure is silent, the command line never shows a traceback.

Table-driven, in the manner of torch's optimizer error-input suite. The constructors are discovered from
gradkit's public names (any public function of gk or its public modules whose return annotation is a
``GradientTransformation`` or a ``Schedule``), so one added on another branch is covered here as soon as
it is exported. Each argument is given the bad values of its kind (found from its annotation), and each
error must be the right type and name both the argument (as the user wrote it) and the value.
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradkit as gk
from gradkit import cli

# Gaps this table found in the constructors merged from i11b/i17 (22:20 UTC), for their owners to fix at the
# root; strict, so a fixed one fails here until it is removed from this list.
KNOWN_GAPS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _known_gaps(request):
    reason = KNOWN_GAPS.get(request.node.name)
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


# -- discovery ------------------------------------------------------------------------------------------


def _public_constructors() -> dict[str, object]:
    found = {}
    modules = [("", gk)] + [
        (f"{name}.", getattr(gk, name))
        for name in gk.__all__
        if isinstance(getattr(gk, name), types.ModuleType) and name not in ("train", "race")  # applications
    ]
    for prefix, module in modules:
        for name in getattr(module, "__all__", []):
            fn = getattr(module, name)
            if not inspect.isfunction(fn):
                continue
            returns = str(inspect.signature(fn).return_annotation)
            if not returns.startswith("Callable") and ("GradientTransformation" in returns or "Schedule" in returns):
                found.setdefault(f"{prefix}{name}", fn)
    return found


CONSTRUCTORS = _public_constructors()

# A valid value for arguments without a default, by name (a new constructor's unknown required argument
# falls back on its kind's valid value below).
VALID = {
    "learning_rate": 0.1,
    "factor": 0.5,
    "max_norm": 1.0,
    "weight_decay": 1e-4,
    "strength": 1e-3,
    "total_steps": 100,
    "warmup_steps": 10,
    "step_size": 10,
    "first_period": 10,
    "milestones": [10, 20],
    "boundaries": [10],
    "schedules": [gk.schedules.constant(0.1), gk.schedules.constant(0.01)],
    "transforms": {"a": gk.sgd(0.1)},
    "schedule": gk.schedules.constant(0.1),
    "labels": lambda params: jax.tree.map(lambda _: "a", params),
    "mask": lambda params: jax.tree.map(lambda _: True, params),
    "rate": 0.9,
    "power": 2.0,
    "end_value": 0.0,
    "base_batch_size": 256,
    "batch_size": 512,
}


def _kind(name: str, parameter: inspect.Parameter) -> str | None:
    """The argument's kind, from its annotation: number, length, flag, dtype, steps, choice (None: not checked here)."""
    annotation = str(parameter.annotation)
    if annotation == "GradientTransformation":
        return "transformation"
    if name.endswith("_dtype"):
        return "dtype"
    if annotation == "bool":
        return "flag"
    if annotation == "str":
        return "choice"
    if "Sequence[int]" in annotation:
        return "steps"
    if annotation == "int":
        return "length"
    if "Scalar" in annotation or annotation == "float":
        return "number"
    return None


KIND_VALID = {
    "transformation": gk.sgd(0.1),
    "number": 0.1,
    "length": 10,
    "flag": False,
    "dtype": None,
    "steps": [10, 20],
    "choice": None,
}

# Bad values per kind, with the exception each must raise. "-1" is out of range for every length and
# for every number except a plain factor (``scale(-0.1)`` is meaningful), which is listed separately.
BAD = {
    "number": [
        (float("inf"), ValueError),
        (float("nan"), ValueError),
        (True, TypeError),
        ("0.1", TypeError),
        ([0.1], TypeError),
        (np.array([0.1, 0.2]), ValueError),
        (1 + 2j, TypeError),
    ],
    "length": [(float("inf"), ValueError), (2.5, ValueError), (-1, ValueError), (True, TypeError), ("10", TypeError)],
    "flag": [("yes", TypeError), (1, TypeError), (None, TypeError)],
    "dtype": [(jnp.int32, TypeError), (jnp.bool_, TypeError), ("banana", TypeError)],
    "steps": [(5, TypeError), ([[10], [20]], TypeError), ("10,20", TypeError), ([10, float("inf")], ValueError)],
    "choice": [("banana", ValueError), (3, TypeError)],
    "transformation": [(None, TypeError), ("sgd", TypeError), (0.1, TypeError)],
}


def _arguments(fn):
    """(valid keyword arguments, {checked argument: its kind})."""
    valid, kinds = {}, {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = _kind(name, p)
        if kind is not None:
            kinds[name] = kind
        if p.default is inspect.Parameter.empty:
            valid[name] = VALID.get(name, KIND_VALID.get(kind))
    return valid, kinds


CASES = [(c, a) for c, fn in CONSTRUCTORS.items() for a in _arguments(fn)[1]]


def test_discovery_finds_the_constructors_of_every_family():
    for name in ("sgd", "adamw", "scale_by_adam", "clip_by_global_norm", "schedules.one_cycle", "regularizers.prox_l1"):
        assert name in CONSTRUCTORS
    assert len(CASES) > 60


@pytest.mark.parametrize("constructor, argument", CASES, ids=[f"{c}-{a}" for c, a in CASES])
def test_every_bad_argument_is_refused_with_its_name_and_value(constructor, argument):
    fn = CONSTRUCTORS[constructor]
    valid, kinds = _arguments(fn)
    fn(**valid)  # the base case is fine
    failures = []
    for value, error in BAD[kinds[argument]]:
        try:
            fn(**{**valid, argument: value})
        except (TypeError, ValueError) as e:
            text = str(e)
            shown = repr(value) in text or (isinstance(value, list) and any(repr(v) in text for v in value))
            if not isinstance(e, error) or argument not in text or not shown:
                failures.append(f"{argument}={value!r}: {type(e).__name__}: {text}")
        else:
            failures.append(f"{argument}={value!r} was accepted")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "make, error, message",
    [
        # Errors name the argument the user wrote, not the primitive's.
        (lambda: gk.sgd(0.1, momentum=1.0), ValueError, "momentum must be in [0, 1), got 1.0"),
        (lambda: gk.sgd(0.1, momentum=False), TypeError, "momentum must be a number, not a bool, got False"),
        (lambda: gk.adamw(weight_decay=False), TypeError, "weight_decay must be a number, not a bool, got False"),
        (lambda: gk.sgd(jnp.ones(3)), ValueError, "learning_rate must be a scalar"),
        (lambda: gk.schedules.constant([0.1, 0.2]), TypeError, "value must be a number"),
        (lambda: gk.schedules.join(3, [1]), TypeError, "schedules must be a list of schedules, got 3"),
        (lambda: gk.schedules.cosine_annealing(0.1, 100)(float("nan")), ValueError, "step must be a number, got nan"),
        (
            lambda: gk.losses.softmax_cross_entropy(jnp.array(1.0), jnp.array(0)),
            ValueError,
            "logits must have a class axis",
        ),
        (
            lambda: gk.losses.multiclass_hinge(jnp.ones(3), jnp.array(0), margin=float("inf")),
            ValueError,
            "margin must be finite, got inf",
        ),
        (lambda: gk.regularizers.soft_threshold(jnp.ones(2), -0.1), ValueError, "threshold must be >= 0, got -0.1"),
        (lambda: gk.init.fans((3, -1)), ValueError, "shape[1] must be >= 0, got -1"),
        (lambda: gk.init.kaiming_normal(jax.random.key(0), (3.0, 4)), TypeError, "shape[0] must be an int, got 3.0"),
        (lambda: gk.init.zeros(None, 5), TypeError, "shape must be a tuple of ints"),
        (
            lambda: gk.init.xavier_normal(jax.random.key(0), (3, 4), jnp.int32),
            TypeError,
            "dtype must be a floating dtype",
        ),
        (lambda: gk.gradcheck.check_grads(lambda p: p.sum(), jnp.ones(2), max_coords=True), ValueError, "max_coords"),
        (
            lambda: gk.gradcheck.check_grads(lambda p: p.sum(), jnp.ones(2), step=float("inf")),
            ValueError,
            "step must be finite",
        ),
        (lambda: gk.gradcheck.check_grads(3, jnp.ones(2)), TypeError, "f must be a function"),
    ],
)
def test_bad_values_outside_the_constructor_table(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)


def test_a_traced_scalar_hyperparameter_still_works_and_a_traced_vector_is_refused():
    params = jnp.ones(3)
    step = jax.jit(lambda lr: gk.sgd(lr).update(params, gk.sgd(0.1).init(params))[0])
    np.testing.assert_allclose(step(0.5), -0.5)
    with pytest.raises(ValueError, match="learning_rate must be a real scalar"):
        jax.jit(lambda lr: gk.sgd(lr).update(params, gk.sgd(0.1).init(params))[0])(jnp.ones(3))


# -- numerics: NaN, inf, zero, huge gradients in every float dtype ------------------------------------------

DTYPES = [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64]


def _huge(dtype) -> float:
    return 1e30 if dtype in (jnp.float32, jnp.float64) else float(jnp.finfo(dtype).max)


def _step(tx, grads, params, steps: int = 1):
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(grads, state, params)
    return {k: np.asarray(v, np.float64) for k, v in updates.items()}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", sorted(gk.optimizers.BY_NAME))
def test_nan_inf_zero_and_huge_gradients_are_never_a_silent_zero_step(name, dtype):
    # One leaf per case (the coordinates of a leaf share nothing in these optimizers; per-leaf norms, as in
    # LARS/LAMB, stay per leaf), so one update covers every case.
    with jax.enable_x64(dtype == jnp.float64):
        make = gk.optimizers.BY_NAME[name]
        cases = {"nan": [jnp.nan, 1.0], "inf": [jnp.inf, 1.0], "zero": [0.0, 0.0], "huge": [_huge(dtype), 1.0]}
        grads = {k: jnp.array(v, dtype) for k, v in cases.items()}
        params = {k: jnp.ones(2, dtype) for k in cases}
        try:
            u = _step(make(0.1), grads, params, steps=2)
        except ValueError as e:  # L-BFGS and the like need the loss too: gk.minimize runs them
            if "needs value" not in str(e):
                raise
            pytest.skip(f"{name} takes value/value_fn: {e}")
        # NaN and inf propagate into that coordinate's update (a per-leaf norm may spread them over the leaf),
        # while the other leaves stay finite.
        for bad in ("nan", "inf"):
            assert not np.isfinite(u[bad][0]), (bad, u[bad])
        # A zero gradient is a finite step (0, or the weight decay alone).
        assert np.isfinite(u["zero"]).all(), u["zero"]
        # A gradient too big to square in the state's dtype: a visible non-finite or a real step, never 0.
        assert u["huge"][0] != 0, u["huge"]
        # eps = 0: neither 0/0 on a zero gradient nor -inf on a gradient whose square underflows.
        if "eps" in inspect.signature(make).parameters:
            tiny = {"zero": jnp.zeros(2, dtype), "tiny": jnp.array([1e-30, 1.0], dtype)}
            u = _step(make(0.1, eps=0.0), tiny, {k: jnp.ones(2, dtype) for k in tiny})
            assert all(np.isfinite(v).all() for v in u.values()), u


def test_clip_by_global_norm_handles_norms_whose_square_overflows():
    for dtype, big in ((jnp.float32, 1e20), (jnp.float16, 65504.0), (jnp.bfloat16, 1e30)):
        u, _ = gk.clip_by_global_norm(1.0).update(jnp.array([big, big], dtype), gk.EmptyState())
        np.testing.assert_allclose(np.asarray(u, np.float32), [2**-0.5, 2**-0.5], rtol=1e-2)


# -- mismatched inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(gk.optimizers.BY_NAME))
def test_mismatched_grads_and_states_are_refused_with_the_leaf_path(name):
    tx = gk.optimizers.BY_NAME[name](0.1)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    cases = [
        ({"w": jnp.ones(1)}, ValueError, ["['w']", "(1,)", "(3,)"]),
        ({"w": jnp.ones(3, jnp.int32)}, TypeError, ["['w']", "int32"]),
        ({"w": jnp.ones(3, bool)}, TypeError, ["['w']", "bool"]),
        ({"w": jnp.ones(3, jnp.complex64)}, TypeError, ["['w']", "complex64", "float32"]),
    ]
    for grads, error, words in cases:
        with pytest.raises(error) as info:
            tx.update(grads, state, params)
        assert all(w in str(info.value) for w in words), (grads, str(info.value))
    for other_name, other in gk.optimizers.BY_NAME.items():
        other_state = other(0.1).init(params)
        if jax.tree.structure(other_state) != jax.tree.structure(state):
            with pytest.raises(ValueError, match="state it did not make"):
                tx.update(params, other_state, params)


def test_apply_updates_does_not_broadcast():
    with pytest.raises(ValueError, match=r"updates has shape \(3,\), but params has shape \(1,\)"):
        gk.apply_updates(jnp.ones(1), jnp.ones(3))


# -- the command line -------------------------------------------------------------------------------------

CLI_BAD = [
    (["race", "--tol", "-1"], "--tol", "-1"),
    (["race", "-o", "sgd(momentum=2)"], "momentum in --optimizer", "2"),
    (["race", "-o", "sgd(learning_rate='x')"], "learning_rate in --optimizer", "'x'"),
    (["race", "-o", "sgd("], "--optimizer", "sgd("),
    (["race", "--steps", "0"], "--steps", "0"),
    (["schedules", "--peak", "-1"], "--peak", "-1"),
    (["schedules", "--steps", "3"], "--steps", "3"),
    (["train", "--lr", "-1"], "--lr", "-1"),
    (["train", "--lr", "inf"], "--lr", "inf"),
    (["train", "--l2", "-1"], "--l2", "-1"),
    (["train", "--optimizer", "sgd", "--momentum", "1"], "--momentum", "1"),
    (["train", "--sweep", "lr=0.1,-1"], "--lr", "-1"),
    (["train", "--epochs", "0"], "--epochs", "0"),
]


@pytest.mark.parametrize("argv, flag, value", CLI_BAD, ids=[" ".join(a) for a, _, _ in CLI_BAD])
def test_cli_bad_values_give_one_line_naming_the_flag_and_exit_2(argv, flag, value, capsys, tmp_path):
    out = str(tmp_path / "out") + (".png" if argv[0] == "schedules" else "")
    assert cli.main([*argv, "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and value in err and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["race", "-l", "saddle", "--out", "{file}/race"],
        ["race", "-l", "saddle", "--no-plots", "--html", "{file}/page.html"],
        ["schedules", "--out", "{file}/s.png"],
        ["train", "--out", "{file}/run"],
    ],
    ids=lambda a: a[0] + " " + a[-2],
)
def test_cli_unwritable_outputs_are_refused_before_any_work(argv, capsys, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    began = time.perf_counter()
    assert cli.main([a.replace("{file}", str(tmp_path / "file")) for a in argv]) == 2
    err = capsys.readouterr().err
    assert argv[-2] in err and "is a file" in err
    assert time.perf_counter() - began < 10  # refused up front, not after the race or the training


@pytest.mark.parametrize(
    "argv", [["race", "-l", "saddle"], ["schedules"], ["train", "--epochs", "1"]], ids=lambda a: a[0]
)
def test_cli_missing_matplotlib_is_reported_before_any_work(argv, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "pip install 'gradkit[plot]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bare_gradkit_prints_help_and_version_is_the_package_version(capsys):
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"gradkit {cli.version()}"


def test_repr_shows_the_constructor_and_its_arguments_as_typed():
    assert repr(gk.sgd(0.1, momentum=0.9)).startswith("sgd(learning_rate=0.1, momentum=0.9, nesterov=False")
    assert "learning_rate=0.0001" in repr(gk.adam(jnp.float32(1e-4))) or "1e-04" in repr(gk.adam(jnp.float32(1e-4)))
    assert "scale_by_adam(b1=0.9" in repr(gk.chain(gk.scale_by_adam(), gk.scale_by_learning_rate(0.1)))
    assert repr(gk.schedules.cosine_annealing(0.1, 100)).startswith("cosine_annealing(init_value=0.1, total_steps=100")


SIGINT_RUNS = {
    "train": (["train", "--epochs", "500", "--hidden", "64", "--no-progress"], "stdout", "data "),
    "race": (["race", "-l", "beale,rosenbrock,saddle", "--steps", "20000"], "stderr", "racing"),
}


@pytest.mark.slow
def test_ctrl_c_stops_promptly_with_one_line_exit_130_and_no_output(tmp_path):
    # Both commands start at once (the start-up, importing jax, is most of the time), each is
    # interrupted once it is working, and each must be gone within seconds, leaving nothing behind.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = "import sys; from gradkit.cli import main; sys.exit(main())"
    running = {}
    for command, (flags, _, _) in SIGINT_RUNS.items():
        (tmp_path / command).mkdir()
        argv = [sys.executable, "-c", code, *flags, "--out", str(tmp_path / command / "out")]
        running[command] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for command, p in running.items():
            _, stream, ready = SIGINT_RUNS[command]
            watched = p.stdout if stream == "stdout" else p.stderr
            while ready not in (line := watched.readline()):
                assert line, f"{command} ended before it started working"
            p.send_signal(signal.SIGINT)
            began = time.perf_counter()
            _, stderr = p.communicate(timeout=30)
            assert time.perf_counter() - began < 10, command
            assert p.returncode == 130, (command, stderr)
            assert stderr.strip().splitlines()[-1] == "gradkit: interrupted" and "Traceback" not in stderr
            assert os.listdir(tmp_path / command) == [], command  # no output, no temporary left behind
    finally:
        for p in running.values():
            p.kill()


def test_params_npz_round_trips_both_checkpoints_exactly(tmp_path):
    from gradkit.train import report
    from gradkit.train.loop import Result

    rng = np.random.default_rng(0)
    final = [{"w": rng.normal(size=(3, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}]
    best = [{"w": rng.normal(size=(3, 2)).astype(np.float32), "b": np.ones(2, np.float32)}]
    report.save_params(tmp_path / "params.npz", Result({}, {}, np.array(0), final, best, 0.0))
    for which, expected in (("final", final), ("best", best)):
        loaded = gk.train.load(tmp_path, which)
        assert jax.tree.structure(loaded) == jax.tree.structure(expected)
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(expected)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="no params.npz"):
        gk.train.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="which must be 'best' or 'final'"):
        gk.train.load(tmp_path, "last")


@pytest.mark.slow
def test_a_diverged_train_run_writes_strict_json_a_picture_and_params(tmp_path, capsys):
    import json

    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    argv = ["train", "--optimizer", "sgd", "--lr", "1e4", "--epochs", "3", "--hidden", "8", "--train-size", "100"]
    assert cli.main([*argv, "--no-progress", "--out", str(out)]) == 1
    assert "diverged" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert metrics["non_finite"]["train_loss"] and None in [e["train_loss"] for e in metrics["epochs"]]
    assert (out / "curves.png").stat().st_size > 0
    assert len(jax.tree.leaves(gk.train.load(out, "final"))) == 4


def test_progress_bar_keeps_elapsed_time_and_eta_at_80_columns():
    import io

    from rich.console import Console

    from gradkit.cli import train

    text = io.StringIO()
    console = Console(file=text, width=80, force_terminal=True, color_system=None)
    bar = train.progress_bar(console=console, auto_refresh=False)
    metrics = "train loss 0.1234 acc 0.9876 | val loss 0.2345 acc 0.9765 (and more text than fits)"
    bar.add_task("train", total=120, completed=30, metrics=metrics)
    bar.start()
    bar.refresh()
    bar.stop()
    line = [x for x in text.getvalue().replace("\r", "\n").splitlines() if "/120" in x][-1].replace("\x1b[2K", "")
    assert "30/120" in line and "0:00:00" in line and "eta" in line and "━" in line
    assert len(line.rstrip()) <= 80


def test_sweep_values_are_shown_as_typed_not_as_float32(capsys):
    pytest.importorskip("sklearn")
    from gradkit.cli import _parser, train

    argv = ["train", "--sweep", "lr=1e-4,1e-3", "--epochs", "1", "--hidden", "8"]
    plan = train._plan(_parser(argv).parse_args(argv))
    train._print_header(plan)
    out = capsys.readouterr().out
    assert "learning_rate=[0.0001, 0.001]" in out and "9.99999" not in out
    assert train._config(plan)["hparams"]["learning_rate"] == [0.0001, 0.001]


@pytest.mark.parametrize("constructor", sorted(CONSTRUCTORS))
def test_every_constructor_has_a_repr_naming_it(constructor):
    # A new public constructor gets this by adding @gradkit.core.described above its def.
    fn = CONSTRUCTORS[constructor]
    valid, _ = _arguments(fn)
    assert repr(fn(**valid)).startswith(f"{fn.__name__}("), repr(fn(**valid))[:200]
