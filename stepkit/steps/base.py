"""What every building block provides. A block is one pydantic model with these methods.

- `fragment(ctx)`: its ASL states
- `iam(ctx)`: the IAM statements those states (and the code they run) need, per role
- `sql(ctx)`: its Athena statements, if any
- `resources(ctx)`: the AWS resources (CloudFormation) its states need
- `check(ctx)`: findings about AWS limits the schema alone cannot see
- `run_local(ctx)`: how it runs on the embedded engine (`stepkit run --local`)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from stepkit.ir.asl import Fragment
from stepkit.ir.cfn import Resource
from stepkit.ir.iam import Statement
from stepkit.ir.sql import SqlStatement
from stepkit.spec.models import Model
from stepkit.spec.names import StateName

if TYPE_CHECKING:
    from stepkit.ir.context import Context


@dataclass(frozen=True)
class Finding:
    """A problem found after schema validation. `loc` is relative to the stage."""

    level: Literal["error", "warning"]
    loc: tuple[Any, ...]
    message: str
    # True: `loc` starts at the top of the file (the value at fault is a pipeline setting, not the stage's).
    root: bool = False


class Stage(Model):
    """Fields every stage has. Blocks subclass this and add a `type: Literal[...]`."""

    # Registry key; also the YAML `type:` value.
    kind: ClassVar[str] = ""

    name: StateName = Field(description="State name in the state machine (unique, at most 80 characters).")
    comment: str | None = Field(None, description="Shown as the state's Comment.")

    def fragment(self, ctx: "Context") -> Fragment:
        raise NotImplementedError

    def iam(self, ctx: "Context") -> list[Statement]:
        return []

    def sql(self, ctx: "Context") -> list[SqlStatement]:
        return []

    def resources(self, ctx: "Context") -> list[Resource]:
        """The AWS resources its states need (a task definition, a function): the template is their union."""
        return []

    def check(self, ctx: "Context") -> list[Finding]:
        return []

    def tables_written(self) -> list[str]:
        """Table keys this stage creates (for cleanup and the local catalog)."""
        return []

    def run_local(self, ctx: Any) -> dict[str, Any]:
        raise NotImplementedError(f"{self.type} has no local execution yet")  # type: ignore[attr-defined]
