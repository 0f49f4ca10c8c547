"""JSONPath as Step Functions reads it (its engine is Jayway JsonPath).

Two uses:
- `query(data, path)`: a `.$` value, InputPath, OutputPath, ItemsPath, a Choice Variable. Dot and bracket
  notation, negative indexes, `*`, slices, unions, `..` deep scan and simple filters (`[?(@.x > 1)]`).
  A definite path (no wildcard, slice, union, scan or filter) gives its one value and raises `PathNotFound`
  when nothing is there; an indefinite one gives the list of what it matched (possibly empty).
- `put(data, path, value)`: a reference path (names and indexes only) for ResultPath: returns a copy of
  `data` with `value` written there, creating missing objects on the way.
Compiled paths are cached: the same few paths are evaluated for every Map item.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any


class PathNotFound(LookupError):
    pass


class PathSyntaxError(ValueError):
    pass


_NAME = re.compile(r"[^.\[\]]+")
_MISSING = object()


@lru_cache(maxsize=4096)
def compile_path(path: str) -> tuple[tuple, bool]:
    """Tokens of `path` and whether it is definite. Tokens: ("key", k), ("index", i), ("wild",),
    ("slice", a, b, c), ("union", items), ("scan", key or None), ("filter", expr)."""
    if not path.startswith("$"):
        raise PathSyntaxError(f"a path must start with '$': {path!r}")
    tokens: list[tuple] = []
    i, n = 1, len(path)
    while i < n:
        c = path[i]
        if path.startswith("..", i):
            i += 2
            if i < n and path[i] == "*":
                tokens.append(("scan", None))
                i += 1
                continue
            m = _NAME.match(path, i)
            if not m:
                raise PathSyntaxError(f"a name must follow '..' in {path!r}")
            tokens.append(("scan", m.group()))
            i = m.end()
        elif c == ".":
            i += 1
            if i < n and path[i] == "*":
                tokens.append(("wild",))
                i += 1
                continue
            m = _NAME.match(path, i)
            if not m:
                raise PathSyntaxError(f"a name must follow '.' in {path!r}")
            tokens.append(("key", m.group()))
            i = m.end()
        elif c == "[":
            end = _bracket_end(path, i)
            tokens.append(_bracket_token(path[i + 1:end].strip(), path))
            i = end + 1
        else:
            raise PathSyntaxError(f"unexpected {c!r} at {i} in {path!r}")
    definite = all(t[0] in ("key", "index") for t in tokens)
    return tuple(tokens), definite


def _bracket_end(path: str, start: int) -> int:
    quote, depth = None, 0
    for j in range(start, len(path)):
        ch = path[j]
        if quote:
            if ch == "\\":
                continue
            if ch == quote and path[j - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0 and ch == "]":
                return j
    raise PathSyntaxError(f"unclosed '[' in {path!r}")


def _bracket_token(inner: str, path: str) -> tuple:
    if inner == "*":
        return ("wild",)
    if inner.startswith("?"):
        return ("filter", _compile_filter(inner[1:].strip(), path))
    parts = _split_top(inner, ",")
    items = [_bracket_item(p.strip(), path) for p in parts]
    if len(items) == 1 and items[0][0] in ("key", "index", "slice"):
        return items[0]
    return ("union", tuple(items))


def _bracket_item(item: str, path: str) -> tuple:
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return ("key", item[1:-1].replace("\\'", "'").replace('\\"', '"'))
    if ":" in item:
        bounds = [b.strip() for b in item.split(":")]
        try:
            nums = [int(b) if b else None for b in bounds] + [None] * (3 - len(bounds))
        except ValueError:
            raise PathSyntaxError(f"bad slice [{item}] in {path!r}") from None
        return ("slice", nums[0], nums[1], nums[2])
    try:
        return ("index", int(item))
    except ValueError:
        raise PathSyntaxError(f"bad index [{item}] in {path!r}") from None


def _split_top(text: str, sep: str) -> list[str]:
    out, quote, start = [], None, 0
    for j, ch in enumerate(text):
        if quote:
            if ch == quote and text[j - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == sep:
            out.append(text[start:j])
            start = j + 1
    out.append(text[start:])
    return out


_FILTER = re.compile(r"^@((?:\.[^\s=!<>]+|\[[^\]]+\])*)\s*(==|!=|<=|>=|<|>)?\s*(.*)$")


def _compile_filter(expr: str, path: str):
    if not (expr.startswith("(") and expr.endswith(")")):
        raise PathSyntaxError(f"a filter must be '?(...)' in {path!r}")
    body = expr[1:-1].strip()
    for op in ("||", "&&"):
        parts = _split_top(body.replace(op, "\x00"), "\x00") if op in body else None
        if parts and len(parts) > 1:
            subs = [_compile_filter(f"({p.strip()})", path) for p in parts]
            return ("or" if op == "||" else "and", tuple(subs))
    m = _FILTER.match(body)
    if not m:
        raise PathSyntaxError(f"unsupported filter {body!r} in {path!r}")
    sub, op, literal = m.group(1), m.group(2), m.group(3).strip()
    value = None
    if op:
        import json

        text = literal
        if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
            text = '"' + text[1:-1].replace('"', '\\"') + '"'
        try:
            value = json.loads(text)
        except ValueError:
            raise PathSyntaxError(f"unsupported filter value {literal!r} in {path!r}") from None
    return ("cmp", "$" + sub, op, value)


def _filter_true(f, item) -> bool:
    if f[0] == "and":
        return all(_filter_true(s, item) for s in f[1])
    if f[0] == "or":
        return any(_filter_true(s, item) for s in f[1])
    _, sub, op, value = f
    try:
        got = query(item, sub)
    except PathNotFound:
        return False
    if op is None:
        return True
    if isinstance(got, bool) != isinstance(value, bool):
        return op == "!="
    try:
        return {"==": got == value, "!=": got != value}[op] if op in ("==", "!=") else {
            "<": got < value, "<=": got <= value, ">": got > value, ">=": got >= value}[op]
    except TypeError:
        return False


def _step(values: list, token: tuple) -> list:
    kind = token[0]
    out: list = []
    for v in values:
        if kind == "key":
            if isinstance(v, dict) and token[1] in v:
                out.append(v[token[1]])
        elif kind == "index":
            if isinstance(v, list) and -len(v) <= token[1] < len(v):
                out.append(v[token[1]])
        elif kind == "wild":
            if isinstance(v, dict):
                out.extend(v.values())
            elif isinstance(v, list):
                out.extend(v)
        elif kind == "slice":
            if isinstance(v, list):
                out.extend(v[slice(token[1], token[2], token[3])])
        elif kind == "union":
            for item in token[1]:
                out.extend(_step([v], item))
        elif kind == "scan":
            out.extend(_scan(v, token[1]))
        elif kind == "filter":
            children = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else []
            out.extend(c for c in children if _filter_true(token[1], c))
    return out


def _scan(v, key):
    if isinstance(v, dict):
        if key is None:
            yield from v.values()
        elif key in v:
            yield v[key]
        for child in v.values():
            yield from _scan(child, key)
    elif isinstance(v, list):
        if key is None:
            yield from v
        for child in v:
            yield from _scan(child, key)


def query(data: Any, path: str) -> Any:
    tokens, definite = compile_path(path)
    if definite:
        v = data
        for kind, key in tokens:
            if kind == "key":
                if not isinstance(v, dict) or key not in v:
                    raise PathNotFound(path)
                v = v[key]
            else:
                if not isinstance(v, list) or not -len(v) <= key < len(v):
                    raise PathNotFound(path)
                v = v[key]
        return v
    values = [data]
    for token in tokens:
        values = _step(values, token)
    return values


def is_reference_path(path: str) -> bool:
    try:
        return compile_path(path)[1]
    except PathSyntaxError:
        return False


def put(data: Any, path: str, value: Any) -> Any:
    """`data` with `value` at reference path `path`; raises PathNotFound when a step is not an object."""
    tokens, definite = compile_path(path)
    if not definite:
        raise PathSyntaxError(f"{path!r} is not a reference path")
    if not tokens:
        return value
    return _put(data, tokens, value, path)


def _put(node, tokens, value, path):
    kind, key = tokens[0]
    if kind == "key":
        if node is None or node is _MISSING:
            node = {}
        if not isinstance(node, dict):
            raise PathNotFound(path)
        out = dict(node)
        out[key] = value if len(tokens) == 1 else _put(node.get(key, _MISSING), tokens[1:], value, path)
        return out
    if not isinstance(node, list) or not -len(node) <= key < len(node):
        raise PathNotFound(path)
    out = list(node)
    out[key] = value if len(tokens) == 1 else _put(node[key], tokens[1:], value, path)
    return out
