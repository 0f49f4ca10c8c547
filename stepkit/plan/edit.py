"""A layout as an edit of the user's pipeline file: a unified diff, or the file rewritten.

Only the values change, in place (the positions the loader recorded), so comments, order and
flow-style mappings stay as the user wrote them.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from stepkit.errors import StepkitError
from stepkit.plan.model import Layout

_VALUE = re.compile(r"[^,}\]\s#]+")


def apply(p: Any, layout: Layout) -> Any:
    """The pipeline with `layout`'s batching and task sizes (a copy; the spec is frozen)."""
    tasks = dict(p.compute.tasks)
    for key, cpu, mem in layout.tasks:
        tasks[key] = tasks[key].model_copy(update={"cpu": cpu, "memory_gb": mem})
    batching = p.batching.model_copy(update={"batches": layout.batches, "max_concurrency": layout.max_concurrency})
    return p.model_copy(update={"batching": batching, "compute": p.compute.model_copy(update={"tasks": tasks})})


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def changes(p: Any, layout: Layout) -> list[tuple[tuple[Any, ...], str]]:
    """(location in the file, new value) for every value the layout changes."""
    out = []
    if layout.batches != p.batching.batches:
        out.append((("batching", "batches"), str(layout.batches)))
    if layout.max_concurrency != p.batching.max_concurrency:
        out.append((("batching", "max_concurrency"), str(layout.max_concurrency)))
    for key, cpu, mem in layout.tasks:
        t = p.compute.tasks[key]
        if cpu != t.cpu:
            out.append((("compute", "tasks", key, "cpu"), _number(cpu)))
        if mem != t.memory_gb:
            out.append((("compute", "tasks", key, "memory_gb"), _number(mem)))
    return out


def edited(path: Path, positions: Any, p: Any, layout: Layout) -> str:
    lines = path.read_text().splitlines(keepends=True)
    for loc, value in sorted(changes(p, layout), key=lambda c: positions.find(c[0]), reverse=True):
        if loc not in positions:
            raise StepkitError(f"{path}: {'.'.join(map(str, loc))} is not written in the file (a default): add "
                               f"`{loc[-1]}: {value}` under {'.'.join(map(str, loc[:-1]))} by hand")
        line, col = positions[loc]
        text = lines[line - 1]
        m = _VALUE.match(text, col - 1)
        if not m:
            raise StepkitError(f"{path}:{line}:{col}: cannot find the value of {'.'.join(map(str, loc))}")
        lines[line - 1] = text[: m.start()] + value + text[m.end():]
    return "".join(lines)


def diff(path: Path, positions: Any, p: Any, layout: Layout) -> str:
    old = path.read_text()
    new = edited(path, positions, p, layout)
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))
