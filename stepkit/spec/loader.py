"""Load a pipeline YAML file into a validated `Pipeline`, keeping every value's position.

pydantic reports errors by location tuple (`("stages", 3, "compute", "memory_gb")`); we keep
a map from those tuples to YAML line/column so each problem points into the user's file.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from stepkit.errors import Problem, SpecError

Loc = tuple[Any, ...]

# ${NAME} or ${NAME:-default}; $${...} escapes a literal "${".
_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# libyaml's parser when PyYAML was built with it (3-4x faster); nodes and marks are the same.
_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Caps that keep a hostile file from exhausting memory or the stack. A pipeline file is a few
# KB; one near these would compile past AWS's size limits anyway. Aliases are expanded while
# reading, so a "billion laughs" file of a few hundred bytes names 10^9 values: the value cap
# stops it after MAX_VALUES, in milliseconds, whatever the file asks for.
MAX_BYTES = 1_048_576
MAX_VALUES = 100_000
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
# Plain values only: a tag of a type stepkit never reads (!custom, !!binary, !!set ...) is refused.
_PLAIN_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
# A control character in a value reaches SQL literals, intrinsic functions, ARNs or file paths
# where it means something else (or nothing AWS accepts). Tab and newline stay (descriptions).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class Positions(dict):
    """Location tuple -> (line, col) of its value, both 1-based; `keys_at` holds where each key is."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keys_at: dict[Loc, tuple[int, int]] = {}

    def find_key(self, loc: Loc) -> tuple[int, int]:
        """Where the key of `loc` is written (an unknown field is its key, not its value)."""
        loc = tuple(loc)
        return self.keys_at[loc] if loc in self.keys_at else self.find(loc)

    def find(self, loc: Loc) -> tuple[int, int]:
        # pydantic may point below what YAML has (a missing field): fall back to the parent.
        loc = tuple(loc)
        while loc and loc not in self:
            loc = loc[:-1]
        return self.get(loc, (1, 1))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Reader:
    def __init__(self, file: str, text: str, variables: Mapping[str, str]):
        self.file = file
        self.text = text
        self.variables = variables
        self.positions = Positions()
        self.problems: list[Problem] = []
        self.used: set[str] = set()

    def problem(self, node: yaml.Node, loc: Loc, message: str) -> None:
        line, col = _mark(node)
        self.problems.append(Problem(self.file, line, col, dotted(loc), message))

    def fail(self, line: int, col: int, message: str) -> SpecError:
        return SpecError(problems=[Problem(self.file, line, col, "", message)])

    def read(self) -> Any:
        loader = _FastLoader(self.text)
        try:
            try:
                root = loader.get_single_node()
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = " ".join(x for x in (e.context, e.problem) if x)
            raise self.fail(line, col, f"YAML syntax: {what}") from None
        except yaml.reader.ReaderError as e:
            # A character YAML does not allow in a file (NUL, other control characters).
            line, col = _position(self.text, e.position)
            code = e.character if isinstance(e.character, int) else ord(e.character)
            raise self.fail(line, col, f"YAML: character U+{code:04X} is not allowed in a YAML file") from None
        if root is None:
            raise self.fail(1, 1, "the file is empty")
        self._loader = yaml.SafeLoader("")
        self._values = 0
        return self.value(root, (), 0)

    def value(self, node: yaml.Node, loc: Loc, depth: int) -> Any:
        self.positions[loc] = _mark(node)
        self._values += 1
        if self._values > MAX_VALUES:
            raise self.fail(*_mark(node), f"more than {MAX_VALUES:,} values (counting each use of an alias "
                            "as the values it repeats): a pipeline file is far smaller; is it an alias bomb?")
        if depth > MAX_DEPTH:
            raise self.fail(*_mark(node), f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.MappingNode):
            if node.tag != _TAG + "map":
                return self.unsupported(node, loc)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _TAG + "merge":
                    self.problem(key_node, loc, "YAML merge keys (<<) are not supported: write the fields out")
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problem(key_node, loc, "a key must be a plain name, not a list or mapping")
                    continue
                # The key as written: YAML 1.1 reads `on:` or `1:` as a boolean or number, editors (YAML 1.2)
                # and users read a name; every key stepkit reads is a name.
                key = key_node.value
                if key in out:
                    self.problem(key_node, loc + (key,), "duplicate key")
                    continue
                out[key] = self.value(value_node, loc + (key,), depth + 1)
                self.positions.keys_at[loc + (key,)] = _mark(key_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                return self.unsupported(node, loc)
            return [self.value(item, loc + (i,), depth + 1) for i, item in enumerate(node.value)]
        if node.tag == _TAG + "timestamp" and node.style is None:
            return self.string(node.value, node, loc)  # an unquoted date is text to every field that takes one
        if node.tag not in _PLAIN_TAGS:
            return self.unsupported(node, loc)
        try:
            value = self._loader.construct_object(node)
        except (yaml.YAMLError, ValueError) as e:  # ValueError: an integer of more than 4,300 digits
            self.problem(node, loc, f"{node.value[:40]!r} is not a value stepkit can read ({str(e).splitlines()[0]})")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(node, loc, f"{node.value} is not a finite number (no value of a pipeline may be "
                         "infinite or NaN: it reaches SQL and JSON, which have no such number)")
            return None
        if isinstance(value, str):
            return self.string(value, node, loc)
        return value

    def unsupported(self, node: yaml.Node, loc: Loc) -> None:
        self.problem(node, loc, f"YAML tag {node.tag.replace(_TAG, '!!')} is not supported (plain values, lists "
                     "and mappings only)")
        return None

    def string(self, value: str, node: yaml.Node, loc: Loc) -> str:
        value = self.substitute(value, node, loc)
        bad = _CONTROL.search(value)
        if bad:
            self.problem(node, loc, f"holds control character U+{ord(bad.group()):04X}; values may hold tabs and "
                         "newlines, no other control characters")
        return value

    def substitute(self, value: str, node: yaml.Node, loc: Loc) -> str:
        """`${NAME}` / `${NAME:-default}` replaced, `$${` kept as a literal `${`. Any other `${`
        is an error: it would reach a name or ARN unresolved (a validator would skip or mangle it)."""
        out: list[str] = []
        pos = escapes = 0
        for m in _VAR.finditer(value):
            out.append(value[pos:m.start()])
            pos = m.end()
            escaped, name, default = m.groups()
            if escaped:
                out.append(m.group(0)[1:])
                escapes += 1
                continue
            self.used.add(name)
            if name in self.variables:
                out.append(self.variables[name])
            elif default is not None:
                out.append(default)
            else:
                self.problem(node, loc, f"variable ${{{name}}} is not set (export {name}=... or pass --var {name}=...)")
                out.append(m.group(0))
                escapes += 1  # reported already
        out.append(value[pos:])
        result = "".join(out)
        if result.count("${") > escapes:
            if any("${" in value[a:b] for a, b in _literal_spans(value)):
                self.problem(node, loc, "'${' starts no variable: write ${NAME} or ${NAME:-default} (NAME: letters, "
                             "digits, _), or $${ for a literal '${'")
            else:
                self.problem(node, loc, "a variable's value holds '${' (values are not expanded again): set the "
                             "variable to the value itself")
        return result


def _literal_spans(value: str) -> list[tuple[int, int]]:
    """The parts of `value` outside variable references (and escapes)."""
    spans, pos = [], 0
    for m in _VAR.finditer(value):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(value)))
    return spans


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def dotted(loc: Loc) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def read_yaml(path: str | Path, variables: Mapping[str, str] | None = None) -> tuple[Any, Positions]:
    """Parse YAML with positions and `${VAR}` substitution. Raises SpecError with every problem."""
    path = Path(path)
    text = read_text(path, MAX_BYTES, "a pipeline file")
    env = dict(os.environ) if variables is None else dict(variables)
    reader = _Reader(str(path), text, env)
    data = reader.read()
    if reader.problems:
        raise SpecError(problems=reader.problems)
    return data, reader.positions


def read_text(path: Path, limit: int, what: str) -> str:
    """A user's UTF-8 text file, or a one-line SpecError saying why not (missing, a folder, unreadable,
    larger than `limit` bytes, not UTF-8). At most limit + 1 bytes are read, so /dev/zero ends too."""
    def fail(message: str) -> SpecError:
        return SpecError(problems=[Problem(str(path), 0, 0, "", message)])

    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("is a directory") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as e:
        raise fail(f"cannot read: {e.strerror or e}") from None
    except ValueError:  # an embedded NUL in the path
        raise fail("not a file name") from None
    if len(data) > limit:
        raise fail(f"larger than {limit:,} bytes: not {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(problems=[Problem(str(path), line, col, "", f"not UTF-8 text (byte 0x{data[e.start]:02x}): "
                                          f"not {what}")]) from None


def _pydantic_message(err: dict[str, Any]) -> str:
    msg = err["msg"]
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in ("value_error", "assertion_error"):
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind.startswith("literal_error") or kind in ("enum",):
        return msg
    value = err.get("input")
    if kind == "string_type" and isinstance(value, (bool, int, float)):
        # YAML 1.1 reads yes/no/on/off/true/false as booleans and 1, 1.5 as numbers.
        kind_read = "boolean" if isinstance(value, bool) else "number"
        return f"{msg} (got {value!r}: YAML read it as a {kind_read}; quote it to mean text)"
    if kind == "string_type" and type(value).__name__ == "YamlBoolean":
        return f"{msg} (got {value!r}; quote it to mean text)"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{msg} (got {value!r})"
    return msg


def validation_problems(file: str, error: ValidationError, positions: Positions) -> list[Problem]:
    problems = []
    for err in error.errors(include_url=False):
        # Tagged unions put the tag in the loc ("stages", 2, "athena_ctas", "table"): drop it.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("__tag")))
        loc = _strip_union_tags(loc, positions)
        message = _pydantic_message(err)
        if err["type"] == "union_tag_invalid":
            # The stage's `type` is what is wrong, not the whole stage.
            loc += (err["ctx"]["discriminator"].strip("'"),)
            message = f"{err['ctx']['tag']!r} is not a stage type (one of {err['ctx']['expected_tags']})"
        # An unknown field, or a mapping key that is wrong itself (pydantic's "[key]"): point at the key.
        at_key = err["type"] == "extra_forbidden" or err["loc"][-1:] == ("[key]",)
        line, col = positions.find_key(loc) if at_key else positions.find(loc)
        problems.append(Problem(file, line, col, dotted(loc), message))
    return _one_per_field(problems)


def _one_per_field(problems: list[Problem]) -> list[Problem]:
    """A value that fits none of a union's forms (`partitions: 898 | batches | batch_groups`) gets
    one error per form from pydantic: one line for the field, naming every form it could take."""
    merged: dict[tuple[int, int, str], Problem] = {}
    for p in problems:
        key = (p.line, p.col, p.field)
        if key in merged:
            first = merged[key]
            if p.message not in first.message:
                message = f"{first.message}; or: {p.message}"
                merged[key] = Problem(first.file, first.line, first.col, first.field, message)
        else:
            merged[key] = p
    return list(merged.values())


def _strip_union_tags(loc: Loc, positions: Positions) -> Loc:
    # Drop path parts that name a union member rather than a YAML key.
    out: list[Any] = []
    for part in loc:
        candidate = tuple(out) + (part,)
        if isinstance(part, str) and candidate not in positions and tuple(out) in positions:
            if any(k[: len(candidate)] == candidate for k in positions):
                out.append(part)
                continue
            if "[" in part or part.startswith("function-") or part in _UNION_TAGS or part in _SCALAR_TAGS:
                continue
        out.append(part)
    return tuple(out)


# Filled by stepkit.steps with the registered step type names (they appear in union locs).
_UNION_TAGS: set[str] = set()
# The member of an `int | Literal[...]` style union that pydantic names in the loc.
_SCALAR_TAGS = {"int", "float", "str", "bool", "none", "constrained-int", "constrained-float", "constrained-str"}


def load_pipeline(path: str | Path, variables: Mapping[str, str] | None, model: type):
    """Read a pipeline file and validate it with `model` (stepkit.compiler.load binds the block
    registry). Returns (pipeline, positions); raises SpecError."""
    data, positions = read_yaml(path, variables)
    if not isinstance(data, dict):
        raise SpecError(problems=[Problem(str(path), 1, 1, "", "a pipeline file is a mapping of fields")])
    try:
        pipeline = model.model_validate(data)
    except ValidationError as e:
        raise SpecError(problems=validation_problems(str(path), e, positions)) from None
    return pipeline, positions
