"""Cleanup Lambda: drop tables from Glue and delete their files from S3.

Runs on the Lambda python3.12 runtime, where boto3 exists but pydantic does not: it imports
only `stepkit.cleanup` (standard library), which turns the payload into the same plan
`stepkit run --local` follows. Every delete stays under `$STEPKIT_ROOT/tables/`.
"""
from __future__ import annotations

import os
from typing import Any

from stepkit.cleanup import plan

ROOT_ENV = "STEPKIT_ROOT"
PAGE = 1000  # S3 DeleteObjects takes at most 1,000 keys per call


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def drop_tables(glue: Any, database: str, tables: list[str]) -> list[str]:
    dropped = []
    for name in tables:
        try:
            glue.delete_table(DatabaseName=database, Name=name)
            dropped.append(name)
        except glue.exceptions.EntityNotFoundException:
            pass  # already gone: a re-run or a first run
    return dropped


def delete_prefix(s3: Any, uri: str) -> int:
    """Delete every object under `uri`, 1,000 keys per call; returns the count."""
    bucket, prefix = _split(uri)
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": PAGE}):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        for i in range(0, len(keys), PAGE):
            chunk = keys[i:i + PAGE]
            out = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            errors = out.get("Errors", [])
            if errors:
                first = errors[0]
                raise RuntimeError(f"s3:DeleteObject s3://{bucket}/{first['Key']}: {first['Code']}: {first['Message']} "
                                   f"({len(errors)} keys failed)")
            deleted += len(chunk)
    return deleted


def run(payload: dict[str, Any], root: str, glue: Any, s3: Any) -> dict[str, Any]:
    p = plan(payload, root)
    dropped = drop_tables(glue, p.database, p.drop)
    deleted = {uri: delete_prefix(s3, uri) for uri in p.delete}
    return {"database": p.database, "dropped": dropped, "deleted_objects": deleted}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    import boto3

    root = os.environ[ROOT_ENV]
    result = run(event, root, boto3.client("glue"), boto3.client("s3"))
    print({"cleanup": result})  # CloudWatch Logs: what this run removed
    return result
