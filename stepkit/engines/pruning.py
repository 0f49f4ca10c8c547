"""Partition pruning: which of a partitioned table's files a statement can read at all.

EvaluationFeatures reads the staging table one batch group at a time (`WHERE batch_group = k`).
DuckDB prunes the other groups' files itself, but a partitioned COPY then still cost 20-25% more
CPU than the same COPY from a view over the one group's files (benchmarks/e2e_local.py at 10M: 2.1
against 1.7 CPU-s per group; DuckDB sizes the write for the 9 files' rows, it seems, not the one's).
So the engine binds the table's view, for that statement, over the files whose `col=value/`
folders can match.

Pruned only where it cannot change a row: the table is read once in the statement, as the FROM of
a SELECT whose WHERE has, among its AND-ed conditions, `col = literal` or `col IN (literals)` on a
partition column (qualified by the table's name or alias, or unqualified when nothing is joined),
with a literal of the column's kind (a number for an integer column, a string for a string one).
The condition still runs; pruning only skips files whose rows it would drop.
"""
from __future__ import annotations

from pathlib import PurePath
from urllib.parse import unquote

from sqlglot import exp

Values = dict[str, set[object]]  # partition column -> the values its rows must have
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT"}


def wanted(query: exp.Expression, key: tuple[str, str], partitions: list[str]) -> Values:
    """The values `query` requires of the partition columns of table `key` ((database, name) as
    Statement.source_tables gives it); empty when it requires none, or reads the table more than once."""
    refs = [t for t in query.find_all(exp.Table) if ((t.db or "").lower(), t.name.lower()) == key]
    if len(refs) != 1 or not partitions:
        return {}
    ref = refs[0]
    if ref.args.get("sample"):  # a sample of the table is not a sample of its partitions' rows
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


def keeps(path: str, root: str, values: Values, types: dict[str, str]) -> bool:
    """Whether the file at `path` (under the table's `root`) can hold rows with `values`. A file
    whose folders do not say (no `col=` folder, a value that does not read as the column's type,
    Hive's NULL folder) is kept: pruning skips only what it can tell is not wanted."""
    parts = PurePath(path).relative_to(root).parts[:-1]
    folders = {k.lower(): v for k, v in (p.split("=", 1) for p in parts if "=" in p)}
    for column, want in values.items():
        raw = folders.get(column)
        if raw is None:
            continue
        kind = types.get(column, "VARCHAR").upper()
        if kind in _INTEGERS:
            if not all(isinstance(v, int) for v in want):
                continue
            try:
                got: set[object] = {int(unquote(raw))}
            except ValueError:
                continue
        elif kind == "VARCHAR":
            if not all(isinstance(v, str) for v in want):
                continue
            got = {raw, unquote(raw)}  # escaped as Hive does (`%2F`), or written by a tool that did not
        else:
            continue
        if not got & want:
            return False
    return True
