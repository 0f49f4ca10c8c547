"""`existing_model`: use the model of an earlier run instead of training one (re-scoring).

Runs stepkit's training worker (the task's image) in its re-use mode: it picks the run (a run id,
or `latest`: the latest run whose models passed the quality gate), checks each target's model
against the pipeline (the same features, encoded the same way; the same kind of target) before
it copies anything, and copies the models into this run's models folder, where prediction reads
them. A changed feature list is one error, and the stage fails before any later stage runs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from stepkit.ir.asl import Fragment
from stepkit.ir.cfn import Resource
from stepkit.ir.iam import Statement
from stepkit.ir.names import RUN_ID_PATH
from stepkit.spec.names import S3Prefix
from stepkit.steps import _ecs, _workers
from stepkit.steps.base import Finding, Flow, Stage

if TYPE_CHECKING:
    from stepkit.ir.context import Context

TRAINING = "stepkit.workers.training"


class ExistingModel(Stage):
    """Writes `model` (what a fan-out of stepkit's prediction reads) from an earlier run's models."""

    type: Literal["existing_model"] = "existing_model"
    run: str = Field(
        "latest", pattern=r"^[A-Za-z0-9_-]{1,80}$",
        description="The earlier run whose models to use (its execution name, as `stepkit runs` lists it), or "
        "`latest`: the latest run whose models passed the quality gate. `${MODEL_RUN:-latest}` makes it a run "
        "option (`--var MODEL_RUN=...`).")
    task: str = Field("training", description="Key in `compute.tasks` whose image runs stepkit's training worker "
                      "(it checks and copies the models).")
    from_prefix: S3Prefix | None = Field(
        None, description="`aws.prefix` of the pipeline whose runs trained the model, in the same bucket (default: "
        "this pipeline's own); read only. A local run looks in its work folder, where every pipeline run there "
        "keeps its runs.")

    def check(self, ctx: "Context") -> list[Finding]:
        p = ctx.p
        if self.task not in p.compute.tasks:
            return [Finding("error", ("task",), f"{self.task!r} is not a key of `compute.tasks` "
                            f"({', '.join(p.compute.tasks) or 'none'})")]
        if _workers.module_of(p, self.task) != TRAINING:
            return [Finding("error", ("task",), f"task {self.task!r} runs {_workers.module_of(p, self.task)}: an "
                            f"existing_model stage runs {TRAINING}, which checks the model before it copies it")]
        return [Finding("error", ("type",), f"an existing_model stage checks the model against `{section}`: the "
                        "pipeline has none") for section in _workers.missing_sections(p, ("target", "features"))]

    def flow(self, ctx: "Context") -> Flow:
        return Flow(writes=frozenset({"model"}))

    def fragment(self, ctx: "Context") -> Fragment:
        cmd = _ecs.command(ctx, RUN_ID_PATH, ["--stage", self.name])
        return Fragment().add(self.name, _ecs.task(ctx, self.task, cmd, self.comment)).chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        out = _ecs.statements(ctx, self.task, frozenset({"model"}))  # it writes this run's models only
        if self.from_prefix and self.from_prefix != ctx.p.aws.prefix:
            bucket, runs = ctx.p.aws.bucket, f"{self.from_prefix}/runs"
            out += [Statement.of("task", "s3:ListBucket", f"arn:aws:s3:::{bucket}",
                                 conditions={"StringLike": {"s3:prefix": [f"{runs}/*", runs]}}),
                    Statement.of("task", "s3:GetObject", f"arn:aws:s3:::{bucket}/{runs}/*")]
        return out

    def resources(self, ctx: "Context") -> list[Resource]:
        return _ecs.resources(ctx, self.task)
