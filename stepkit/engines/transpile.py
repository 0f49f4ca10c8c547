"""Read one Athena statement into what the local engine needs: its kind, target table, CTAS
properties or DDL columns, and the query as DuckDB SQL (with Athena's semantics, see shims.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from stepkit.compiler.sqlcheck import refusal
from stepkit.engines import QueryError
from stepkit.engines.shims import rewrite

# Hive / Athena DDL type -> DuckDB type (sqlglot's DataType names on the left).
_DUCK_TYPES = {
    "TEXT": "VARCHAR", "VARCHAR": "VARCHAR", "CHAR": "VARCHAR", "INT": "INTEGER", "BIGINT": "BIGINT",
    "SMALLINT": "SMALLINT", "TINYINT": "TINYINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN",
    "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "BINARY": "BLOB", "VARBINARY": "BLOB",
}
# Athena's names for the same, for register_table(columns=[(name, "string"), ...]).
ATHENA_TYPES = {"string": "VARCHAR", "varchar": "VARCHAR", "int": "INTEGER", "integer": "INTEGER",
                "bigint": "BIGINT", "smallint": "SMALLINT", "tinyint": "TINYINT", "double": "DOUBLE",
                "float": "FLOAT", "real": "FLOAT", "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP",
                "binary": "BLOB", "varbinary": "BLOB"}


@dataclass
class Statement:
    kind: str  # "ctas", "insert", "external", "drop", "select"
    database: str | None = None
    table: str | None = None
    query: exp.Expression | None = None  # the SELECT (ctas, insert, select), Athena tree
    properties: dict[str, object] = field(default_factory=dict)  # CTAS WITH (...) / TBLPROPERTIES
    columns: list[tuple[str, str]] = field(default_factory=list)  # external: (name, DuckDB type)
    partition_columns: list[tuple[str, str]] = field(default_factory=list)  # external PARTITIONED BY
    location: str | None = None
    if_exists: bool = False  # DROP TABLE IF EXISTS / CREATE ... IF NOT EXISTS

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.table}"

    def duckdb_sql(self) -> str:
        """The query in DuckDB's dialect."""
        assert self.query is not None
        return rewrite(self.query).sql(dialect="duckdb")

    def source_tables(self) -> list[tuple[str, str]]:
        """(database, table) of every table the query reads, CTE names excluded."""
        if self.query is None:
            return []
        ctes = {c.alias_or_name.lower() for c in self.query.find_all(exp.CTE)}
        out = []
        for t in self.query.find_all(exp.Table):
            if not t.name or (not t.db and t.name.lower() in ctes):
                continue
            key = (t.db.lower(), t.name.lower())
            if key not in out:
                out.append(key)
        return out


def summary(sql: str) -> str:
    """The statement's first line of code, for messages."""
    for line in sql.splitlines():
        line = line.strip()
        if line and not line.startswith("--"):
            return line[:100]
    return "(empty statement)"


def parse(sql: str, default_database: str | None = None) -> Statement:
    try:
        trees = [t for t in sqlglot.parse(sql, read="athena") if t is not None]
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        raise QueryError(f"{summary(sql)}: does not parse as Athena SQL: "
                         f"{first.get('description', str(e))} (line {first.get('line', '?')})") from None
    except SqlglotError as e:  # e.g. an unterminated string literal
        raise QueryError(f"{summary(sql)}: does not parse as Athena SQL: {str(e).splitlines()[0]}") from None
    if len(trees) != 1:
        raise QueryError(f"{summary(sql)}: holds {len(trees)} statements; Athena runs exactly one per query")
    tree = trees[0]
    refused = refusal(tree)  # what sqlglot and DuckDB accept but Athena does not
    if refused:
        raise QueryError(f"{summary(sql)}: {refused}")
    if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "TABLE":
        return _create(tree, sql, default_database)
    if isinstance(tree, exp.Insert):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        db, name = _name(target, default_database, sql)
        if isinstance(tree.this, exp.Schema):
            raise QueryError(f"{db}.{name}: INSERT INTO with a column list is not supported locally; "
                             "select the table's columns in order instead")
        return Statement("insert", db, name, query=tree.expression)
    if isinstance(tree, exp.Drop) and (tree.args.get("kind") or "").upper() == "TABLE":
        db, name = _name(tree.this if not tree.args.get("tables") else tree.args["tables"][0], default_database, sql)
        return Statement("drop", db, name, if_exists=bool(tree.args.get("exists")))
    if isinstance(tree, exp.Query):
        return Statement("select", query=tree)
    raise QueryError(f"{summary(sql)}: the local engine runs CREATE TABLE AS, INSERT INTO, CREATE EXTERNAL TABLE, "
                     f"DROP TABLE and SELECT; not {type(tree).__name__.upper()}")


def _name(table: exp.Expression, default_database: str | None, sql: str) -> tuple[str, str]:
    if not isinstance(table, exp.Table) or not table.name:
        raise QueryError(f"{summary(sql)}: expected a table name")
    db = table.db or default_database
    if not db:
        raise QueryError(f"{summary(sql)}: table {table.name} needs a database (database.table)")
    return db.lower(), table.name.lower()


def _value(node: exp.Expression) -> object:
    if isinstance(node, exp.Array):
        return [_value(e) for e in node.expressions]
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else int(node.this) if node.this.isdigit() else float(node.this)
    if isinstance(node, (exp.Var, exp.Identifier, exp.Column)):
        return node.name
    return node.sql("athena")


def _duck_type(kind: exp.DataType) -> str:
    name = kind.this.name
    return _DUCK_TYPES.get(name, kind.sql("duckdb"))


def _create(tree: exp.Create, sql: str, default_database: str | None) -> Statement:
    schema = tree.this if isinstance(tree.this, exp.Schema) else None
    db, name = _name(schema.this if schema else tree.this, default_database, sql)
    props: dict[str, object] = {}
    external = False
    partition_columns: list[tuple[str, str]] = []
    location = None
    for p in (tree.args.get("properties") or exp.Properties(expressions=[])).expressions:
        if isinstance(p, exp.ExternalProperty):
            external = True
        elif isinstance(p, exp.FileFormatProperty):
            props["format"] = str(_value(p.this)).lower()
        elif isinstance(p, exp.LocationProperty):
            location = str(_value(p.this))
        elif isinstance(p, exp.PartitionedByProperty):
            if isinstance(p.this, exp.Schema):  # Hive DDL: PARTITIONED BY (col type, ...)
                partition_columns = [(c.name.lower(), _duck_type(c.args["kind"])) for c in p.this.expressions]
            else:  # CTAS: partitioned_by = ARRAY['col', ...]
                props["partitioned_by"] = [str(v).lower() for v in _value(p.this)]
        elif isinstance(p, exp.Property):
            key = p.name.lower() if not isinstance(p.this, exp.Literal) else p.this.this
            props[key] = _value(p.args["value"])
    exists = bool(tree.args.get("exists"))
    if tree.expression is not None:
        if "external_location" in props:
            location = str(props.pop("external_location"))
        return Statement("ctas", db, name, query=tree.expression, properties=props, location=location, if_exists=exists)
    if not schema:
        raise QueryError(f"{db}.{name}: CREATE TABLE needs a column list or AS SELECT")
    if not external and not location:
        raise QueryError(f"{db}.{name}: Athena creates only EXTERNAL tables with a LOCATION, or tables AS SELECT")
    if not location:
        raise QueryError(f"{db}.{name}: CREATE EXTERNAL TABLE needs a LOCATION")
    columns = [(c.name.lower(), _duck_type(c.args["kind"])) for c in schema.expressions if isinstance(c, exp.ColumnDef)]
    return Statement("external", db, name, properties=props, columns=columns,
                     partition_columns=partition_columns, location=location, if_exists=exists)
