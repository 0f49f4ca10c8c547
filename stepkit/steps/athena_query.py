"""`athena_query`: run one Athena statement from a template (DDL such as CREATE EXTERNAL TABLE)."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from stepkit.ir.asl import Fragment, one_line
from stepkit.ir.iam import Statement
from stepkit.ir.sql import SqlStatement
from stepkit.steps import _athena
from stepkit.steps.base import Finding, Flow, Roles, Stage

if TYPE_CHECKING:
    from stepkit.ir.context import Context


class AthenaQuery(Stage, Roles):
    """Run one statement, to completion, through `athena:startQueryExecution.sync`."""

    repeatable: ClassVar[bool] = False  # its statements write files: cleaned up first (its prepare state)

    type: Literal["athena_query"] = "athena_query"
    template: str = Field(description="Jinja template of the statement: stepkit's (templates/sql/) or the "
                          "pipeline's own (its `templates:` folder); it sees what an `athena_ctas` template sees.")
    table: str | None = Field(None, description="Key in `tables` of the table the statement creates, if any.")
    timeout_minutes: int = Field(10, gt=0, le=60 * 24 * 7, description="TimeoutSeconds of the query, in minutes.")

    def tables_written(self) -> list[str]:
        return [self.table] if self.table else []

    def check(self, ctx: "Context") -> list[Finding]:
        if self.table and self.table not in ctx.p.tables.names():
            return [Finding("error", ("table",), f"{self.table!r} is not a key of `tables`")]
        return self.role_findings(ctx)

    def flow(self, ctx: "Context") -> Flow:
        (st,) = self.sql(ctx)
        used = ctx.tables_used(self.template, f"stages.{self.name}", self.roles)
        own = frozenset({self.table}) if self.table else frozenset()
        # CREATE EXTERNAL TABLE declares a table over files other stages write; other DDL changes it.
        if st.kind == "ddl" and one_line(st.sql).upper().startswith("CREATE EXTERNAL"):
            return Flow(reads=frozenset(used) - own, defines=own)
        return Flow(reads=frozenset(used) - own, writes=own)

    def sql(self, ctx: "Context") -> list[SqlStatement]:
        text = ctx.render(self.template, f"stages.{self.name}", self.roles)
        # Classified without the template's leading `--` comments (they hid the DDL before).
        kind = "ddl" if one_line(text).upper().startswith(("CREATE EXTERNAL", "DROP", "ALTER", "MSCK")) else "query"
        return [SqlStatement(self.name, self.name, kind, text, self.table)]

    def fragment(self, ctx: "Context") -> Fragment:
        (st,) = self.sql(ctx)
        return Fragment().add(self.name, _athena.task(ctx, st, self.timeout_minutes, self.comment)).chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        return _athena.statements(ctx)
