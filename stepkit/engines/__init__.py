"""Engines run the pipeline's Athena SQL: Athena itself on AWS, DuckDB locally.

Both satisfy `Engine`, so blocks and the runner never ask which one they have. SQL handed to
`execute` is final text (the run id already substituted) in Athena's dialect.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from stepkit.errors import StepkitError


class QueryError(StepkitError):
    """A statement the engine refused or could not run. The message names the statement's table
    (or its first line) and, for Athena's own limits, carries Athena's error code."""


@dataclass(frozen=True)
class QueryResult:
    kind: str  # "ctas", "insert", "ddl", "drop", "select"
    seconds: float
    rows_written: int | None = None  # rows a CTAS or INSERT INTO wrote; None for other statements
    columns: list[str] = field(default_factory=list)  # SELECT only
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # SELECT only
    table: str | None = None  # "database.table" the statement created, wrote or dropped
    writers: int | None = None  # partition x bucket combinations written (CTAS / INSERT INTO)


# Columns are (name, Athena type) pairs, e.g. ("id", "string"), ("batch_id", "int").
Columns = Sequence[tuple[str, str]]


@runtime_checkable
class Engine(Protocol):
    def execute(self, sql: str) -> QueryResult:
        """Run one Athena statement to completion."""

    def register_table(
        self,
        database: str,
        name: str,
        location: str,
        columns: Columns | None = None,
        partitioned_by: Sequence[str] = (),
    ) -> None:
        """Declare an existing table (the pipeline's source) over the files at `location`."""

    def drop_table(self, database: str, name: str) -> bool:
        """Forget a table (its files stay, as Athena's DROP TABLE of an external table). False if absent."""

    def table_location(self, database: str, name: str) -> str | None:
        """Where the table's files live, or None when the table does not exist."""

    def row_count(self, database: str, name: str) -> int:
        """Rows the table holds now."""

    def set_threads(self, threads: int | None) -> None:
        """Cores the engine may use from now on (None: its default). A local run lends one to a
        worker process that runs beside the engine's statements."""

    def close(self) -> None: ...


__all__ = ["Columns", "Engine", "QueryError", "QueryResult"]
