"""The compiled state machine as a Mermaid flowchart (`stepkit graph`)."""
from __future__ import annotations

import re
from typing import Any

_SHAPES = {"Task": ("[", "]"), "Map": ("[[", "]]"), "Pass": ("([", "])"), "Wait": ("{{", "}}"),
           "Fail": ("((", "))"), "Succeed": ("((", "))"), "Choice": ("{", "}"), "Parallel": ("[[", "]]")}


def _id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(name: str, state: dict[str, Any]) -> str:
    kind = state["Type"]
    detail = ""
    resource = state.get("Resource", "")
    if "athena" in resource:
        detail = "Athena"
    elif "ecs" in resource:
        detail = "Fargate"
    elif "lambda" in resource:
        detail = "Lambda"
    elif kind == "Map":
        mode = state["ItemProcessor"]["ProcessorConfig"]["Mode"].lower()
        detail = f"{mode} map, {state.get('MaxConcurrency', '?')} at once"
    elif kind == "Wait":
        detail = f"{state.get('Seconds', '?')} s"
    text = f"{name}<br/><small>{detail}</small>" if detail else name
    return text.replace('"', "'")


def _nodes(states: dict[str, Any], indent: str) -> list[str]:
    """One node per state; a Map's own states go in a subgraph beside it, run once per item."""
    out = []
    for name, state in states.items():
        left, right = _SHAPES.get(state["Type"], ("[", "]"))
        out.append(f'{indent}{_id(name)}{left}"{_label(name, state)}"{right}')
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            inner = processor["States"]
            out.append(f"{indent}subgraph {_id(name)}_each [{name} - each item]")
            out += _nodes(inner, indent + "  ")
            out += [f"{indent}  {_id(n)} --> {_id(s['Next'])}" for n, s in inner.items() if "Next" in s]
            out.append(f"{indent}end")
            out.append(f"{indent}{_id(name)} -.-> {_id(processor['StartAt'])}")
    return out


def mermaid(definition: dict[str, Any]) -> str:
    lines = ["flowchart TD"]
    states = definition["States"]
    lines.append(f"  start((start)) --> {_id(definition['StartAt'])}")
    lines += _nodes(states, "  ")
    for name, state in states.items():
        if "Next" in state:
            lines.append(f"  {_id(name)} --> {_id(state['Next'])}")
        if state.get("End"):
            lines.append(f"  {_id(name)} --> done((end))")
    # Failure edges last and dotted: they would crowd the main path otherwise.
    catch_targets = sorted({c["Next"] for s in states.values() for c in s.get("Catch", [])})
    for target in catch_targets:
        sources = [n for n, s in states.items() if any(c["Next"] == target for c in s.get("Catch", []))]
        if len(sources) > 3:
            lines.append(f"  {_id(target)}_any[/any task fails/] -.-> {_id(target)}")
        else:
            lines.extend(f"  {_id(n)} -.->|error| {_id(target)}" for n in sources)
    return "\n".join(lines) + "\n"
