"""Type checkers see gradkit's types: pyright passes on the package and on a user's script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pyright_accepts_the_package_and_a_users_script():
    exe = Path(sys.executable).with_name("pyright")
    found = str(exe) if exe.exists() else shutil.which("pyright")
    if found is None:
        pytest.skip("pyright is not installed (`pip install -e '.[test]'` installs it)")
    done = subprocess.run(
        [found, "--pythonpath", sys.executable, "--outputjson"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert '"filesAnalyzed"' in done.stdout
