"""`athena_ctas`: build a Parquet table with CREATE TABLE AS SELECT.

Athena writes at most 100 partition x bucket combinations per statement. A table with more
partitions is written as one CTAS plus INSERT INTO statements of at most 100 partitions each
(the dbt-athena approach); a bucketed table cannot be (INSERT INTO refuses bucketed tables),
so there the compiler refuses a layout Athena would refuse.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from stepkit.ir.asl import Fragment
from stepkit.ir.iam import Statement
from stepkit.ir.sql import MAX_WRITERS, SqlStatement, sql_string
from stepkit.spec.names import ColumnName
from stepkit.steps import _athena
from stepkit.steps.base import Finding, Flow, Roles, Stage

if TYPE_CHECKING:
    from stepkit.ir.context import Context

# Each 100 partitions are one more statement and one more state: past this the definition
# approaches Step Functions' size limit and a run takes hours of serial writes.
MAX_PARTITIONS = 10_000


class AthenaCtas(Stage, Roles):
    """Create a table from a SELECT (template), stored as Parquet under the run's own location."""

    repeatable: ClassVar[bool] = False  # its statements write files: cleaned up first (its prepare state)

    type: Literal["athena_ctas"] = "athena_ctas"
    table: str = Field(description="Key in `tables` of the table to create.")
    template: str = Field(description="Jinja template of the SELECT: stepkit's (templates/sql/, e.g. "
                          "`staging.sql.j2`) or the pipeline's own (in its `templates:` folder). It sees `tables` "
                          "(every table by key, or by role: see `roles`), `locations`, `source_table`, `features`, "
                          "`target`/`targets`, `columns` and the run id (`run_id`, a string literal's content).")
    format: Literal["parquet", "orc"] = Field("parquet", description="Storage format.")
    compression: Literal["snappy", "zstd", "gzip"] = Field("snappy", description="Write compression.")
    partitioned_by: list[ColumnName] = Field(
        default_factory=list, description="Partition columns; they must come last in the SELECT list, in this order."
    )
    partitions: Annotated[int, Field(gt=0, le=MAX_PARTITIONS)] | Literal["batches", "batch_groups"] | None = Field(
        None,
        description="How many partitions the table gets: a number, `batches` (one per prediction batch) or "
        "`batch_groups` (one per 100 batches). Needed to respect Athena's 100-writer limit. At most "
        f"{MAX_PARTITIONS:,} (written {MAX_WRITERS} per statement, one state each).",
    )
    bucketed_by: list[ColumnName] = Field(default_factory=list, description="Bucket columns.")
    bucket_count: int | None = Field(None, gt=0, description="Number of buckets (with `bucketed_by`).")
    timeout_minutes: int = Field(30, gt=0, le=60 * 24 * 7, description="TimeoutSeconds of each query, in minutes.")

    @model_validator(mode="after")
    def _layout(self) -> "AthenaCtas":
        if bool(self.bucketed_by) != bool(self.bucket_count):
            raise ValueError("`bucketed_by` and `bucket_count` go together")
        if self.partitions is not None and len(self.partitioned_by) != 1:
            raise ValueError("`partitions` needs exactly one `partitioned_by` column (integer values 0..N-1)")
        return self

    def tables_written(self) -> list[str]:
        return [self.table]

    def flow(self, ctx: "Context") -> Flow:
        where = f"stages.{self.name}"
        used: set[str] = set()
        for chunk in self.chunks(ctx) or [None]:
            used |= ctx.tables_used(self.template, where, self.roles, **({"chunk": chunk} if chunk else {}))
        return Flow(reads=frozenset(used - {self.table}), writes=frozenset({self.table}))

    def partition_count(self, ctx: "Context") -> int | None:
        if self.partitions in ("batches", "batch_groups") and ctx.p.batching is None:
            return None
        if self.partitions == "batches":
            return ctx.p.batching.batches
        if self.partitions == "batch_groups":
            return ctx.batch_groups
        return self.partitions

    def writers(self, ctx: "Context") -> int | None:
        """Partition x bucket combinations the whole table has."""
        parts = self.partition_count(ctx) if self.partitioned_by else 1
        return None if parts is None else parts * (self.bucket_count or 1)

    def check(self, ctx: "Context") -> list[Finding]:
        found = []
        if self.table not in ctx.p.tables.names():
            found.append(Finding("error", ("table",), f"{self.table!r} is not a key of `tables` "
                                 f"({', '.join(ctx.p.tables.names()) or 'none'})"))
            return found
        found += self.role_findings(ctx)
        if self.partitions in ("batches", "batch_groups") and ctx.p.batching is None:
            found.append(Finding("error", ("partitions",), f"partitions: {self.partitions} counts prediction batches: "
                                 "the pipeline has no `batching`"))
        if found:
            return found
        parts = self.partition_count(ctx)
        if self.partitioned_by and parts is not None and parts > MAX_PARTITIONS:
            found.append(Finding("error", ("partitions",), f"{parts:,} partitions; stepkit writes at most "
                                 f"{MAX_PARTITIONS:,} per table ({MAX_WRITERS} per statement, one state each)"))
            return found
        writers = self.writers(ctx)
        if self.bucket_count and writers is not None and writers > MAX_WRITERS:
            found.append(Finding("error", ("bucket_count",),
                                 f"{writers} partition x bucket combinations; Athena writes at most {MAX_WRITERS} per "
                                 "statement and cannot INSERT INTO a bucketed table. Partition by the column instead "
                                 "(with `partitions:`), stepkit then writes 100 partitions per statement"))
        if self.partitioned_by and self.partitions is None:
            found.append(Finding("warning", ("partitions",),
                                 "unknown partition count: Athena fails past 100 partitions per statement "
                                 "(HIVE_TOO_MANY_OPEN_PARTITIONS); set `partitions:` so stepkit can split the writes"))
        return found

    def chunks(self, ctx: "Context") -> list[dict[str, int]] | None:
        """Partition ranges, one per statement, when the table has more than 100 writers."""
        parts = self.partition_count(ctx)
        if not self.partitioned_by or parts is None or parts <= MAX_WRITERS or self.bucket_count:
            return None
        per = MAX_WRITERS
        return [
            {"index": i, "lo": lo, "hi": min(lo + per, parts) - 1, "count": math.ceil(parts / per)}
            for i, lo in enumerate(range(0, parts, per))
        ]

    def _properties(self, ctx: "Context") -> str:
        props = [
            f"format = {sql_string(self.format.upper())}",
            f"write_compression = {sql_string(self.compression.upper())}",
            f"external_location = {sql_string(ctx.names.table_location(self.table))}",
        ]
        if self.partitioned_by:
            props.append("partitioned_by = ARRAY[" + ", ".join(sql_string(c) for c in self.partitioned_by) + "]")
        if self.bucketed_by:
            props.append("bucketed_by = ARRAY[" + ", ".join(sql_string(c) for c in self.bucketed_by) + "]")
            props.append(f"bucket_count = {self.bucket_count}")
        return "WITH (\n  " + ",\n  ".join(props) + "\n)"

    def sql(self, ctx: "Context") -> list[SqlStatement]:
        where = f"stages.{self.name}"
        target = ctx.table(self.table)
        chunks = self.chunks(ctx)
        if chunks is None:
            select = ctx.render(self.template, where, self.roles)
            body = f"CREATE TABLE {target}\n{self._properties(ctx)} AS\n{select}"
            return [SqlStatement(self.name, self.name, "ctas", body, self.table)]
        out = []
        seen: set[str] = set()
        for chunk in chunks:
            select = ctx.render(self.template, where, self.roles, chunk=chunk)
            if select in seen:
                from stepkit.errors import SpecError

                raise SpecError(f"{where}.template: {self.template} must filter rows by `chunk.lo`/`chunk.hi` "
                                f"(the table has more than {MAX_WRITERS} partitions, written in chunks)")
            seen.add(select)
            if chunk["index"] == 0:
                body = f"CREATE TABLE {target}\n{self._properties(ctx)} AS\n{select}"
                out.append(SqlStatement(self.name, self.name, "ctas", body, self.table))
            else:
                body = f"INSERT INTO {target}\n{select}"
                name = f"{self.name}.{chunk['index']:02d}"
                out.append(SqlStatement(name, self.name, "insert", body, self.table))
        return out

    def fragment(self, ctx: "Context") -> Fragment:
        frag = Fragment()
        statements = self.sql(ctx)
        for i, st in enumerate(statements):
            name = self.name if i == 0 else f"{self.name}_Insert{i:02d}"
            comment = self.comment if i == 0 else f"{self.name}: partitions {st.name.split('.')[-1]} of {len(statements) - 1}"
            if i == 0 and len(statements) > 1:
                comment = (self.comment + " " if self.comment else "") + (
                    f"Written in {len(statements)} statements: Athena writes at most {MAX_WRITERS} partitions each.")
            frag.add(name, _athena.task(ctx, st, self.timeout_minutes, comment))
        return frag.chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        return _athena.statements(ctx)
