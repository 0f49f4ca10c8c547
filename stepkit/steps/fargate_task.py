"""`fargate_task`: run one container on Fargate and wait for it (`ecs:runTask.sync`).

The container is stepkit's worker of the task (`stepkit.workers.<task>`: training), a module of
the user's own image (`compute.tasks.NAME.module`), or the user's image running the user's own
`command`."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from stepkit.ir.asl import Fragment
from stepkit.ir.cfn import Resource
from stepkit.ir.iam import Statement
from stepkit.ir.names import RUN_ID_PATH
from stepkit.spec.names import WorkerArg
from stepkit.steps import _ecs, _workers
from stepkit.steps.base import DeclaredFlow, Finding, Flow, Roles

if TYPE_CHECKING:
    from stepkit.ir.context import Context


class FargateTask(DeclaredFlow, Roles):
    """One container run, e.g. model training. Gets `--config URI --run-id RUN` plus `args`, or runs `command`."""

    type: Literal["fargate_task"] = "fargate_task"
    task: str = Field(description="Key in `compute.tasks`: the task definition (and worker image) to run.")
    args: list[WorkerArg] = Field(default_factory=list, description="Extra arguments after --config and --run-id.")
    command: list[WorkerArg] | None = Field(
        None, min_length=1, description="The container's command, for a task with its own `image` (e.g. "
        "`[python, export.py, --day, '{run_id}']`; ECS overrides the image's CMD: an ENTRYPOINT, if the image has "
        "one, gets it as arguments). `{run_id}` and `{config}` (the worker config's URI) are filled in, and the "
        "container also gets them as STEPKIT_RUN_ID and STEPKIT_CONFIG. A local run runs it here, in the pipeline "
        "file's folder (`python` is this Python). Say what it reads and writes in `reads`/`writes`.")

    @model_validator(mode="after")
    def _one_command(self) -> "FargateTask":
        if self.command is not None and self.args:
            raise ValueError("`args` follow stepkit's own command; with `command`, write them into it")
        return self

    def check(self, ctx: "Context") -> list[Finding]:
        return ecs_findings(self, ctx)

    def flow(self, ctx: "Context") -> Flow:
        return worker_flow(self, ctx, super().flow(ctx))

    def fragment(self, ctx: "Context") -> Fragment:
        env = None
        if self.command is not None:
            cmd = _ecs.user_command(ctx, list(self.command), RUN_ID_PATH)
            env = _ecs.environment(ctx, RUN_ID_PATH)
        else:
            cmd = _ecs.command(ctx, RUN_ID_PATH, [*stage_args(self, ctx), *self.args])
        return Fragment().add(self.name, _ecs.task(ctx, self.task, cmd, self.comment, env)).chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        return _ecs.statements(ctx, self.task, task_writes(self, ctx))

    def resources(self, ctx: "Context") -> list[Resource]:
        return _ecs.resources(ctx, self.task)


def task_writes(stage, ctx: "Context") -> frozenset[str] | None:
    """What the task writes, as far as it is known (declared, or its stepkit worker's): it bounds the
    task role's writes. None: not known (a user's module that declares nothing)."""
    f = stage.flow(ctx)
    return None if f.barrier else frozenset(f.writes)


def stage_args(stage, ctx: "Context") -> list[str]:
    """stepkit's workers learn their stage (its roles and settings) from `--stage`; others get nothing more."""
    return ["--stage", stage.name] if _workers.worker(ctx.p, stage.task) else []


def worker_flow(stage, ctx: "Context", declared: Flow) -> Flow:
    """The declared flow, and what stepkit's worker (if the task runs one) reads and writes, by role."""
    w = _workers.worker(ctx.p, stage.task) if stage.task in ctx.p.compute.tasks else None
    if w is None:
        return declared
    reads = frozenset(stage.table_of(r) for r in w.reads)
    writes = frozenset(stage.table_of(r) for r in w.writes)
    return replace(declared, reads=declared.reads | reads, writes=declared.writes | writes, barrier=False)


def ecs_findings(stage, ctx: "Context") -> list[Finding]:
    """What a stage running a Fargate task checks: the task, its worker's needs, roles and command."""
    p = ctx.p
    if stage.task not in p.compute.tasks:
        return [Finding("error", ("task",), f"{stage.task!r} is not a key of `compute.tasks` "
                        f"({', '.join(p.compute.tasks) or 'none'})")]
    found = stage.role_findings(ctx)
    w = _workers.worker(p, stage.task)
    spec = p.compute.tasks[stage.task]
    if getattr(stage, "command", None) is not None:
        if not spec.image:
            found.append(Finding("error", ("command",), f"a `command` runs the task's own image: set "
                                 f"compute.tasks.{stage.task}.image (stepkit's image runs stepkit.workers.{stage.task})"))
        return found
    if w is None:
        return found
    module = _workers.module_of(p, stage.task)
    for section in _workers.missing_sections(p, w.needs):
        found.append(Finding("error", ("task",), f"task {stage.task!r} runs {module}, which needs `{section}`: "
                             "the pipeline has none"))
    if w.batch != (stage.type == "fan_out"):
        found.append(Finding("error", ("task",), f"{module} runs " + (
            "once per batch: use it in a `fan_out` stage" if w.batch else "once per run: use it in a `fargate_task` "
            "stage")))
    keys = p.tables.names()
    for role in w.reads + w.writes:
        if role in _workers.ARTIFACTS or stage.table_of(role) in keys:
            continue
        where = ("roles", role) if role in stage.roles else ("task",)
        found.append(Finding("error", where, f"{module} {'reads' if role in w.reads else 'writes'} the table of "
                             f"role {role!r}: no key {stage.table_of(role)!r} in `tables` (map it with the stage's "
                             f"`roles: {{{role}: KEY}}`)"))
    return found
