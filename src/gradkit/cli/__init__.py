"""The ``gradkit`` command: one subcommand per module in this package.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only
when it is used, so ``gradkit --help`` stays fast and the plotting/progress extras load on demand.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "train": "train a classifier on real data with the lecture's full recipe",
    "race": "race optimizers across 2-D loss landscapes (pictures and an interactive page)",
    "schedules": "draw the learning-rate schedules on one figure",
    "bench": "time optimizer steps (tree and packed) against optax, torch and the memory roofline",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradkit", description="gradkit: CS231n lecture 3 as a JAX library.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    argv = sys.argv[1:] if argv is None else argv
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported (its arguments are needed for its --help too).
        if name in argv[:1]:
            importlib.import_module(f"gradkit.cli.{name}").add_arguments(p)
    args = parser.parse_args(argv)
    return importlib.import_module(f"gradkit.cli.{args.command}").run(args)


if __name__ == "__main__":
    sys.exit(main())
