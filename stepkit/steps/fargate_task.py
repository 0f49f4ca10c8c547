"""`fargate_task`: run one worker container on Fargate and wait for it (`ecs:runTask.sync`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from stepkit.ir.asl import Fragment
from stepkit.ir.cfn import Resource
from stepkit.ir.iam import Statement
from stepkit.ir.names import RUN_ID_PATH
from stepkit.spec.names import WorkerArg
from stepkit.steps import _ecs
from stepkit.steps.base import DeclaredFlow, Finding

if TYPE_CHECKING:
    from stepkit.ir.context import Context


class FargateTask(DeclaredFlow):
    """One container run, e.g. model training. Gets `--config URI --run-id RUN` plus `args`."""

    type: Literal["fargate_task"] = "fargate_task"
    task: str = Field(description="Key in `compute.tasks`: the task definition (and worker image) to run.")
    args: list[WorkerArg] = Field(default_factory=list, description="Extra arguments after --config and --run-id.")

    def check(self, ctx: "Context") -> list[Finding]:
        if self.task not in ctx.p.compute.tasks:
            return [Finding("error", ("task",), f"{self.task!r} is not a key of `compute.tasks` "
                            f"({', '.join(ctx.p.compute.tasks)})")]
        return []

    def fragment(self, ctx: "Context") -> Fragment:
        cmd = _ecs.command(ctx, RUN_ID_PATH, list(self.args))
        return Fragment().add(self.name, _ecs.task(ctx, self.task, cmd, self.comment)).chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        return _ecs.statements(ctx, self.task, None if self.writes is None and self.reads is None
                               else frozenset(self.writes or ()))

    def resources(self, ctx: "Context") -> list[Resource]:
        return _ecs.resources(ctx, self.task)
