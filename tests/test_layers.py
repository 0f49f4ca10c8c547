"""Layers point one way: the packages of stepkit import each other without a cycle, counting imports
inside functions too (an import moved into a function to dodge a cycle is still the cycle), and the
lower layers import nothing above them."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stepkit"


def _unit(module: str) -> str | None:
    """`stepkit.compiler.build` -> `compiler`; `stepkit.errors` -> `errors`; None outside stepkit."""
    parts = module.split(".")
    if parts[0] == "workers":  # the repository's workers/ is stepkit.workers in the wheel
        return "workers"
    if parts[0] != "stepkit":
        return None
    return parts[1] if len(parts) > 1 else "stepkit"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        out[".".join(rel.parts).removesuffix(".__init__")] = path
    for path in (ROOT / "workers").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        out["stepkit." + ".".join(rel.parts).removesuffix(".__init__")] = path
    return out


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in _modules().items():
        src = _unit(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                dst = _unit(target)
                if dst and dst != src and dst != "stepkit":
                    edges.setdefault(src, set()).add(dst)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_packages_import_each_other_without_a_cycle():
    assert _cycle(graph()) is None, " -> ".join(_cycle(graph()) or [])


def test_the_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


# package -> what it may import of stepkit (the rest is above it)
LOWER = {
    "errors": set(),
    "spec": {"errors"},
    "interpreter": set(),  # pure: runs any definition with the adapters it is given
    "ir": {"errors", "spec", "cache"},
    "steps": {"errors", "spec", "ir"},
}


@pytest.mark.parametrize("package, allowed", sorted(LOWER.items()))
def test_lower_layers_import_nothing_above_them(package, allowed):
    assert graph().get(package, set()) <= allowed, sorted(graph().get(package, set()) - allowed)


def test_aws_operations_do_not_reach_into_local_runs():
    assert not {"local", "interpreter"} & graph().get("aws", set())
