"""Intrinsic functions (`States.Format(...)` and the rest) of JSONPath states.

The parser follows AWS's rules for arguments: string literals in single quotes, in which `\\'`, `\\{`,
`\\}` and `\\\\` stand for a quote, a brace and a backslash (in States.Format a bare `{}` is a
placeholder, an escaped `\\{\\}` is literal text); numbers, `true`, `false`, `null`; JSONPath (`$.x`)
and context (`$$.Execution.Name`) arguments; nested calls (AWS allows 10 levels).
Wrong argument counts or types raise `States.IntrinsicFailure`. Where AWS documents that a
non-integer is rounded to the nearest integer (ArrayRange, ArrayPartition, MathAdd, MathRandom),
it is rounded here too.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import uuid
from functools import lru_cache
from typing import Any, Callable

from . import errors
from .jsonpath import PathNotFound, query


class _Str:
    """A string literal: `value` unescaped, `parts` for States.Format (None marks a `{}` placeholder)."""

    __slots__ = ("value", "parts")

    def __init__(self, value: str, parts: tuple):
        self.value, self.parts = value, parts


def _fail(message: str) -> errors.StatesError:
    return errors.StatesError(errors.INTRINSIC_FAILURE, message)


def is_intrinsic(text: str) -> bool:
    return text.startswith("States.") and "(" in text


@lru_cache(maxsize=2048)
def parse(text: str) -> tuple:
    """("call", name, args) where each arg is ("lit", value) | ("str", _Str) | ("path", p) | ("call", ...)."""
    node, end = _call(text, 0)
    if text[end:].strip():
        raise _fail(f"unexpected text after the call: {text[end:]!r}")
    return node


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _call(text: str, i: int) -> tuple[tuple, int]:
    open_ = text.find("(", i)
    name = text[i:open_].strip()
    if open_ < 0 or not name.startswith("States."):
        raise _fail(f"not an intrinsic function call: {text[i:]!r}")
    args: list = []
    j = _skip(text, open_ + 1)
    if j < len(text) and text[j] == ")":
        return ("call", name, tuple(args)), j + 1
    while True:
        arg, j = _arg(text, _skip(text, j))
        args.append(arg)
        j = _skip(text, j)
        if j >= len(text):
            raise _fail(f"missing ')' in {text!r}")
        if text[j] == ")":
            return ("call", name, tuple(args)), j + 1
        if text[j] != ",":
            raise _fail(f"expected ',' or ')' at {j} in {text!r}")
        j += 1


def _arg(text: str, i: int) -> tuple[tuple, int]:
    if text.startswith("States.", i):
        return _call(text, i)
    if i < len(text) and text[i] == "'":
        return _string(text, i)
    if i < len(text) and text[i] == "$":
        j, depth, quote = i, 0, None
        while j < len(text):
            ch = text[j]
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "'\"" and depth:
                quote = ch
            elif ch in "[(":
                depth += 1
            elif ch in "])":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                break
            j += 1
        return ("path", text[i:j].strip()), j
    j = i
    while j < len(text) and text[j] not in ",)":
        j += 1
    token = text[i:j].strip()
    try:
        return ("lit", json.loads(token)), j
    except ValueError:
        raise _fail(f"cannot read argument {token!r}") from None


def _string(text: str, i: int) -> tuple[tuple, int]:
    value: list[str] = []
    parts: list = []
    chunk: list[str] = []
    j = i + 1
    while j < len(text):
        ch = text[j]
        if ch == "\\" and j + 1 < len(text):
            value.append(text[j + 1])
            chunk.append(text[j + 1])
            j += 2
            continue
        if ch == "'":
            parts.append("".join(chunk))
            return ("str", _Str("".join(value), tuple(parts))), j + 1
        if ch == "{" and text.startswith("{}", j):
            parts.extend(["".join(chunk), None])
            chunk = []
            value.append("{}")
            j += 2
            continue
        value.append(ch)
        chunk.append(ch)
        j += 1
    raise _fail(f"unterminated string in {text!r}")


def evaluate(text: str, data: Any, context: dict) -> Any:
    return _eval(parse(text), data, context, depth=0)


def _eval(node: tuple, data: Any, context: dict, depth: int) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "str":
        return node[1]
    if kind == "path":
        path = node[1]
        try:
            return query(context, path[1:]) if path.startswith("$$") else query(data, path)
        except PathNotFound:
            raise errors.StatesError(errors.RUNTIME, f"The JSONPath {path!r} could not be found in the input") from None
    if depth >= 10:
        raise _fail("more than 10 nested intrinsic functions")
    name, raw = node[1], node[2]
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise _fail(f"unknown intrinsic function {name}")
    args = [_eval(a, data, context, depth + 1) for a in raw]
    if name != "States.Format":
        args = [a.value if isinstance(a, _Str) else a for a in args]
    return fn(*args)


def _count(name: str, args: tuple, low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise _fail(f"{name} takes {want} arguments, got {len(args)}")


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"{name} needs a number, got {json.dumps(value)}")
    return int(math.floor(value + 0.5))


def _string_arg(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(f"{name} needs a string, got {json.dumps(value)}")
    return value


def _format(*args):
    _count("States.Format", args, 1, 10**6)
    template = args[0]
    if not isinstance(template, _Str):
        raise _fail("States.Format needs a string literal as its first argument")
    values = [a.value if isinstance(a, _Str) else a for a in args[1:]]
    holes = sum(1 for p in template.parts if p is None)
    if holes != len(values):
        raise _fail(f"States.Format: the template has {holes} '{{}}' but {len(values)} values were given")
    out, it = [], iter(values)
    for part in template.parts:
        if part is None:
            v = next(it)
            out.append(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
        else:
            out.append(part)
    return "".join(out)


def _string_to_json(*args):
    _count("States.StringToJson", args, 1)
    try:
        return json.loads(_string_arg("States.StringToJson", args[0]))
    except ValueError as e:
        raise _fail(f"States.StringToJson: not JSON: {e}") from None


def _json_to_string(*args):
    _count("States.JsonToString", args, 1)
    return json.dumps(args[0], separators=(",", ":"), ensure_ascii=False)


def _array_partition(*args):
    _count("States.ArrayPartition", args, 2)
    items, size = args[0], _int("States.ArrayPartition", args[1])
    if not isinstance(items, list) or size <= 0:
        raise _fail("States.ArrayPartition needs an array and a positive chunk size")
    return [items[i:i + size] for i in range(0, len(items), size)]


def _array_contains(*args):
    _count("States.ArrayContains", args, 2)
    if not isinstance(args[0], list):
        raise _fail("States.ArrayContains needs an array")
    return any(_same(v, args[1]) for v in args[0])


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _array_range(*args):
    _count("States.ArrayRange", args, 3)
    start, end, step = (_int("States.ArrayRange", a) for a in args)
    if step == 0:
        raise _fail("States.ArrayRange: the step must not be 0")
    out = list(range(start, end + (1 if step > 0 else -1), step))
    if len(out) > 1000:
        raise _fail(f"States.ArrayRange: {len(out)} items; at most 1000")
    return out


def _array_get_item(*args):
    _count("States.ArrayGetItem", args, 2)
    items, index = args
    if not isinstance(items, list) or isinstance(index, bool) or not isinstance(index, int):
        raise _fail("States.ArrayGetItem needs an array and an integer index")
    if not 0 <= index < len(items):
        raise _fail(f"States.ArrayGetItem: index {index} is outside the array of {len(items)}")
    return items[index]


def _array_length(*args):
    _count("States.ArrayLength", args, 1)
    if not isinstance(args[0], list):
        raise _fail("States.ArrayLength needs an array")
    return len(args[0])


def _array_unique(*args):
    _count("States.ArrayUnique", args, 1)
    if not isinstance(args[0], list):
        raise _fail("States.ArrayUnique needs an array")
    out: list = []
    for v in args[0]:
        if not any(_same(v, seen) for seen in out):
            out.append(v)
    return out


def _base64_encode(*args):
    _count("States.Base64Encode", args, 1)
    text = _string_arg("States.Base64Encode", args[0])
    if len(text) > 10000:
        raise _fail("States.Base64Encode: at most 10000 characters")
    return base64.b64encode(text.encode()).decode()


def _base64_decode(*args):
    _count("States.Base64Decode", args, 1)
    text = _string_arg("States.Base64Decode", args[0])
    try:
        return base64.b64decode(text, validate=True).decode()
    except ValueError as e:
        raise _fail(f"States.Base64Decode: {e}") from None


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _hash(*args):
    _count("States.Hash", args, 2)
    data, algorithm = args
    if algorithm not in _HASHES:
        raise _fail(f"States.Hash: unknown algorithm {algorithm!r}; one of {', '.join(_HASHES)}")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _json_merge(*args):
    _count("States.JsonMerge", args, 3)
    a, b, deep = args
    if not isinstance(a, dict) or not isinstance(b, dict):
        raise _fail("States.JsonMerge needs two JSON objects")
    if deep is not False:
        raise _fail("States.JsonMerge: only the shallow mode (false) is supported")
    return {**a, **b}


def _math_random(*args):
    _count("States.MathRandom", args, 2, 3)
    start, end = _int("States.MathRandom", args[0]), _int("States.MathRandom", args[1])
    if start >= end:
        raise _fail("States.MathRandom: the start must be below the end")
    rng = random.Random(_int("States.MathRandom", args[2])) if len(args) == 3 else random
    return rng.randrange(start, end)


def _math_add(*args):
    _count("States.MathAdd", args, 2)
    a, b = (_int("States.MathAdd", v) for v in args)
    for v in (a, b):
        if not -2**31 <= v < 2**31:
            raise _fail(f"States.MathAdd: {v} is outside -2147483648..2147483647")
    return a + b


def _string_split(*args):
    _count("States.StringSplit", args, 2)
    text, seps = (_string_arg("States.StringSplit", v) for v in args)
    out, cur = [], []
    for ch in text:
        if ch in seps:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s for s in out if s]


def _uuid(*args):
    _count("States.UUID", args, 0)
    return str(uuid.uuid4())


def _array(*args):
    return list(args)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.Format": _format, "States.StringToJson": _string_to_json, "States.JsonToString": _json_to_string,
    "States.Array": _array, "States.ArrayPartition": _array_partition, "States.ArrayContains": _array_contains,
    "States.ArrayRange": _array_range, "States.ArrayGetItem": _array_get_item,
    "States.ArrayLength": _array_length, "States.ArrayUnique": _array_unique,
    "States.Base64Encode": _base64_encode, "States.Base64Decode": _base64_decode, "States.Hash": _hash,
    "States.JsonMerge": _json_merge, "States.MathRandom": _math_random, "States.MathAdd": _math_add,
    "States.StringSplit": _string_split, "States.UUID": _uuid,
}
