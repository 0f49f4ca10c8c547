"""Cleanup Lambda: drop tables from Glue and delete their files from S3.

Runs on the Lambda python3.12 runtime, where boto3 exists but pydantic does not: it imports
only `stepkit.cleanup` (standard library), which turns the payload into the same plan
`stepkit run --local` follows. Every delete stays under `$STEPKIT_ROOT/tables/`.

A run leaves tens of thousands of files (898 batch partitions per table, several runs' worth for
a `scope: all` pre-clean). One list-then-delete loop does ~1,000 objects a second, so the folders
are walked and deleted by THREADS workers at once: each folder level is listed with a delimiter,
its sub-folders listed in parallel, and its keys deleted 1,000 a call (DeleteObjects' limit). The
handler stops before the function's deadline with an error saying how far it got; deleting again
is harmless, so the state's retry carries on from there (steps/cleanup.py).
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable

from stepkit.cleanup import plan

ROOT_ENV = "STEPKIT_ROOT"
PAGE = 1000  # S3 DeleteObjects takes at most 1,000 keys per call
THREADS = 16
# Stop starting S3 calls this long before the function's deadline: a call in flight finishes.
MARGIN_SECONDS = 10


class OutOfTime(RuntimeError):
    """The function's deadline is near: what is left is deleted by the next attempt."""


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


class _Deleter:
    """Walks folders and deletes their objects on a thread pool; counts per top-level folder."""

    def __init__(self, s3: Any, threads: int, time_left: Callable[[], float]):
        self.s3, self.time_left = s3, time_left
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.lock = threading.Lock()
        self.futures: set[Future] = set()
        self.deleted: dict[str, int] = {}

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self.lock:
            self.futures.add(self.pool.submit(fn, *args))

    def _check_time(self) -> None:
        if self.time_left() < MARGIN_SECONDS:
            raise OutOfTime(f"stopped {MARGIN_SECONDS} s before the function's timeout after deleting "
                            f"{sum(self.deleted.values())} objects; run again (the state's retry does) to delete the rest")

    def _walk(self, root: str, bucket: str, prefix: str) -> None:
        self._check_time()
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": PAGE})
        for page in pages:
            for sub in page.get("CommonPrefixes", []):
                self._submit(self._walk, root, bucket, sub["Prefix"])
            keys = [o["Key"] for o in page.get("Contents", [])]
            for i in range(0, len(keys), PAGE):
                self._submit(self._delete, root, bucket, keys[i:i + PAGE])
            self._check_time()

    def _delete(self, root: str, bucket: str, keys: list[str]) -> None:
        self._check_time()
        out = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        errors = out.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(f"s3:DeleteObject s3://{bucket}/{first['Key']}: {first['Code']}: {first['Message']} "
                               f"({len(errors)} keys failed)")
        with self.lock:
            self.deleted[root] = self.deleted.get(root, 0) + len(keys)

    def run(self, uris: list[str]) -> dict[str, int]:
        try:
            for uri in uris:
                self.deleted[uri] = 0
                bucket, prefix = _split(uri)
                self._submit(self._walk, uri, bucket, prefix)
            while True:
                with self.lock:
                    pending = set(self.futures)
                if not pending:
                    return self.deleted
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                with self.lock:
                    self.futures -= done
                for f in done:
                    f.result()  # the first failure (or OutOfTime) ends the run
        finally:
            with self.lock:
                for f in self.futures:
                    f.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)


def delete_prefixes(s3: Any, uris: list[str], threads: int = THREADS,
                    time_left: Callable[[], float] = lambda: float("inf")) -> dict[str, int]:
    """Delete every object under each of `uris`; returns how many went, per uri."""
    return _Deleter(s3, threads, time_left).run(uris)


def delete_prefix(s3: Any, uri: str) -> int:
    """Delete every object under `uri`; returns the count."""
    return delete_prefixes(s3, [uri])[uri]


def run(payload: dict[str, Any], root: str, glue: Any, s3: Any,
        time_left: Callable[[], float] = lambda: float("inf")) -> dict[str, Any]:
    p = plan(payload, root)
    dropped = drop_tables(glue, p.database, p.drop)
    deleted = delete_prefixes(s3, p.delete, time_left=time_left)
    return {"database": p.database, "dropped": dropped, "deleted_objects": deleted}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    root = os.environ[ROOT_ENV]
    # One connection per worker thread (botocore keeps 10 by default).
    s3 = boto3.client("s3", config=Config(max_pool_connections=THREADS, retries={"mode": "standard"}))
    started = time.monotonic()
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000

        def time_left() -> float:
            return remaining - (time.monotonic() - started)
    else:
        def time_left() -> float:
            return float("inf")
    result = run(event, root, boto3.client("glue"), s3, time_left)
    print({"cleanup": result, "seconds": round(time.monotonic() - started, 1)})  # CloudWatch Logs: what went
    return result
