"""The compiled state machine as a Mermaid flowchart (`stepkit graph`).

Every state is a node (node ids are state names with anything but letters, digits and `_` as `_`);
a Parallel's branches and a Map's item states are subgraphs beside it; a Choice has one labelled
edge per rule. Failure edges (Catch) are dotted and drawn last.
"""
from __future__ import annotations

import re
from typing import Any

_SHAPES = {"Task": ("[", "]"), "Map": ("[[", "]]"), "Pass": ("([", "])"), "Wait": ("{{", "}}"),
           "Fail": ("((", "))"), "Succeed": ("((", "))"), "Choice": ("{", "}"), "Parallel": ("[[", "]]")}


def node_id(name: str) -> str:
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
    elif "aws-sdk" in resource:
        detail = resource.split("aws-sdk:", 1)[1]
    elif kind == "Map":
        mode = state["ItemProcessor"]["ProcessorConfig"]["Mode"].lower()
        detail = f"{mode} map, {state.get('MaxConcurrency', '?')} at once"
    elif kind == "Wait":
        detail = f"{state.get('Seconds', '?')} s"
    elif kind == "Parallel":
        detail = f"{len(state.get('Branches', []))} branches at once"
    text = f"{name}<br/><small>{detail}</small>" if detail else name
    return text.replace('"', "'")


def _rule_label(rule: dict[str, Any]) -> str:
    if "Not" in rule:
        return "not " + _rule_label(rule["Not"])
    if "Or" in rule or "And" in rule:
        return ("any" if "Or" in rule else "all") + " of ..."
    variable = rule.get("Variable", "")
    test = next((k for k in rule if k not in ("Variable", "Next")), "")
    return f"{variable} {test}".strip().replace('"', "'").replace("|", "/")


def _scope(states: dict[str, Any], indent: str, end: str, lines: list[str], failures: list[tuple[str, str]]) -> None:
    for name, state in states.items():
        left, right = _SHAPES.get(state["Type"], ("[", "]"))
        lines.append(f'{indent}{node_id(name)}{left}"{_label(name, state)}"{right}')
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            inner = node_id(name) + "_each"
            lines.append(f"{indent}subgraph {inner} [{name} - each item]")
            _scope(processor["States"], indent + "  ", inner + "_end", lines, failures)
            lines.append(f"{indent}end")
            lines.append(f"{indent}{node_id(name)} -.-> {node_id(processor['StartAt'])}")
        for i, branch in enumerate(state.get("Branches", [])):
            sub = f"{node_id(name)}_branch{i + 1}"
            lines.append(f"{indent}subgraph {sub} [{name} - branch {i + 1}]")
            _scope(branch["States"], indent + "  ", f"{sub}_end", lines, failures)
            lines.append(f"{indent}end")
            lines.append(f"{indent}{node_id(name)} --> {node_id(branch['StartAt'])}")
        if "Next" in state:
            lines.append(f"{indent}{node_id(name)} --> {node_id(state['Next'])}")
        if state.get("End"):
            lines.append(f"{indent}{node_id(name)} --> {end}((end))")
        for rule in state.get("Choices", []):
            lines.append(f'{indent}{node_id(name)} -->|"{_rule_label(rule)}"| {node_id(rule["Next"])}')
        if "Default" in state:
            lines.append(f'{indent}{node_id(name)} -->|"otherwise"| {node_id(state["Default"])}')
        failures += [(name, c["Next"]) for c in state.get("Catch", [])]


def mermaid(definition: dict[str, Any]) -> str:
    lines = ["flowchart TD", f"  start((start)) --> {node_id(definition['StartAt'])}"]
    failures: list[tuple[str, str]] = []
    _scope(definition["States"], "  ", "done", lines, failures)
    # Failure edges last and dotted: they would crowd the main path otherwise.
    for target in sorted({t for _, t in failures}):
        sources = [s for s, t in failures if t == target]
        if len(sources) > 3:
            lines.append(f"  {node_id(target)}_any[/any task fails/] -.-> {node_id(target)}")
        else:
            lines.extend(f"  {node_id(s)} -.->|error| {node_id(target)}" for s in sources)
    return "\n".join(lines) + "\n"
