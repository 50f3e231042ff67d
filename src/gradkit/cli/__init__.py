"""The ``gradkit`` command: one subcommand per module in this package.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only
when it is used, so ``gradkit --help`` stays fast and the plotting/progress extras load on demand.

``main`` is the one error boundary: a bad value is one line naming the flag (exit 2), a missing
optional dependency one line with the ``pip install`` to run (exit 3), any other failure one line
(exit 1; ``GRADKIT_TRACEBACK=1`` shows the traceback), Ctrl-C one line (exit 130). No traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gradkit.cli._output import (
    EXIT_FAILED,
    EXIT_MISSING,
    EXIT_USAGE,
    MissingDependency,
    exit_on_interrupt,
    interrupted,
)

SUBCOMMANDS = {
    "train": "train a classifier on real data with the lecture's full recipe",
    "race": "race optimizers across 2-D loss landscapes (pictures and an interactive page)",
    "schedules": "draw the learning-rate schedules on one figure",
    "bench": "time optimizer steps (tree and packed) against optax, torch and the memory roofline",
}


def version() -> str:
    """The installed distribution's version, else the package's own ``__version__`` (a source checkout)."""
    from importlib import metadata

    try:
        return metadata.version("gradkit")
    except metadata.PackageNotFoundError:
        import gradkit

        return gradkit.__version__


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradkit", description="gradkit: CS231n lecture 3 as a JAX library.")
    parser.add_argument("--version", action="version", version=f"gradkit {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported (its arguments are needed for its --help too).
        if name in argv[:1]:
            importlib.import_module(f"gradkit.cli.{name}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        _parser(argv).print_help()
        return 0
    command = f"gradkit {argv[0]}" if argv[0] in SUBCOMMANDS else "gradkit"
    with exit_on_interrupt():
        try:
            args = _parser(argv).parse_args(argv)  # argparse's own errors exit 2 with its usage line
            return importlib.import_module(f"gradkit.cli.{args.command}").run(args)
        except KeyboardInterrupt:
            interrupted()
            raise
        except MissingDependency as e:
            print(f"{command}: {e}", file=sys.stderr)
            return EXIT_MISSING
        except (ValueError, TypeError) as e:
            if os.environ.get("GRADKIT_TRACEBACK"):
                raise
            print(f"{command}: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except Exception as e:
            if os.environ.get("GRADKIT_TRACEBACK"):
                raise
            print(f"{command}: failed: {type(e).__name__}: {e} (GRADKIT_TRACEBACK=1 shows where)", file=sys.stderr)
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
