"""Smoke test of an installed gradkit wheel, run from outside the source tree by .ci/wheel-check.

It fails when the wheel lacks a file users need: the race page's template, the type marker, the CLI.
"""

import subprocess
import sys
from importlib import resources
from pathlib import Path

import jax.numpy as jnp

import gradkit as gk

source = Path(gk.__file__).resolve()
assert "site-packages" in source.parts, f"gradkit was imported from {source}, not from the installed wheel"

params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
tx = gk.adamw(1e-2)
updates, _ = tx.update(params, tx.init(params), params)
new = gk.apply_updates(params, updates)
assert float(new["w"][0, 0]) < 1.0, "one AdamW step did not move the params"

for package, name in [("gradkit.race", "page.html"), ("gradkit", "py.typed")]:
    assert resources.files(package).joinpath(name).is_file(), f"the wheel lacks {package}/{name}"

exe = Path(sys.executable).with_name("gradkit")
done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
assert done.returncode == 0 and "train" in done.stdout, f"gradkit --help failed: {done.stderr}"
print(f"wheel smoke test passed: gradkit {gk.__version__} from {source.parent}")
