"""`cleanup`: drop tables and delete their S3 data (DROP TABLE alone leaves the data behind).

Runs as stepkit's cleanup Lambda (`workers/cleanup`): Glue DeleteTable plus S3 deletes, only
under the pipeline's own `tables/` prefix. Also used for the failure path and PreCleanup.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from stepkit.ir.asl import CLEANUP_RETRY, Fragment
from stepkit.ir.cfn import PARAM_CODE_KEY, Output, Resource, get_att, log_group, parameter, ref, role_id
from stepkit.ir.iam import Statement
from stepkit.ir.names import CLEANUP_FUNCTION, RUN_ID_PATH
from stepkit.steps.base import Finding, Flow, Stage
from stepkit.steps.lambda_invoke import invoke, invoke_statement

if TYPE_CHECKING:
    from stepkit.ir.context import Context


class Cleanup(Stage):
    """Drop tables; for `delete_data` tables also delete their files (this run's, or every run's)."""

    type: Literal["cleanup"] = "cleanup"
    drop_tables: list[str] = Field(default_factory=list, description="Table keys to drop from the catalog only.")
    delete_data: list[str] = Field(default_factory=list, description="Table keys to drop and whose files to delete.")
    scope: Literal["run", "all"] = Field(
        "run", description="`run`: delete this run's files; `all`: every run's files of those tables (pre-clean)."
    )

    def check(self, ctx: "Context") -> list[Finding]:
        keys = ctx.p.tables.names()  # (what it may not delete: protect_outputs, once the data flow is known)
        found = []
        for field in ("drop_tables", "delete_data"):
            for i, key in enumerate(getattr(self, field)):
                if key not in keys:
                    found.append(Finding("error", (field, i), f"{key!r} is not a key of `tables`"))
        if not self.drop_tables and not self.delete_data:
            found.append(Finding("error", ("type",), "a cleanup stage needs drop_tables or delete_data"))
        return found

    def flow(self, ctx: "Context") -> Flow:
        # Ordered against everything: what runs before it may still read what it deletes.
        return Flow(deletes=frozenset(self.drop_tables) | frozenset(self.delete_data), barrier=True)

    def payload(self, ctx: "Context", keep: frozenset[str] = frozenset()) -> dict[str, Any]:
        """`keep`: tables whose files go but which stay in the catalog (a prepare state's, for a table
        another stage declared and this one only fills)."""
        names = ctx.p.tables.names()
        tables = []
        for k in [*self.drop_tables, *[d for d in self.delete_data if d not in self.drop_tables]]:
            t = {"name": names[k], "location": ctx.names.table_root(k), "delete_data": k in self.delete_data}
            if k in keep:
                t["drop"] = False
            tables.append(t)
        return {"database": ctx.p.aws.database, "scope": self.scope, "tables": tables, "run_id.$": RUN_ID_PATH}

    def fragment(self, ctx: "Context") -> Fragment:
        state = invoke(ctx, ctx.names.function_arn(CLEANUP_FUNCTION), self.payload(ctx),
                       function_timeout(ctx), self.comment)
        state["Retry"].append(CLEANUP_RETRY.render())
        return Fragment().add(self.name, state).chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        return statements(ctx)

    def resources(self, ctx: "Context") -> list[Resource]:
        return resources(ctx)



def outputs(ctx: "Context", flows: list[Flow]) -> tuple[int | None, frozenset[str]]:
    """(index of the pipeline's final producing stage, the tables it writes): the last stage, in the
    spec's order, that writes a table. Those tables are what the pipeline is for."""
    keys = set(ctx.p.tables.names())
    for i in range(len(flows) - 1, -1, -1):
        made = (flows[i].writes | flows[i].defines) & keys
        if made:
            return i, frozenset(made)
    return None, frozenset()


def protect_outputs(ctx: "Context", flows: list[Flow]) -> list[tuple[int | None, Finding]]:
    """A cleanup (or on_failure: index None) may not delete the files of what the final stage produced,
    nor, after that stage, drop it: the run would lose its own results (or a PreCleanup every earlier run's)."""
    producer, made = outputs(ctx, flows)
    if producer is None:
        return []
    by = ctx.p.stages[producer].name
    found: list[tuple[int | None, Finding]] = []
    blocks = [(i, s) for i, s in enumerate(ctx.p.stages) if isinstance(s, Cleanup)]
    of = ctx.p.on_failure
    blocks.append((None, Cleanup.model_construct(name=CLEANUP_ON_FAILURE, drop_tables=of.drop_tables,
                                                 delete_data=of.delete_data)))
    for i, block in blocks:
        prefix = ("on_failure",) if i is None else ()
        for j, key in enumerate(block.delete_data):
            if key in made:
                found.append((i, Finding("error", (*prefix, "delete_data", j), f"{key!r} is what the pipeline's "
                              f"final stage {by} produces: its files are the run's results and are never deleted "
                              "(drop_tables drops the table and keeps its files)", root=i is None)))
        for j, key in enumerate(block.drop_tables):
            if key in made and i is not None and i > producer:
                found.append((i, Finding("error", ("drop_tables", j), f"{key!r} is what the pipeline's final stage "
                              f"{by} produces: dropping it after that stage leaves the run without its results")))
    return found


CLEANUP_ON_FAILURE = "CleanupOnFailure"


# The function's timeout follows from the files it may have to delete, bounded from above: every
# table stepkit writes is partitioned at most per batch, Athena leaves a few files per partition
# (one per writer), and a `scope: all` pre-clean also meets the runs kept for redrive. The handler
# deletes on 16 threads; 1,000 objects a second is a floor for that (one thread alone does about
# that much), so the estimate is generous, and Lambda bills the time used, not the timeout.
FILES_PER_PARTITION = 8
LINGERING_RUNS = 4
DELETE_RATE = 1000  # objects a second
LAMBDA_MAX_TIMEOUT = 900


def objects_to_delete(ctx: "Context", delete_data: list[str], scope: str) -> int:
    batches = ctx.p.batching.batches if ctx.p.batching else 1  # a pipeline without batches: one partition
    per_table = max(batches, 1) * FILES_PER_PARTITION
    return len(delete_data) * per_table * (LINGERING_RUNS if scope == "all" else 1)


def function_timeout(ctx: "Context") -> int:
    """Seconds the cleanup function may run: the spec's, or more when the largest cleanup needs it."""
    work = [objects_to_delete(ctx, s.delete_data, s.scope) for s in ctx.p.stages if isinstance(s, Cleanup)]
    work.append(objects_to_delete(ctx, ctx.p.on_failure.delete_data, "run"))
    needed = 30 + 2 * max(work) // DELETE_RATE
    return min(LAMBDA_MAX_TIMEOUT, max(ctx.p.compute.lambda_.timeout_seconds, needed))


# The function's entry point in the zip `stepkit deploy` uploads (stepkit/aws/package.py).
HANDLER = "stepkit.workers.cleanup.handler.handler"
# Where the function may delete: the pipeline's root (s3://bucket/prefix/).
ROOT_ENV = "STEPKIT_ROOT"


def prepare_state(ctx: "Context", stage: str, keys: tuple[str, ...], keep: frozenset[str] = frozenset()):
    """The Task a stage's guard runs before the stage runs again in a continued run: deletes this run's
    files of its tables and drops them (but `keep`: tables it fills that another stage declared), so
    the stage starts from nothing (see compiler/wiring.py)."""
    # Not validated as a stage: its name is the stage's own plus a suffix (the wiring checks its length).
    block = Cleanup.model_construct(
        name=f"{stage}.prepare", drop_tables=[], delete_data=list(keys), scope="run",
        comment=f"Deletes what an earlier attempt of {stage} in this run left, before it runs again.")
    state = block.fragment(ctx).states[block.name]
    state["Parameters"]["Payload"] = block.payload(ctx, keep)
    return state


def resources(ctx: "Context") -> list[Resource]:
    """stepkit's cleanup function and its log group (shared by every cleanup state)."""
    n, p = ctx.names, ctx.p
    name = n.function(CLEANUP_FUNCTION)
    logs = log_group("CleanupFunctionLogGroup", f"/aws/lambda/{name}", "the cleanup Lambda")
    lam = p.compute.lambda_
    function = Resource("CleanupFunction", "AWS::Lambda::Function", {
        "FunctionName": name,
        "Description": f"stepkit cleanup for {p.name}: drops tables and deletes their S3 files",
        "Runtime": "python3.12",
        "Architectures": [lam.architecture],
        "Handler": HANDLER,
        "Code": {"S3Bucket": p.aws.bucket, "S3Key": ref(PARAM_CODE_KEY)},
        "Role": get_att(role_id("lambda"), "Arn"),
        "MemorySize": lam.memory_mb,
        "Timeout": function_timeout(ctx),
        "Environment": {"Variables": {ROOT_ENV: n.root}},
        "LoggingConfig": {"LogGroup": ref(logs.logical_id)},
    }, after_policy_of=("lambda",),
        outputs=(Output("CleanupFunctionArn", get_att("CleanupFunction", "Arn"), "Cleanup Lambda"),),
        parameters=(parameter(PARAM_CODE_KEY, Type="String",
                              Description="S3 key (in aws.bucket) of the cleanup Lambda's zip; set by stepkit deploy."),))
    return [logs, function]


def statements(ctx: "Context") -> list[Statement]:
    n, aws = ctx.names, ctx.p.aws
    fn = n.function(CLEANUP_FUNCTION)
    return [
        invoke_statement(n.function_arn(CLEANUP_FUNCTION)),
        Statement.of("lambda", ["glue:GetTable", "glue:DeleteTable", "glue:GetPartitions", "glue:BatchDeletePartition"],
                     n.glue_arns(aws.database)),
        Statement.of("lambda", "s3:ListBucket", f"arn:aws:s3:::{aws.bucket}",
                     conditions={"StringLike": {"s3:prefix": [f"{aws.prefix}/tables/*"]}}),
        Statement.of("lambda", "s3:DeleteObject", f"arn:aws:s3:::{aws.bucket}/{aws.prefix}/tables/*"),
        Statement.of("lambda", ["logs:CreateLogStream", "logs:PutLogEvents"],
                     n.arn("logs", f"log-group:/aws/lambda/{fn}:*")),
    ]
