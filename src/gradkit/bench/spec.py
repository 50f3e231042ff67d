"""An optimizer from a spec string such as ``"adamw(learning_rate=1e-3, b1=0.9)"``, without ``eval``.

The spec is a name from ``gk.optimizers.BY_NAME``, optionally called with literal arguments (numbers,
strings, booleans, None, tuples). Anything else (attribute access, other calls, names) is refused.
"""

from __future__ import annotations

import ast
from typing import Any

from gradkit.core import GradientTransformation
from gradkit.optimizers import BY_NAME


def parse(spec: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``"sgd(0.1, momentum=0.9)"`` -> ``("sgd", [0.1], {"momentum": 0.9})``; a ValueError naming the spec otherwise."""

    def bad(why: str) -> ValueError:
        return ValueError(
            f"--optimizer {spec!r}: {why}. Write NAME or NAME(kw=literal, ...) with NAME one of {sorted(BY_NAME)}, "
            'e.g. "adamw(learning_rate=1e-3, weight_decay=0.01)".'
        )

    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as e:
        raise bad(f"not a Python call expression ({e.msg})") from None
    if isinstance(tree, ast.Name):
        name, args, keywords = tree.id, [], []
    elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        name, args, keywords = tree.func.id, tree.args, tree.keywords
    else:
        raise bad("expected a name or a call of a name")
    if name not in BY_NAME:
        raise bad(f"unknown optimizer {name!r}")

    def literal(node: ast.expr, what: str) -> Any:
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise bad(f"{what} is not a literal: {ast.unparse(node)!r}") from None

    if any(k.arg is None for k in keywords):
        raise bad("**kwargs is not allowed")
    positional = [literal(a, f"argument {i + 1}") for i, a in enumerate(args)]
    return name, positional, {k.arg: literal(k.value, k.arg) for k in keywords if k.arg is not None}  # all named


def optimizer(spec: str) -> GradientTransformation:
    """The gradkit optimizer a spec names, built with its arguments; errors name the spec."""
    name, args, kwargs = parse(spec)
    try:
        return BY_NAME[name](*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--optimizer {spec!r}: {e}") from None
