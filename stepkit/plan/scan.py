"""What an Athena statement reads and writes, from its SQL as the compiled state machine holds it.

Athena bills the bytes it reads: a raw JSON (text) table is read whole whatever the query
selects; a Parquet table only in the columns the query names, and only in the partitions its
WHERE keeps (`partition_column = literal`). Statements that only change the catalog (DDL:
CREATE EXTERNAL TABLE, DROP TABLE) are free and read nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

GB = 1024 ** 3


@dataclass
class Table:
    name: str  # db.table, lower case
    fmt: str  # "json": read whole; "parquet": by column
    rows: float
    columns: dict[str, float] = field(default_factory=dict)  # bytes a row, per column
    total_bytes: float | None = None  # a JSON table's size
    partition_column: str | None = None
    partitions: int | None = None

    @property
    def row_bytes(self) -> float:
        return sum(self.columns.values())


@dataclass
class Read:
    table: str
    fmt: str
    bytes: float
    fraction: float  # share of the table's partitions read
    columns: list[str]


@dataclass
class Scan:
    kind: str  # "ddl" (free), "dml" (CTAS / INSERT), "query"
    sql: str
    reads: list[Read] = field(default_factory=list)
    target: str | None = None
    rows_written: float = 0.0
    bytes_written: float = 0.0
    partitions_written: int = 0
    write_share: float = 1.0  # share of the target's partitions this statement writes
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_json(self) -> float:
        return sum(r.bytes for r in self.reads if r.fmt == "json")

    @property
    def bytes_parquet(self) -> float:
        return sum(r.bytes for r in self.reads if r.fmt != "json")

    @property
    def bytes_scanned(self) -> float:
        return self.bytes_json + self.bytes_parquet


def query_text(parameters: dict[str, Any], sample_run_id: str = "run") -> str | None:
    """The SQL of an athena:startQueryExecution state: a literal, or the first argument of its
    States.Format(...), unescaped, with the run id filled in."""
    if isinstance(parameters.get("QueryString"), str):
        return parameters["QueryString"]
    fmt = parameters.get("QueryString.$")
    if not isinstance(fmt, str) or not fmt.startswith("States.Format('"):
        return None
    out, i = [], len("States.Format('")
    while i < len(fmt):
        ch = fmt[i]
        if ch == "\\" and i + 1 < len(fmt):
            out.append(fmt[i + 1])
            i += 2
            continue
        if ch == "'":
            break
        if fmt.startswith("{}", i):
            out.append(sample_run_id)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _qualified(table: Any, default_db: str) -> str:
    db = table.args.get("db")
    return f"{(db.name if db else default_db)}.{table.name}".lower()


def _type_bytes(declared: Any, column: str, sizes: Callable[[str], float]) -> float:
    """Bytes a value of a declared column (a sqlglot DataType) takes."""
    if column == "id":
        return sizes("id")
    name = getattr(getattr(declared, "this", None), "name", "")
    if name in ("TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR"):
        return sizes("category")
    if name in ("INT", "SMALLINT", "TINYINT", "DATE"):
        return sizes("integer")
    if name == "BOOLEAN":
        return sizes("boolean")
    return sizes("double")  # DOUBLE, FLOAT, BIGINT, DECIMAL, TIMESTAMP and the rest: 8 bytes


def _partition_equalities(where: Any) -> dict[str, Any]:
    from sqlglot import exp

    out = {}
    if where is None:
        return out
    for eq in where.find_all(exp.EQ):
        col, lit = eq.left, eq.right
        if isinstance(lit, exp.Column):
            col, lit = lit, col
        if isinstance(col, exp.Column) and isinstance(lit, exp.Literal):
            out[col.name.lower()] = lit.this
    return out


class Catalog:
    """Tables the statements read, by qualified name: the source (given) and every table a
    statement creates, registered in the order the state machine runs them."""

    def __init__(self, default_db: str, rows_of: Callable[[str], float | None],
                 column_bytes: Callable[[str], float], type_sizes: Callable[[str], float],
                 partitions_of: Callable[[str], int | None]):
        self.tables: dict[str, Table] = {}
        self.default_db = default_db
        self.rows_of, self.column_bytes, self.type_sizes = rows_of, column_bytes, type_sizes
        self.partitions_of = partitions_of

    def add(self, table: Table) -> None:
        self.tables[table.name.lower()] = table

    def analyse(self, sql: str) -> Scan:
        """Reads, writes and kind of one statement; registers a table it creates."""
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError
        from sqlglot.optimizer.scope import traverse_scope

        try:
            tree = sqlglot.parse_one(sql, read="athena")
        except SqlglotError as e:
            return Scan("query", sql, notes=[f"SQL not understood ({str(e).splitlines()[0]}); counted as 10 MB"])
        if isinstance(tree, exp.Drop) or (isinstance(tree, exp.Create) and tree.expression is None):
            if isinstance(tree, exp.Create):
                self._register_ddl(tree)
            return Scan("ddl", sql)
        select = tree.expression if isinstance(tree, (exp.Create, exp.Insert)) else tree
        scan = Scan("dml" if isinstance(tree, (exp.Create, exp.Insert)) else "query", sql)
        if not isinstance(select, exp.Query):
            scan.notes.append("no SELECT found; counted as 10 MB")
            return scan
        used: dict[str, set[str]] = {}
        star: set[str] = set()
        fraction: dict[str, float] = {}
        for scope in traverse_scope(select):
            tables = {alias: src for alias, src in scope.selected_sources.items()
                      if isinstance(src[1] if isinstance(src, tuple) else src, exp.Table)}
            tables = {a: (s[1] if isinstance(s, tuple) else s) for a, s in tables.items()}
            if not tables:
                continue
            named = {a: _qualified(t, self.default_db) for a, t in tables.items()}
            only = next(iter(named.values())) if len(named) == 1 else None
            for col in scope.columns:
                owner = named.get(col.table) if col.table else only
                if owner:
                    used.setdefault(owner, set()).add(col.name.lower())
            for q in named.values():
                used.setdefault(q, set())
                if any(isinstance(s, exp.Star) for s in scope.expression.expressions if hasattr(scope.expression, "expressions")):
                    star.add(q)
            eqs = _partition_equalities(scope.expression.args.get("where"))
            for q in named.values():
                t = self.tables.get(q)
                if t and t.partition_column and t.partitions and t.partition_column in eqs:
                    fraction[q] = min(fraction.get(q, 1.0), 1.0 / t.partitions)
        for q, cols in used.items():
            t = self.tables.get(q)
            if t is None:
                scan.notes.append(f"{q}: unknown table, its bytes are not counted")
                continue
            f = fraction.get(q, 1.0)
            if t.fmt == "json":
                scan.reads.append(Read(q, "json", (t.total_bytes or 0.0) * f, f, sorted(cols)))
                continue
            read_cols = sorted(t.columns) if q in star else sorted(c for c in cols if c in t.columns)
            per_row = sum(t.columns[c] for c in read_cols)
            scan.reads.append(Read(q, "parquet", t.rows * f * per_row, f, read_cols))
        self._register_output(tree, select, scan)
        return scan

    def _register_ddl(self, tree: Any) -> None:
        from sqlglot import exp

        schema = tree.this
        table = schema.this if isinstance(schema, exp.Schema) else schema
        if not isinstance(table, exp.Table):
            return
        name = _qualified(table, self.default_db)
        cols = {}
        if isinstance(schema, exp.Schema):
            for cd in schema.expressions:
                if isinstance(cd, exp.ColumnDef):
                    cols[cd.name.lower()] = _type_bytes(cd.args.get("kind"), cd.name.lower(), self.type_sizes)
        part_col, parts = None, None
        text = tree.sql(dialect="athena")
        m = re.search(r"PARTITIONED BY \((\w+)", text, re.I)
        if m:
            part_col = m.group(1).lower()
            r = re.search(rf"'projection\.{part_col}\.range'\s*=\s*'(\d+)\s*,\s*(\d+)'", text, re.I)
            parts = int(r.group(2)) - int(r.group(1)) + 1 if r else self.partitions_of(name)
            cols.setdefault(part_col, self.type_sizes("integer"))
        rows = self.rows_of(name) or 0.0
        self.add(Table(name, "parquet", rows, cols, partition_column=part_col, partitions=parts))

    def _register_output(self, tree: Any, select: Any, scan: Scan) -> None:
        from sqlglot import exp

        target = tree.this
        if isinstance(target, exp.Schema):
            target = target.this
        if not isinstance(target, exp.Table):
            return
        name = _qualified(target, self.default_db)
        scan.target = name
        main = max((r.fraction for r in scan.reads), default=1.0) if scan.reads else 1.0
        if isinstance(tree, exp.Create):
            cols = {c.lower(): self.column_bytes(c.lower()) for c in select.named_selects}
            part_col = None
            props = tree.args.get("properties")
            if props:
                for p in props.expressions:
                    if isinstance(p, exp.PartitionedByProperty):
                        found = [e.name for e in p.find_all(exp.Literal)] or [e.name for e in p.find_all(exp.Column)]
                        part_col = found[0].lower() if found else None
                    elif "partitioned_by" in p.sql().lower():
                        lits = [e.name for e in p.find_all(exp.Literal) if e.is_string]
                        part_col = lits[0].lower() if lits else part_col
            rows = self.rows_of(name)
            if rows is None:
                rows = max((self.tables[r.table].rows for r in scan.reads if r.table in self.tables), default=0.0)
                scan.notes.append(f"{name}: row count unknown; taken as its largest input's")
            self.add(Table(name, "parquet", rows, cols, partition_column=part_col,
                           partitions=self.partitions_of(name) if part_col else None))
        table = self.tables.get(name)
        if table is None:
            scan.notes.append(f"{name}: written but never created here; its size is unknown")
            return
        # A statement that reads one chunk of its input's partitions writes that chunk's rows.
        smallest = min((r.fraction for r in scan.reads), default=1.0)
        share = smallest if smallest < 1.0 else main
        scan.write_share = share
        scan.rows_written = table.rows * share
        scan.bytes_written = scan.rows_written * table.row_bytes
        if table.partitions and table.partition_column:
            scan.partitions_written = max(1, round(table.partitions * share))
        else:
            scan.partitions_written = 1
