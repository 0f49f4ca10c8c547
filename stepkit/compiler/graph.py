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


def mermaid(definition: dict[str, Any]) -> str:
    lines = ["flowchart TD"]
    states = definition["States"]
    lines.append(f"  start((start)) --> {_id(definition['StartAt'])}")
    for name, state in states.items():
        left, right = _SHAPES.get(state["Type"], ("[", "]"))
        lines.append(f'  {_id(name)}{left}"{_label(name, state)}"{right}')
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
