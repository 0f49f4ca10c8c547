"""What the blocks share about the pipeline's bucket: the folders each role may write, and its KMS key.

Every role reads under `s3://BUCKET/PREFIX/`, but writes only where its work goes: Athena (the
state machine role) to `tables/` and `athena-results/`, the Distributed Map's result writer to
`map-results/`, the containers to the tables they write and `runs/`. Nothing but `stepkit deploy`
writes `stepkit/` (the worker config every task reads, the Lambda code, the templates).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from stepkit.ir.iam import Statement

if TYPE_CHECKING:
    from stepkit.ir.context import Context

TABLES = "tables"
RUNS = "runs"
ATHENA_RESULTS = "athena-results"
MAP_RESULTS = "map-results"


def objects(ctx: "Context", folder: str) -> str:
    """Every object under a folder of the pipeline's prefix, as an S3 ARN."""
    aws = ctx.p.aws
    return f"arn:aws:s3:::{aws.bucket}/{aws.prefix}/{folder}/*"


def written_by_task(ctx: "Context", writes: Iterable[str] | None) -> list[str]:
    """Where a container writes: the folders of the tables it declares, `runs/` for anything else it
    declares (the model); both folders whole when it declares nothing."""
    if writes is None:
        return [objects(ctx, TABLES), objects(ctx, RUNS)]
    tables = ctx.p.tables.names()
    out = {objects(ctx, f"{TABLES}/{tables[w]}") if w in tables else objects(ctx, RUNS) for w in writes}
    return sorted(out)


def kms(ctx: "Context", role: str) -> list[Statement]:
    """A customer-managed key on the bucket (aws.kms_key_arn): S3 needs the caller's right to use it to
    read (Decrypt) and write (GenerateDataKey) objects; the condition keeps it to S3's own use."""
    key = ctx.p.aws.kms_key_arn
    if not key:
        return []
    return [Statement.of(role, ["kms:Decrypt", "kms:GenerateDataKey"], key,
                         conditions={"StringEquals": {"kms:ViaService": f"s3.{ctx.p.aws.region}.amazonaws.com"}})]
