"""``gradkit bench``: optimizer steps against optax and torch as a fraction of the measured roofline.

``--suite`` (the default) runs the built-in cases, ``--quick`` the same at tiny sizes, ``--optimizer SPEC``
your optimizer on your shapes. See ``gradkit.bench``.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from gradkit.bench import run

    run.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # On a GPU, JAX would otherwise take 75% of the memory up front: leave room for the torch peers. Only
    # effective before the first jax computation, which the bench starts itself; an explicit setting wins.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from gradkit.bench import run as bench

    return bench.run(args)
