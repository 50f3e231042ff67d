"""griffe extension: docstrings' ``>>>`` examples become fenced Python blocks in the API reference.

gradkit's docstrings end with a tiny ``>>>`` example (STYLE.md) rather than a Google or NumPy section;
rendered as Markdown, ``>>>`` would read as nested block quotes. A line ending in the reST literal
marker ``::`` ends in one colon; the indented block after it is Markdown code already.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence(text: str) -> str:
    out: list[str] = []
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        if lines[k].lstrip().startswith(">>>"):
            indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
            block = []
            while k < len(lines) and lines[k].strip() and lines[k].startswith(indent):
                block.append(lines[k][len(indent) :])
                k += 1
            out += [f"{indent}```python", *(indent + b for b in block), f"{indent}```"]
        else:
            # A reST literal-block marker ("formula::") reads as a colon; the indented block stays code.
            out.append(lines[k][:-1] if lines[k].endswith("::") else lines[k])
            k += 1
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence(obj.docstring.value)
