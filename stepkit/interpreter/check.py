"""What the interpreter refuses before running, one line per problem, each naming the state.

It runs the JSONPath query language only (a JSONata definition or state is refused), the eight state
types, and the fields below; a field it does not know (variables `Assign`, JSONata's `Arguments`/`Output`,
`Credentials`, ...) is refused rather than silently ignored. Every Task, ItemReader and ResultWriter
Resource needs an adapter.
"""
from __future__ import annotations

from typing import Any, Iterator

_COMMON = {"Type", "Comment", "QueryLanguage"}
_FLOW = {"Next", "End"}
_IO = {"InputPath", "OutputPath"}
_RESULT = {"ResultPath", "ResultSelector"}
_ERRORS = {"Retry", "Catch"}
FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _FLOW | _IO | {"Parameters", "Result", "ResultPath"},
    "Task": _COMMON | _FLOW | _IO | _RESULT | _ERRORS | {
        "Resource", "Parameters", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath"},
    "Choice": _COMMON | _IO | {"Choices", "Default"},
    "Wait": _COMMON | _FLOW | _IO | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": _COMMON | _IO,
    "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON | _FLOW | _IO | _RESULT | _ERRORS | {"Branches", "Parameters"},
    "Map": _COMMON | _FLOW | _IO | _RESULT | _ERRORS | {
        "Parameters", "ItemSelector", "ItemsPath", "ItemProcessor", "Iterator", "MaxConcurrency",
        "MaxConcurrencyPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
        "ToleratedFailureCount", "ToleratedFailureCountPath", "ResultWriter", "ItemReader", "ItemBatcher", "Label"},
}
_WHY = {
    "Assign": "workflow variables (Assign) are not supported by the local interpreter",
    "Arguments": "'Arguments' belongs to JSONata states, which the local interpreter does not run",
    "Output": "'Output' belongs to JSONata states, which the local interpreter does not run",
    "Items": "'Items' belongs to JSONata states, which the local interpreter does not run",
    "Credentials": "cross-account 'Credentials' are not supported by the local interpreter",
}
_TOP = {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}


def walk(machine: dict, prefix: tuple = ()) -> Iterator[tuple[tuple, str, dict]]:
    """(path, name, state) of every state, nested Parallel branches and Map processors included."""
    for name, state in (machine.get("States") or {}).items():
        path = prefix + (name,)
        yield path, name, state
        if not isinstance(state, dict):
            continue
        for i, branch in enumerate(state.get("Branches") or []):
            if isinstance(branch, dict):
                yield from walk(branch, path + (str(i),))
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if isinstance(processor, dict):
            yield from walk(processor, path)


def problems(definition: Any, adapters: dict | None = None) -> list[str]:
    if not isinstance(definition, dict) or not isinstance(definition.get("States"), dict):
        return ["the definition is not a state machine: it needs 'StartAt' and 'States'"]
    out: list[str] = []
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        out.append(f"the state machine: QueryLanguage {definition['QueryLanguage']!r} is not supported "
                   "by the local interpreter (JSONPath only)")
    out += [f"the state machine: unknown field {k!r}" for k in definition if k not in _TOP]
    out += _machine(definition, (), adapters)
    return out


def _machine(machine: dict, prefix: tuple, adapters: dict | None) -> list[str]:
    out: list[str] = []
    states = machine.get("States") or {}
    where = "/".join(prefix) or "the state machine"
    if machine.get("StartAt") not in states:
        out.append(f"{where}: StartAt {machine.get('StartAt')!r} names no state")
    for name, state in states.items():
        path = prefix + (name,)
        label = "/".join(path)
        if not isinstance(state, dict):
            out.append(f"state {label}: not an object")
            continue
        kind = state.get("Type")
        if kind not in FIELDS:
            out.append(f"state {label}: state type {kind!r} is not supported by the local interpreter")
            continue
        if state.get("QueryLanguage", "JSONPath") != "JSONPath":
            out.append(f"state {label}: QueryLanguage {state['QueryLanguage']!r} is not supported by the "
                       "local interpreter (JSONPath only)")
        for field in state:
            if field not in FIELDS[kind]:
                out.append(f"state {label}: {_WHY.get(field, f'unknown field {field!r} for a {kind} state')}")
        targets = [state.get("Next"), state.get("Default")]
        targets += [c.get("Next") for c in state.get("Catch") or [] if isinstance(c, dict)]
        targets += [c.get("Next") for c in state.get("Choices") or [] if isinstance(c, dict)]
        for target in targets:
            if target is not None and target not in states:
                out.append(f"state {label}: Next {target!r} names no state")
        if kind not in ("Choice", "Succeed", "Fail") and not state.get("End") and "Next" not in state:
            out.append(f"state {label}: needs 'Next' or 'End: true'")
        if kind == "Task":
            out += _resource(label, state.get("Resource"), adapters)
        if kind == "Parallel":
            for i, branch in enumerate(state.get("Branches") or []):
                out += _machine(branch, path + (str(i),), adapters)
        if kind == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if not isinstance(processor, dict):
                out.append(f"state {label}: a Map state needs an ItemProcessor")
            else:
                mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
                if mode not in ("INLINE", "DISTRIBUTED"):
                    out.append(f"state {label}: ProcessorConfig Mode {mode!r} is not INLINE or DISTRIBUTED")
                out += _machine(processor, path, adapters)
            for field in ("ItemReader", "ResultWriter"):
                if isinstance(state.get(field), dict):
                    out += _resource(f"{label} ({field})", state[field].get("Resource"), adapters)
    return out


def _resource(label: str, resource: Any, adapters: dict | None) -> list[str]:
    if not isinstance(resource, str):
        return [f"state {label}: needs a 'Resource'"]
    if adapters is not None and resource not in adapters:
        return [f"state {label}: no local adapter for resource {resource}"]
    return []
