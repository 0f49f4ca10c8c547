"""Partition pruning: which of a partitioned table's files a statement can read at all.

EvaluationFeatures reads the staging table one batch group at a time (`WHERE batch_group = k`).
DuckDB prunes the other groups' files itself, yet its partitioned COPY from the view over all 9
files cost ~20% more CPU than from a view over the one group's files (benchmarks/partition_pruning.py,
10M rows, the 9 group statements at one thread: 22.4 against 18.6 CPU-s, 20.2 against 16.1 s; with 2
files in the view, no difference). So the engine binds the table's view, for that statement, over the files whose
`col=value/` folders can match.

Pruned only where it cannot change a row or an error:
- the statement reads the table once, as the FROM of a SELECT whose WHERE has, among its AND-ed
  conditions, `col = literal` or `col IN (literals)` on a partition column (qualified by the
  table's name or alias, or unqualified when nothing is joined), literals of the column's kind;
- the table's columns are declared and all its files have one schema (the engine checks, see
  DuckDBEngine._view): a subset of files could otherwise bind other columns or types;
- a file is dropped only when its folders are exactly the table's `col=value/` levels, each value
  plain for its type (`kept`); any other file stays, so DuckDB reads or refuses it as it would.
The condition still runs; pruning only skips files whose rows it would drop.
"""
from __future__ import annotations

import re
from pathlib import PurePath
from urllib.parse import unquote

from sqlglot import exp

Values = dict[str, set[object]]  # partition column -> the values its rows must have


def wanted(query: exp.Expression, key: tuple[str, str], partitions: list[str]) -> Values:
    """The values `query` requires of the partition columns of table `key` ((database, name) as
    Statement.source_tables gives it); empty when it requires none, or reads the table more than once."""
    if not partitions:
        return {}
    refs = [t for t in query.find_all(exp.Table) if ((t.db or "").lower(), t.name.lower()) == key]
    if len(refs) != 1:
        return {}
    ref = refs[0]
    if ref.args.get("sample"):  # a sample of the table is not a sample of its partitions' rows
        return {}
    alias = ref.args.get("alias")
    if alias is not None and alias.columns:  # `db.t AS x(a, b, c)` renames the columns by position
        return {}
    source = ref.parent
    select = source.parent if isinstance(source, exp.From) else None
    if not isinstance(select, exp.Select) or select.args.get("where") is None:
        return {}
    names = {ref.alias_or_name.lower()}
    joined = bool(select.args.get("joins"))
    condition = select.args["where"].this.unnest()
    out: Values = {}
    for term in (condition.flatten() if isinstance(condition, exp.And) else [condition]):
        found = _equality(term.unnest(), names, joined, partitions)
        if found:
            column, values = found
            out[column] = out[column] & values if column in out else values
    return out


def _equality(term: exp.Expression, names: set[str], joined: bool, partitions: list[str]
              ) -> tuple[str, set[object]] | None:
    if isinstance(term, exp.EQ):
        column, literals = term.this, [term.expression]
        if not isinstance(column, exp.Column):
            column, literals = term.expression, [term.this]
    elif isinstance(term, exp.In) and not term.args.get("query") and not term.args.get("unnest"):
        column, literals = term.this, list(term.expressions)
    else:
        return None
    if not isinstance(column, exp.Column) or column.name.lower() not in partitions:
        return None
    if column.table.lower() not in names if column.table else joined:
        return None
    values = {_value(v) for v in literals}
    if not values or None in values:
        return None
    return column.name.lower(), values


def _value(node: exp.Expression) -> object:
    """A string or integer literal's value; None for anything else (no pruning on it)."""
    if not isinstance(node, exp.Literal):
        return None
    if node.is_string:
        return node.this
    try:
        return int(node.this)
    except ValueError:
        return None


def kept(paths: list[str], root: str, partitions: list[str], values: Values, types: dict[str, str]) -> list[str]:
    """The files of `paths` (under the table's `root`) that can hold rows with `values`: all of them
    when pruning cannot tell, or when none can (the statement's WHERE then finds no row).

    A file is dropped only when its folders are exactly the table's `col=value/` levels, in order,
    every value reads plainly as its column's type, and a wanted column's value is not wanted. Any
    other file is kept, so that a read that would fail without pruning (a value DuckDB cannot cast,
    a layout it calls a partition mismatch) fails with it too, and a path DuckDB reads otherwise
    (a `col=` folder above the table's root, where DuckDB takes the first) is never guessed at."""
    kinds = {c: types.get(c, "VARCHAR").upper() for c in partitions}
    # A literal of another kind than its column's (`grp IN (1, '2')`) is coerced by the engine: no pruning.
    coerced = any(isinstance(v, str) != (kinds.get(c) == "VARCHAR") for c, want in values.items() for v in want)
    if not values or coerced or any("=" in p for p in PurePath(root).parts):
        return list(paths)
    return [p for p in paths if _can_hold(p, root, partitions, values, kinds)] or list(paths)


def _can_hold(path: str, root: str, partitions: list[str], values: Values, kinds: dict[str, str]) -> bool:
    pairs = [p.split("=", 1) for p in PurePath(path).relative_to(root).parts[:-1]]
    if [k for k, *_ in pairs] != partitions or any(len(p) != 2 for p in pairs):
        return True
    read = {k: _plain(v, kinds[k]) for k, v in pairs}
    if None in read.values():
        return True
    return all(read[column] in want for column, want in values.items())


_RANGES = {"TINYINT": 2**7, "SMALLINT": 2**15, "INTEGER": 2**31, "BIGINT": 2**63}
_PLAIN_INTEGER = re.compile(r"-?[0-9]+")
# Hive escapes what a folder name cannot hold as %XX; anything else unusual is left to DuckDB to read.
_PLAIN_STRING = re.compile(r"[A-Za-z0-9_.~%-]+")


def _plain(raw: str, kind: str) -> object:
    """The folder value as its column's value, or None when it does not read plainly."""
    if kind in _RANGES:
        if not _PLAIN_INTEGER.fullmatch(raw):
            return None
        value = int(raw)
        return value if -_RANGES[kind] <= value < _RANGES[kind] else None
    if kind == "VARCHAR" and _PLAIN_STRING.fullmatch(raw) and raw != "__HIVE_DEFAULT_PARTITION__":
        try:
            return unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
    return None
