"""The README as a newcomer meets it: every ``python`` block runs as written, on its own, in a fresh namespace
(and so do the blocks of the guides listed in ``GUIDES``).

Blocks tagged otherwise (``sh``, or untagged for the ``make`` commands) are shell, not run here; there are few
of them. Links into the repository must point at files that exist, and images are not used at all, since
relative image links break on a package index page (the pictures live in the docs pages instead).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```$", re.S | re.M)
BLOCKS = [(m.group(1), m.group(2), README[: m.start()].count("\n") + 1) for m in FENCE.finditer(README)]
PYTHON = [(code, line) for tag, code, line in BLOCKS[1:] if tag == "python"]  # block 0: the test below


def run_block(code: str, line: int, monkeypatch, tmp_path) -> str:
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"line {line}", "exec"), {"__name__": "__readme__"})
    return out.getvalue()


@pytest.mark.parametrize(("code", "line"), PYTHON, ids=[f"line{line}" for _, line in PYTHON])
def test_readme_python_block_runs_as_written(code, line, monkeypatch, tmp_path):
    run_block(code, line, monkeypatch, tmp_path)


# Guides whose python blocks are held to the same rule (add a page here once its blocks run as written).
GUIDES = ("losses.md", "race.md", "schedules.md", "training.md")
GUIDE_BLOCKS = [
    (page, m.group(2), text[: m.start()].count("\n") + 1)
    for page in GUIDES
    for text in [(ROOT / "docs" / page).read_text(encoding="utf-8")]
    for m in FENCE.finditer(text)
    if m.group(1) == "python"
]


@pytest.mark.parametrize(("page", "code", "line"), GUIDE_BLOCKS, ids=[f"{p}:{n}" for p, _, n in GUIDE_BLOCKS])
def test_guide_python_block_runs_as_written(page, code, line, monkeypatch, tmp_path):
    run_block(code, line, monkeypatch, tmp_path)


def test_readme_opens_with_a_short_runnable_example_that_trains(monkeypatch, tmp_path):
    tag, code, line = BLOCKS[0]
    assert tag == "python"
    assert len(code.strip().splitlines()) <= 25
    printed = run_block(code, line, monkeypatch, tmp_path)
    loss = float(re.search(r"loss after 200 steps: ([\d.]+)", printed).group(1))
    assert loss < 0.05, printed  # the comment promises about 0.01


def test_readme_shell_blocks_are_few_and_tagged_or_the_make_commands():
    others = [(tag, code) for tag, code, _ in BLOCKS if tag != "python"]
    assert len(others) <= 3
    for tag, code in others:
        assert tag == "sh" or code.startswith("make demo"), (tag, code)
    assert "make demo    # creates .venv, installs gradkit, runs the main job\n" in README
    assert "make test    # creates .venv, installs the test extras, runs the whole suite\n" in README


def test_readme_links_point_at_files_that_exist_and_it_has_no_relative_images():
    assert not re.search(r"!\[[^\]]*\]\((?!https://)", README), "relative image links break on a package index"
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_readme_names_optimizer_arguments_as_the_functions_do():
    import inspect

    import gradkit as gk

    for name in ("sgd", "adagrad", "rmsprop", "adam", "adamw"):
        first = next(iter(inspect.signature(getattr(gk, name)).parameters))
        for call in re.findall(rf"`{name}\((\w+)", README):
            assert call == first, f"README writes {name}({call}, ...) but the argument is {first}"
