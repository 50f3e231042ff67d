"""`gradkit race`: the command, its table, its PNGs and its page (in a real headless chromium)."""

from __future__ import annotations

import functools
import json
import operator
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from gradkit import cli, landscapes
from gradkit.race import optimizer, page, race

pytest.importorskip("matplotlib", reason="the race pictures need matplotlib (pip install 'gradkit[plot]')")

ARGS = ["race", "--landscape", "saddle,narrow_valley", "--steps", "300", "--lrs", "1e-3:0.3:8"]
# The lecture's four in their Okabe-Ito colours (gradkit._style): vermillion, blue, bluish green, orange.
COLOURS = {"SGD": (213, 94, 0), "Momentum": (0, 114, 178), "RMSProp": (0, 158, 115), "Adam": (230, 159, 0)}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("race")
    code = cli.main([*ARGS, "--out", str(out), "--html", str(out / "race.html")])
    assert code == 0
    return out


def pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    return (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)


def test_race_writes_one_png_per_landscape_and_a_stability_plot(outputs):
    names = sorted(p.name for p in outputs.glob("*.png"))
    assert names == ["race_narrow_valley.png", "race_saddle.png", "stability.png"]
    for p in outputs.glob("*.png"):
        assert 15_000 < p.stat().st_size < 200_000, p  # small enough to commit, big enough to hold a plot


@pytest.mark.parametrize("png", ["race_saddle.png", "race_narrow_valley.png", "stability.png"])
def test_every_optimizer_is_drawn_in_its_lecture_colour(outputs, png):
    img = pixels(outputs / png)
    masks = {name: np.abs(img - np.array(rgb)).max(axis=-1) <= 10 for name, rgb in COLOURS.items()}
    for name, mask in masks.items():
        assert mask.sum() > 30, (name, {n: int(m.sum()) for n, m in masks.items()})
    # Different optimizers draw different paths: each pair of colours covers different pixels.
    names = list(masks)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert (masks[names[a]] ^ masks[names[b]]).sum() > 30, (names[a], names[b])


def test_race_prints_a_table_with_the_outcome_of_each_optimizer(tmp_path, capsys):
    assert cli.main([*ARGS, "--no-plots", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "saddle" in line or "narrow_valley" in line]
    assert len(rows) == 8
    for label in COLOURS:
        assert sum(label in line for line in rows) == 2
    assert not list(tmp_path.glob("*.png"))


def test_race_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["race", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--landscape", "--optimizer", "--steps", "--lrs", "--out", "--html", "--tol"):
        assert option in text
    for name in landscapes.LANDSCAPES:
        assert name in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--landscape", "bael"], "unknown landscape 'bael'; known landscapes: beale, rosenbrock"),
        (
            ["--optimizer", "adamm"],
            "unknown optimizer 'adamm'; known optimizers: adabelief, adadelta, adafactor, adagrad, adam",
        ),
        (["--optimizer", "sgd(momentun=0.9)"], "gk.sgd does not accept {'momentun': 0.9}"),
        (["--optimizer", "sgd(0.1)"], "keyword arguments only"),
        (["--lrs", "1:0.1:5"], "--lrs needs 0 < MIN <= MAX"),
        (["-o", "sgd", "-o", "sgd"], "optimizer labels must differ"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    assert cli.main(["race", *argv]) == 2
    assert message in capsys.readouterr().err


def test_optimizer_specs_pick_any_gradkit_optimizer_with_keyword_arguments(tmp_path, capsys):
    specs = ["Nesterov=sgd(momentum=0.9, nesterov=True, learning_rate=0.01)", "adamw(weight_decay=0.0)"]
    argv = ["race", "-l", "narrow_valley", "--steps", "100", "--lrs", "1e-3:1e-1:4", "--no-plots"]
    assert cli.main([*argv, *functools.reduce(operator.iadd, (["-o", s] for s in specs), [])]) == 0
    out = capsys.readouterr().out
    assert "Nesterov" in out and "adamw(weight_decay=0.0)" in out
    assert re.search(r"Nesterov\s*│\s*0\.01\s", out) or re.search(r"Nesterov\s+0\.01\s", out)


def test_the_console_script_runs_the_race():
    exe = Path(sys.executable).with_name("gradkit")
    if not exe.exists():
        pytest.skip(f"the gradkit console script is not installed next to {sys.executable}")
    done = subprocess.run(
        [str(exe), "race", "-l", "saddle", "--steps", "50", "--no-plots"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert all(label in done.stdout for label in COLOURS)


def test_page_paths_round_trip_to_a_thousandth_of_the_box():
    land = landscapes.beale()
    r = race(land, {"Adam": optimizer("adam")}, [0.05, 0.5], steps=300)
    bounds = np.asarray(land.bounds, float)
    for j in range(2):
        code = page.encode_path(r.paths[0, j], bounds)
        back = page.decode_path(code, bounds)
        width = bounds[:, 1] - bounds[:, 0]
        assert (np.abs(back - r.paths[0, j]) <= width / page.QUANTUM / 2 + 1e-9).all()


def test_page_is_self_contained(outputs):
    html = (outputs / "race.html").read_text()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", html)
    data = json.loads(re.search(r"const DATA = (\{.*?\});\n", html, re.S).group(1))
    assert [d["name"] for d in data["landscapes"]] == ["saddle", "narrow_valley"]
    racer = data["landscapes"][0]["racers"][0]
    assert len(racer["paths"]) == len(racer["lrs"]) == 8  # the whole lr grid is embedded
    assert len(racer["paths"][0]) == 2 * 301  # every step of every path


def _chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
        ]
        return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does it)")
def test_page_in_headless_chromium_slider_redraws_paths_without_console_errors(outputs):
    url = (outputs / "race.html").resolve().as_uri()
    done = _chromium("--dump-dom", url + "#selftest")
    match = re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout, re.S)
    assert match and match.group(1), f"the page's self-test did not run:\n{done.stderr[-2000:]}"
    report = json.loads(match.group(1))
    assert report["errors"] == []
    assert report["changed"], "moving the first slider did not change the drawn paths"
    assert report["counter_before"] != report["counter_after"]
    assert len({d["hash"] for d in report["landscapes"]}) == 2, "each landscape draws a different picture"
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console

    # Opened plainly, the page plays: after 2.5 s of (virtual) time the step counter has moved on.
    done = _chromium("--virtual-time-budget=2500", "--dump-dom", url)
    step = re.search(r'id="stepText"[^>]*>(\d+) / 300<', done.stdout)
    assert step and int(step.group(1)) > 0, done.stdout[-1500:]
    assert [line for line in done.stderr.splitlines() if "CONSOLE" in line] == []

    # At the last step every run says how it ended, never "running"; the step counter is on one line.
    done = _chromium("--dump-dom", url + "#step=end")
    status = re.findall(r'id="counter\d+">([^<]*)<', done.stdout)
    assert len(status) == 4, done.stdout[-1500:]
    assert all(re.fullmatch(r"(converged|diverged) at step \d+|not converged in 300 steps", s) for s in status), status
    assert re.search(r'id="stepText"[^>]*>300 / 300<', done.stdout)

    shot = outputs / "race_page.png"
    done = _chromium("--window-size=1100,660", f"--screenshot={shot}", url + "#step=end")
    assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]
    img = pixels(shot)
    for name, rgb in COLOURS.items():
        assert (np.abs(img - np.array(rgb)).max(axis=-1) <= 10).sum() > 30, name
    print(f"screenshot of the race page: {shot}")
