"""What the two Athena blocks share: the optimized `.sync` task and its permissions."""
from __future__ import annotations

from typing import TYPE_CHECKING

from stepkit.ir.asl import ATHENA_RETRY, State, one_line, state, with_run_id
from stepkit.ir.iam import Statement
from stepkit.ir.sql import SqlStatement
from stepkit.steps import _s3

if TYPE_CHECKING:
    from stepkit.ir.context import Context

RESOURCE = "arn:aws:states:::athena:startQueryExecution.sync"


def task(ctx: "Context", statement: SqlStatement, timeout_minutes: int, comment: str | None = None) -> State:
    """One query, run to completion by Step Functions itself: no polling Lambda."""
    return state(
        "Task", comment,
        Resource=RESOURCE,
        Parameters={
            **with_run_id(one_line(statement.sql), "QueryString"),
            "WorkGroup": ctx.p.aws.workgroup,
            "QueryExecutionContext": {"Database": ctx.p.aws.database},
            "ResultConfiguration": {"OutputLocation": ctx.names.query_results},
        },
        # The query's metadata is not needed downstream; keep the state payload small.
        ResultPath=None,
        TimeoutSeconds=timeout_minutes * 60,
        Retry=[ATHENA_RETRY.render()],
    )


def _bucket_and_key(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    return bucket, key


def statements(ctx: "Context") -> list[Statement]:
    """athena:startQueryExecution.sync needs (docs: athena-iam), scoped to this pipeline."""
    n, aws = ctx.names, ctx.p.aws
    role = "statemachine"
    src_bucket, src_key = _bucket_and_key(ctx.p.source.location)
    src_db = ctx.p.source.database or aws.database
    reads = sorted({*n.glue_arns(aws.database), *n.glue_arns(src_db)})
    out = [
        Statement.of(role, ["athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution"],
                     n.workgroup_arn),
        Statement.of(role, "athena:GetDataCatalog", n.arn("athena", "datacatalog/AwsDataCatalog")),
        Statement.of(role, ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition",
                            "glue:GetPartitions", "glue:BatchGetPartition"], reads),
        # Athena looks up the region's `default` database (athena ug, fine-grained-access-to-glue-
        # resources: "access policy to the default database and catalog per AWS Region"; without it
        # queries can fail with "not authorized to perform glue:GetDatabase on database/default").
        # Read only: the guide also lists CreateDatabase, which nothing here needs.
        Statement.of(role, "glue:GetDatabase", [n.arn("glue", "catalog"), n.arn("glue", "database/default")]),
        Statement.of(role, ["glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable", "glue:CreatePartition",
                            "glue:BatchCreatePartition", "glue:UpdatePartition", "glue:BatchDeletePartition"],
                     n.glue_arns(aws.database)),
        Statement.of(role, ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                     sorted({f"arn:aws:s3:::{aws.bucket}", f"arn:aws:s3:::{src_bucket}"})),
        Statement.of(role, "s3:ListBucket", f"arn:aws:s3:::{aws.bucket}",
                     conditions={"StringLike": {"s3:prefix": [f"{aws.prefix}/*", aws.prefix]}}),
        Statement.of(role, "s3:GetObject", f"arn:aws:s3:::{aws.bucket}/{aws.prefix}/*"),
        # Athena writes a table's files under its location and the query's under the results folder.
        Statement.of(role, ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                     [_s3.objects(ctx, _s3.TABLES), _s3.objects(ctx, _s3.ATHENA_RESULTS)]),
        Statement.of(role, "s3:GetObject", f"arn:aws:s3:::{src_bucket}/{src_key}*"),
        Statement.of(role, "lakeformation:GetDataAccess", "*",
                     why="Lake Formation's GetDataAccess has no resource type: AWS requires '*'"),
    ]
    out += _s3.kms(ctx, role)
    if src_bucket != aws.bucket or not src_key.startswith(aws.prefix + "/"):
        out.append(Statement.of(role, "s3:ListBucket", f"arn:aws:s3:::{src_bucket}",
                                conditions={"StringLike": {"s3:prefix": [f"{src_key}*", src_key.rstrip("/")]}}))
    return out
