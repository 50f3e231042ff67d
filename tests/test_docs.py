"""The documentation site builds with warnings as errors, and every public module has an API page."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hook():
    spec = importlib.util.spec_from_file_location("api_pages", ROOT / "docs" / "_build" / "api_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_module_gets_an_api_page():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pages = _hook().modules()
    on_disk = {p.stem for p in (ROOT / "src" / "gradkit").glob("[!_]*.py")}
    assert on_disk <= set(pages), on_disk - set(pages)
    assert "gradkit.race.engine" in pages["race"]
    assert "cli" not in pages


@pytest.mark.slow
def test_docs_build_strictly(tmp_path):
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed (pip install -e '.[docs]')")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "api/optimizers/index.html", "race/index.html", "benchmarks/index.html"):
        assert (tmp_path / "site" / page).exists(), page
    optimizers = (tmp_path / "site" / "api" / "optimizers" / "index.html").read_text()
    assert "adamw" in optimizers
    assert "<blockquote>" not in optimizers, "a docstring's >>> example rendered as a block quote"
