"""What every building block provides. A block is one pydantic model with these methods.

- `fragment(ctx)`: its ASL states
- `iam(ctx)`: the IAM statements those states (and the code they run) need, per role
- `sql(ctx)`: its Athena statements, if any
- `resources(ctx)`: the AWS resources (CloudFormation) its states need
- `check(ctx)`: findings about AWS limits the schema alone cannot see
- `flow(ctx)`: what it reads and changes (the compiler orders stages by it)

A block has no local code of its own: `stepkit run --local` executes its states with local stand-ins
for the services they call (stepkit/local/adapters), so a block that uses those integrations runs
locally as it is.
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
from stepkit.spec.names import AthenaIdentifier, StateName

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


@dataclass(frozen=True)
class Flow:
    """What a stage reads and changes, by name: table keys, artifacts a task declares (`model`), and
    execution state (`$batch_ids`). The compiler orders stages by it, runs independent ones side by
    side (a Parallel state), and refuses a stage that reads what no earlier stage writes."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    # Tables declared without data (an external table): a reader still needs a stage that fills it.
    defines: frozenset[str] = frozenset()
    deletes: frozenset[str] = frozenset()
    # Effects not known (a Lambda of the user's, a wait that orders by time): such a stage runs after
    # every stage before it and before every stage after it, and may have written anything.
    barrier: bool = False

    @property
    def touches(self) -> frozenset[str]:
        return self.reads | self.writes | self.defines | self.deletes

    @property
    def changes(self) -> frozenset[str]:
        return self.writes | self.defines | self.deletes


BARRIER = Flow(barrier=True)


class Stage(Model):
    """Fields every stage has. Blocks subclass this and add a `type: Literal[...]`."""

    # Registry key; also the YAML `type:` value.
    kind: ClassVar[str] = ""
    # A failed attempt may simply run again: what it wrote is overwritten, never added to. False for a
    # stage that must be cleaned up first (an Athena CTAS meets its own files, an INSERT adds rows twice).
    repeatable: ClassVar[bool] = True

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

    def flow(self, ctx: "Context") -> Flow:
        """What it reads and changes (see Flow). Unknown: a barrier."""
        return BARRIER

    def tables_written(self) -> list[str]:
        """Table keys this stage creates (for cleanup and the local catalog)."""
        return []



def roles_field() -> Any:
    return Field(
        default_factory=dict,
        description="Which table plays each role the stage's template or worker names: role -> key of `tables` "
        "(e.g. `{staging: parsed_docs}` makes the template's `tables.staging` the table `parsed_docs`). A role "
        "not listed is the key of its own name.")


class Roles(Model):
    """A stage whose template or worker names tables by role."""

    roles: dict[AthenaIdentifier, AthenaIdentifier] = roles_field()

    def table_of(self, role: str) -> str:
        """The table key playing `role` in this stage."""
        return self.roles.get(role, role)

    def role_findings(self, ctx: "Context") -> list[Finding]:
        keys = ctx.p.tables.names()
        return [Finding("error", ("roles", role), f"{key!r} is not a key of `tables` ({', '.join(keys) or 'none'})")
                for role, key in self.roles.items() if key not in keys]


class DeclaredFlow(Stage):
    """A stage whose work stepkit cannot read (a container): it says what it reads and writes."""

    reads: list[AthenaIdentifier] | None = Field(
        None, description="Tables (keys of `tables`) and artifacts (such as `model`) it reads. With `writes`, "
        "lets stepkit run it beside the stages it does not depend on, and check that an earlier stage writes "
        "each of them. Omitted: it runs after every earlier stage and before every later one.")
    writes: list[AthenaIdentifier] | None = Field(
        None, description="Tables and artifacts (such as `model`, or a file of its own) it writes; see `reads`. Its "
        "role may write the folders of those tables and, for anything else, the runs' folder (`runs/`); `[]`: "
        "nothing.")

    def flow(self, ctx: "Context") -> Flow:
        if self.reads is None and self.writes is None:
            return BARRIER
        return Flow(reads=frozenset(self.reads or ()), writes=frozenset(self.writes or ()))
