"""Choice rules: comparison operators, And/Or/Not, the type tests, StringMatches.

AWS's rules: a comparison whose value has another type than the operator's is false (StringEquals on a
number does not match); a `Variable` path that selects nothing is `States.Runtime`, except under
`IsPresent`, which is exactly the test for that. `*Path` operators compare against the value at a path
of the input. Timestamps are RFC 3339 strings (`2016-03-14T01:59:00Z`). In StringMatches, `*` matches any
run of characters and `\\*` / `\\\\` stand for a literal star and backslash.
"""
from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from . import errors
from .jsonpath import PathNotFound, query

_OPS = ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "Equals":
        return a == b
    if op == "LessThan":
        return a < b
    if op == "GreaterThan":
        return a > b
    if op == "LessThanEquals":
        return a <= b
    return a >= b


@lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _variable(rule: dict, data: Any) -> Any:
    path = rule["Variable"]
    try:
        return query(data, path)
    except PathNotFound:
        raise errors.StatesError(errors.RUNTIME, f"Invalid path '{path}': the choice state's condition path "
                                 "references an invalid value.") from None


def evaluate(rule: dict, data: Any) -> bool:
    if "And" in rule:
        return all(evaluate(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(evaluate(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not evaluate(rule["Not"], data)
    if "IsPresent" in rule:
        try:
            query(data, rule["Variable"])
            present = True
        except PathNotFound:
            present = False
        return present == rule["IsPresent"]
    value = _variable(rule, data)
    for test, check in (("IsNull", lambda v: v is None), ("IsNumeric", _is_number),
                        ("IsString", lambda v: isinstance(v, str)), ("IsBoolean", lambda v: isinstance(v, bool)),
                        ("IsTimestamp", lambda v: parse_timestamp(v) is not None)):
        if test in rule:
            return check(value) == rule[test]
    if "StringMatches" in rule:
        return isinstance(value, str) and _glob(rule["StringMatches"]).fullmatch(value) is not None
    if "BooleanEquals" in rule or "BooleanEqualsPath" in rule:
        other = _operand(rule, "BooleanEquals", data)
        return isinstance(value, bool) and isinstance(other, bool) and value == other
    for kind in ("String", "Numeric", "Timestamp"):
        for op in _OPS:
            key = kind + op
            if key in rule or key + "Path" in rule:
                other = _operand(rule, key, data)
                if kind == "String":
                    ok = isinstance(value, str) and isinstance(other, str)
                elif kind == "Numeric":
                    ok = _is_number(value) and _is_number(other)
                else:
                    value, other = parse_timestamp(value), parse_timestamp(other)
                    ok = value is not None and other is not None
                return ok and _compare(op, value, other)
    raise errors.StatesError(errors.RUNTIME, f"unsupported Choice rule {sorted(rule)}")


def _operand(rule: dict, key: str, data: Any) -> Any:
    if key in rule:
        return rule[key]
    path = rule[key + "Path"]
    try:
        return query(data, path)
    except PathNotFound:
        raise errors.StatesError(errors.RUNTIME, f"Invalid path '{path}' in {key}Path: the choice state's "
                                 "condition path references an invalid value.") from None
