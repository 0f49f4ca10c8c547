"""`athena_query`: run one Athena statement from a template (DDL such as CREATE EXTERNAL TABLE)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from stepkit.compiler.asl import Fragment, one_line
from stepkit.compiler.iam import Statement
from stepkit.compiler.sql import SqlStatement
from stepkit.steps import _athena
from stepkit.steps.base import Finding, Stage

if TYPE_CHECKING:
    from stepkit.compiler.context import Context


class AthenaQuery(Stage):
    """Run one statement, to completion, through `athena:startQueryExecution.sync`."""

    type: Literal["athena_query"] = "athena_query"
    template: str = Field(description="Jinja template of the statement, in templates/sql/.")
    table: str | None = Field(None, description="Key in `tables` of the table the statement creates, if any.")
    timeout_minutes: int = Field(10, gt=0, le=60 * 24 * 7, description="TimeoutSeconds of the query, in minutes.")

    def tables_written(self) -> list[str]:
        return [self.table] if self.table else []

    def check(self, ctx: "Context") -> list[Finding]:
        if self.table and self.table not in ctx.p.tables.names():
            return [Finding("error", ("table",), f"{self.table!r} is not a key of `tables`")]
        return []

    def sql(self, ctx: "Context") -> list[SqlStatement]:
        text = ctx.render(self.template, f"stages.{self.name}")
        # Classified without the template's leading `--` comments (they hid the DDL before).
        kind = "ddl" if one_line(text).upper().startswith(("CREATE EXTERNAL", "DROP", "ALTER", "MSCK")) else "query"
        return [SqlStatement(self.name, self.name, kind, text, self.table)]

    def fragment(self, ctx: "Context") -> Fragment:
        (st,) = self.sql(ctx)
        return Fragment().add(self.name, _athena.task(ctx, st, self.timeout_minutes, self.comment)).chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        return _athena.statements(ctx)

    def run_local(self, ctx: Any) -> dict[str, Any]:
        """Run the statement on the local engine; rows_out counts what it wrote or returned."""
        (st,) = self.sql(ctx.compile)
        result = ctx.engine.execute(st.text(ctx.run_id))
        rows = result.rows_written if result.rows_written is not None else len(result.rows)
        return {"rows_out": rows, "statements": 1}
