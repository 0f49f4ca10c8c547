"""`fan_out`: run a worker once per batch id, many at once (Map state).

Inline Map runs at most 40 iterations at once and records every iteration in the parent's
25,000-event history. Past either, stepkit compiles a Distributed Map whose children are
STANDARD executions (ECS `.sync` needs STANDARD) and whose results go to S3, not the state.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from stepkit.ir.asl import TASK_FAILED_RETRY, Fragment, State
from stepkit.ir.asl import state as asl_state
from stepkit.ir.cfn import Resource
from stepkit.ir.iam import Statement
from stepkit.ir.names import RUN_ID_PATH
from stepkit.steps import _ecs, _s3
from stepkit.steps.base import DeclaredFlow, Finding, Flow, Roles
from stepkit.steps.fargate_task import ecs_findings, stage_args, task_writes, worker_flow
from stepkit.steps.batch_ids import BATCH_IDS, ITEMS_PATH
from stepkit.spec.names import WorkerArg

if TYPE_CHECKING:
    from stepkit.ir.context import Context

INLINE_MAX_CONCURRENCY = 40
HISTORY_LIMIT = 25_000
# Events one inline iteration adds: MapIterationStarted, TaskStateEntered, TaskScheduled,
# TaskStarted, TaskSubmitted, TaskSucceeded, TaskStateExited, MapIterationSucceeded.
EVENTS_PER_ITERATION = 8
# Leave room for retries and the rest of the pipeline.
HISTORY_BUDGET = HISTORY_LIMIT // 2
# A Map state's and a task's input/output is capped at 256 KiB.
PAYLOAD_LIMIT = 262_144


class FanOut(DeclaredFlow, Roles):
    """Run `task` once per batch id with `--batch-id N`, at most `batching.max_concurrency` at once."""

    type: Literal["fan_out"] = "fan_out"
    task: str = Field(description="Key in `compute.tasks`: the worker run per batch.")
    args: list[WorkerArg] = Field(default_factory=list, description="Extra arguments after --batch-id.")
    label: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_-]+$",
                              description="Distributed Map label (<= 40 characters; default: the stage name).")

    def flow(self, ctx: "Context") -> Flow:
        declared = worker_flow(self, ctx, super().flow(ctx))  # and the batch ids it maps over, from the execution's state
        return replace(declared, reads=declared.reads | {BATCH_IDS})

    @property
    def map_label(self) -> str:
        """The Distributed Map's label; it names the Map Run's child executions."""
        return self.label or self.name[:40]

    def mode(self, ctx: "Context") -> str:
        b = ctx.p.batching
        if b.map_mode != "auto":
            return b.map_mode
        crowded = b.batches * EVENTS_PER_ITERATION > HISTORY_BUDGET
        return "distributed" if b.max_concurrency > INLINE_MAX_CONCURRENCY or crowded else "inline"

    def check(self, ctx: "Context") -> list[Finding]:
        found = ecs_findings(self, ctx)
        b = ctx.p.batching
        if self.task not in ctx.p.compute.tasks:
            return found
        if b is None:
            if any("`batching`" in f.message for f in found):
                return found  # its worker's need said it already
            return [*found, Finding("error", ("type",), "a fan_out needs `batching` (how many batches, how many at "
                                    "once): the pipeline has none")]
        if not any(s.type == "batch_ids" for s in ctx.p.stages[: ctx.p.stages.index(self)]):
            found.append(Finding("error", ("type",), "needs a `batch_ids` stage before it (it maps over its ids)"))
        mode = self.mode(ctx)
        if mode == "inline" and b.max_concurrency > INLINE_MAX_CONCURRENCY:
            found.append(Finding("error", ("batching", "map_mode"), f"max_concurrency {b.max_concurrency} with an inline Map: AWS "
                                 f"runs at most {INLINE_MAX_CONCURRENCY} at once. Set batching.map_mode: distributed "
                                 "(or auto)", root=True))
        if mode == "inline" and b.batches * EVENTS_PER_ITERATION > HISTORY_BUDGET:
            found.append(Finding("error", ("batching", "map_mode"), f"{b.batches} inline iterations add ~"
                                 f"{b.batches * EVENTS_PER_ITERATION} history events; an execution fails past "
                                 f"{HISTORY_LIMIT}. Use batching.map_mode: distributed", root=True))
        if mode == "inline" and b.tolerated_failure_percentage:
            found.append(Finding("error", ("batching", "tolerated_failure_percentage"),
                                 "tolerated_failure_percentage needs a Distributed Map", root=True))
        vcpu = _ecs.vcpus(ctx, self.task) * min(b.max_concurrency, b.batches)
        if vcpu > 6:
            found.append(Finding("warning", ("task",), f"{min(b.max_concurrency, b.batches)} tasks x "
                                 f"{_ecs.vcpus(ctx, self.task):g} vCPU = {vcpu:g} vCPU at once; new accounts may "
                                 "have a Fargate On-Demand quota of 6 vCPU (L-3032A538): request an increase"))
        return found

    def _child(self, ctx: "Context") -> tuple[str, State]:
        cmd = _ecs.command(ctx, "$.run_id", [("--batch-id", "$.batch_id"), *stage_args(self, ctx), *self.args])
        state = _ecs.task(ctx, self.task, cmd)
        state["Retry"].append(TASK_FAILED_RETRY.render())
        state["End"] = True
        return f"{self.name}Batch", state

    def fragment(self, ctx: "Context") -> Fragment:
        b = ctx.p.batching
        mode = self.mode(ctx)
        child_name, child = self._child(ctx)
        state: State = asl_state("Map", self.comment)
        processor: State = {"ProcessorConfig": {"Mode": "INLINE"}}
        if mode == "distributed":
            processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}
            state["Label"] = self.map_label
        processor.update({"StartAt": child_name, "States": {child_name: child}})
        state.update(
            {
                "ItemsPath": ITEMS_PATH,
                # Evaluated in the parent: the children get the parent's run id (their own execution
                # names differ).
                "ItemSelector": {"batch_id.$": "$$.Map.Item.Value", "run_id.$": RUN_ID_PATH},
                "MaxConcurrency": b.max_concurrency,
                "ItemProcessor": processor,
            }
        )
        if mode == "distributed":
            state["ToleratedFailurePercentage"] = b.tolerated_failure_percentage
            # Children's results go to S3; the state keeps none of them (256 KiB cap).
            state["ResultWriter"] = {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": ctx.p.aws.bucket, "Prefix": f"{ctx.p.aws.prefix}/map-results"},
            }
        # Map states take no TimeoutSeconds: each child task has its own.
        state["ResultPath"] = None
        return Fragment().add(self.name, state).chain()

    def resources(self, ctx: "Context") -> list[Resource]:
        return _ecs.resources(ctx, self.task)

    def iam(self, ctx: "Context") -> list[Statement]:
        out = _ecs.statements(ctx, self.task, task_writes(self, ctx))
        if self.mode(ctx) == "distributed":
            n = ctx.names
            out += [
                # A Distributed Map starts child executions of its own state machine (docs: iam-policies-eg-dist-map).
                Statement.of("statemachine", "states:StartExecution", n.state_machine_arn),
                # Children are named execution:MACHINE/LABEL:ID; execution:MACHINE:* is the documented form.
                Statement.of("statemachine", ["states:DescribeExecution", "states:StopExecution"],
                             [n.executions_arn, n.arn("states", f"execution:{n.state_machine}:*")]),
                # The result writer (docs: input-output-resultwriter). GetObject apart: a read of the whole
                # prefix, where an Athena stage grants one, covers it and the policy drops it.
                Statement.of("statemachine", ["s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                             _s3.objects(ctx, _s3.MAP_RESULTS)),
                Statement.of("statemachine", "s3:GetObject", _s3.objects(ctx, _s3.MAP_RESULTS)),
                # A redriven parent redrives its Map Run's failed children (docs: redrive-map-run, "IAM
                # permission to redrive a Map Run"): they are named execution:MACHINE/LABEL:ID.
                Statement.of("statemachine", "states:RedriveExecution",
                             n.arn("states", f"execution:{n.state_machine}/{self.map_label}:*")),
            ]
        return out
