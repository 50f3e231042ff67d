"""The maintainer habits CI relies on: lint catches what it should, one version, a valid forge workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import gradkit

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (`pip install -e '.[test]'` installs it)")
    return found


def test_lint_rules_flag_a_planted_unused_import():
    planted = "import os\n\n\ndef f():\n    return 1\n"
    done = subprocess.run(
        [_tool("ruff"), "check", "--config", str(ROOT / "pyproject.toml"), "--stdin-filename", "src/gradkit/x.py", "-"],
        input=planted,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "F401" in done.stdout


def test_the_version_is_written_once_in_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert gradkit.__version__ == declared
    init = (ROOT / "src/gradkit/__init__.py").read_text()
    assert declared not in init, "the package root repeats the version: read it from the metadata instead"


def test_forge_workflow_is_a_valid_github_workflow_running_the_ci_targets():
    workflow = ROOT / ".github/workflows/ci.yml"
    done = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text, ci = workflow.read_text(), (ROOT / ".ci/run").read_text()
    for target in ("make lint", "make wheel-check", "make docs", "make test", "make test-floors"):
        assert target in ci and target in text, f"{target} must run both in .ci/run and in the forge workflow"


def test_the_package_never_imports_the_reference_libraries():
    import re

    pattern = re.compile(r"^\s*(import|from)\s+(optax|chex|torch)\b", re.M)
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "src/gradkit").rglob("*.py") if pattern.search(p.read_text())
    ]
    assert offenders == [], f"optax, chex and torch are references for tests and benchmarks only: {offenders}"
