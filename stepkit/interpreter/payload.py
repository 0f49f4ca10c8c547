"""Input and output processing of one state, in AWS's order:
InputPath -> Parameters (or ItemSelector) -> the work -> ResultSelector -> ResultPath -> OutputPath.

- InputPath/OutputPath: `null` gives `{}`, a path gives what it selects; a path that selects nothing is
  `States.Runtime` (the execution fails; no Catch handles it).
- Parameters/ResultSelector/ItemSelector: a template copied as is, except keys ending in `.$`, whose string
  value is a path into the state's input (`$...`), into the context object (`$$...`), or an intrinsic
  function. A path there that matches nothing is `States.Runtime`, as AWS reports it.
- ResultPath: `null` keeps the input and drops the result, `$` replaces the input, a reference path writes
  the result into a copy of the input, creating objects on the way. When the input cannot hold it (a step
  is not an object), `States.ResultPathMatchFailure`.
"""
from __future__ import annotations

import json
from typing import Any

from . import errors, intrinsics
from .jsonpath import PathNotFound, PathSyntaxError, put, query


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # one encoder: json.dumps re-creates it per call


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def select(data: Any, path: str | None, field: str, context: dict | None = None) -> Any:
    """InputPath / OutputPath / ItemsPath and the like."""
    if path is None:
        return {}
    if path == "$":
        return data
    try:
        if path.startswith("$$"):
            return query(context or {}, path[1:])
        return query(data, path)
    except PathNotFound:
        raise errors.StatesError(errors.RUNTIME, f"Invalid path '{path}' for {field}: no value is there in "
                                 f"the input '{_short(data)}'") from None


def apply_template(template: Any, data: Any, context: dict, field: str = "Parameters") -> Any:
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                out[key[:-2]] = _dynamic(key, value, data, context)
            else:
                out[key] = apply_template(value, data, context, field)
        return out
    if isinstance(template, list):
        return [apply_template(v, data, context, field) for v in template]
    return template


def _dynamic(key: str, value: str, data: Any, context: dict) -> Any:
    try:
        if value.startswith("$$"):
            return query(context, value[1:])
        if value.startswith("$"):
            return query(data, value)
        return intrinsics.evaluate(value, data, context)
    except PathNotFound:
        source = "the context object" if value.startswith("$$") else f"the input '{_short(data)}'"
        raise errors.StatesError(errors.RUNTIME, f"The JSONPath '{value}' specified for the field '{key}' "
                                 f"could not be found in {source}") from None
    except errors.StatesError as e:
        if e.error == errors.RUNTIME:
            raise errors.StatesError(errors.RUNTIME, f"{e.cause} (field '{key}')") from None
        raise


def result_path(state_input: Any, result: Any, path: str | None) -> Any:
    if path is None:
        return state_input
    if path == "$":
        return result
    try:
        return put(state_input, path, result)
    except (PathNotFound, PathSyntaxError):
        raise errors.StatesError(errors.RESULT_PATH_MATCH_FAILURE,
                                 f"Unable to apply ResultPath '{path}' to input '{_short(state_input)}'") from None


def _short(value: Any, limit: int = 200) -> str:
    text = dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."
