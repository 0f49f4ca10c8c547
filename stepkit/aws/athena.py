"""Athena as a `stepkit.engines.Engine`: the same interface the local DuckDB engine offers.

`stepkit results` runs through it; so can anything else that needs the pipeline's tables on AWS.
Tables live in the Glue catalog, so catalog questions go to Glue and queries to Athena.
"""
from __future__ import annotations

import re
import time
from typing import Any, Sequence

from stepkit.aws.session import Session
from stepkit.engines import Columns, QueryError, QueryResult

DONE = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _kind(sql: str) -> str:
    head = re.sub(r"^\s*(--[^\n]*\n\s*)*", "", sql).lower()
    if re.match(r"create\s+table\b.*\bas\b", head, re.S):
        return "ctas"
    for prefix, kind in (("insert", "insert"), ("drop", "drop"), ("select", "select"), ("with", "select")):
        if head.startswith(prefix):
            return kind
    return "ddl"


def _first_line(sql: str) -> str:
    lines = [l.strip() for l in sql.strip().splitlines() if l.strip() and not l.strip().startswith("--")]
    return (lines[0] if lines else "")[:80]


class AthenaEngine:
    def __init__(self, session: Session, workgroup: str, output_location: str, database: str,
                 poll_seconds: float = 1.0, timeout_seconds: float = 3600):
        self.athena = session.client("athena")
        self.glue = session.client("glue")
        self.workgroup, self.output, self.database = workgroup, output_location, database
        self.poll, self.timeout = poll_seconds, timeout_seconds

    def execute(self, sql: str) -> QueryResult:
        started = time.monotonic()
        qid = self.athena.start_query_execution(
            QueryString=sql, WorkGroup=self.workgroup, QueryExecutionContext={"Database": self.database},
            ResultConfiguration={"OutputLocation": self.output})["QueryExecutionId"]
        while True:
            q = self.athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
            state = q["Status"]["State"]
            if state in DONE:
                break
            if time.monotonic() - started > self.timeout:
                self.athena.stop_query_execution(QueryExecutionId=qid)
                raise QueryError(f"athena query {qid} ({_first_line(sql)}): still {state} after {self.timeout:.0f} s; stopped")
            time.sleep(self.poll)
        if state != "SUCCEEDED":
            reason = q["Status"].get("StateChangeReason", "no reason given")
            code = q["Status"].get("AthenaError", {}).get("ErrorType")
            raise QueryError(f"athena query {qid} {state} ({_first_line(sql)}): {reason}" + (f" [{code}]" if code else ""))
        kind = _kind(sql)
        columns: list[str] = []
        rows: list[tuple[Any, ...]] = []
        if kind == "select":
            columns, rows = self._results(qid)
        return QueryResult(kind, time.monotonic() - started, columns=columns, rows=rows)

    def _results(self, qid: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        columns: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for page in self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=qid):
            rs = page.get("ResultSet", {})
            if not columns:
                columns = [c.get("Name", c.get("Label", "")) for c in rs.get("ResultSetMetadata", {}).get("ColumnInfo", [])]
            for r in rs.get("Rows", []):
                rows.append(tuple(d.get("VarCharValue") for d in r.get("Data", [])))
        # Athena repeats the column names as the first row of a SELECT's results.
        if rows and columns and list(rows[0]) == columns:
            rows = rows[1:]
        return columns, rows

    def register_table(self, database: str, name: str, location: str, columns: Columns | None = None,
                       partitioned_by: Sequence[str] = ()) -> None:
        """A Parquet table in Glue over `location` (the form stepkit's own tables take)."""
        cols = [{"Name": n, "Type": t} for n, t in (columns or []) if n not in partitioned_by]
        parts = [{"Name": n, "Type": t} for n, t in (columns or []) if n in partitioned_by]
        self.drop_table(database, name)
        self.glue.create_table(DatabaseName=database, TableInput={
            "Name": name, "TableType": "EXTERNAL_TABLE", "PartitionKeys": parts,
            "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {
                "Columns": cols, "Location": location,
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}})

    def drop_table(self, database: str, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.glue.raw.delete_table(DatabaseName=database, Name=name)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "EntityNotFoundException":
                return False
            raise QueryError(f"glue:DeleteTable {database}.{name}: {e.response['Error'].get('Message', e)}") from None

    def table_location(self, database: str, name: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            table = self.glue.raw.get_table(DatabaseName=database, Name=name)["Table"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "EntityNotFoundException":
                return None
            raise QueryError(f"glue:GetTable {database}.{name}: {e.response['Error'].get('Message', e)}") from None
        return table.get("StorageDescriptor", {}).get("Location")

    def row_count(self, database: str, name: str) -> int:
        result = self.execute(f"SELECT count(*) AS n FROM {database}.{name}")
        if not result.rows or result.rows[0][0] is None:
            raise QueryError(f"{database}.{name}: Athena returned no row count")
        return int(result.rows[0][0])

    def close(self) -> None:
        pass
