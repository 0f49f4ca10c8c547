"""Load a pipeline YAML file into a validated `Pipeline`, keeping every value's position.

pydantic reports errors by location tuple (`("stages", 3, "compute", "memory_gb")`); we keep
a map from those tuples to YAML line/column so each problem points into the user's file.
"""
from __future__ import annotations

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
            raise SpecError(problems=[Problem(self.file, line, col, "", f"YAML syntax: {what}")]) from None
        if root is None:
            raise SpecError(problems=[Problem(self.file, 1, 1, "", "the file is empty")])
        self._loader = yaml.SafeLoader("")
        return self.value(root, ())

    def value(self, node: yaml.Node, loc: Loc) -> Any:
        self.positions[loc] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._loader.construct_object(key_node)
                if key in out:
                    self.problem(key_node, loc + (key,), "duplicate key")
                    continue
                if key == "<<":
                    self.problem(key_node, loc, "YAML merge keys are not supported")
                    continue
                out[key] = self.value(value_node, loc + (key,))
                self.positions.keys_at[loc + (key,)] = _mark(key_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, loc + (i,)) for i, item in enumerate(node.value)]
        value = self._loader.construct_object(node)
        if isinstance(value, str):
            return self.substitute(value, node, loc)
        return value

    def substitute(self, value: str, node: yaml.Node, loc: Loc) -> str:
        def repl(m: re.Match[str]) -> str:
            escaped, name, default = m.groups()
            if escaped:
                return m.group(0)[1:]
            self.used.add(name)
            if name in self.variables:
                return self.variables[name]
            if default is not None:
                return default
            self.problem(node, loc, f"variable ${{{name}}} is not set (export {name}=... or pass --var {name}=...)")
            return m.group(0)

        return _VAR.sub(repl, value)


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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(problems=[Problem(str(path), 0, 0, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(problems=[Problem(str(path), 0, 0, "", f"cannot read: {e}")]) from None
    env = dict(os.environ) if variables is None else dict(variables)
    reader = _Reader(str(path), text, env)
    data = reader.read()
    if reader.problems:
        raise SpecError(problems=reader.problems)
    return data, reader.positions


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
        line, col = positions.find_key(loc) if err["type"] == "extra_forbidden" else positions.find(loc)
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
_SCALAR_TAGS = {"int", "float", "str", "bool", "none"}


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
