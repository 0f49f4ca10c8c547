"""`s3:putObject` as a Distributed Map's ResultWriter -> the children's results as files under the
warehouse, where AWS would write them (`<Prefix>/<map run id>/manifest.json`, `SUCCEEDED_0.json`, ...)."""
from __future__ import annotations

import json
import uuid
from typing import Any

from stepkit.interpreter import TaskCall, TaskFailure
from stepkit.local.runs import write_atomic

RESOURCES = ("arn:aws:states:::s3:putObject",)


def adapter(services: Any):
    def run(call: TaskCall) -> dict[str, Any] | None:
        params = call.parameters or {}
        bucket, prefix = params.get("Bucket"), str(params.get("Prefix", "")).strip("/")
        if bucket != services.plan.context.p.aws.bucket:
            raise TaskFailure("States.ResultWriterFailed", f"{call.state}: bucket {bucket!r} is not the pipeline's")
        run_id = uuid.uuid4().hex
        key = f"{prefix}/{run_id}" if prefix else run_id
        folder = services.to_local(f"s3://{bucket}/{key}/") if prefix.startswith(
            services.plan.context.p.aws.prefix) else None
        if folder is None:
            raise TaskFailure("States.ResultWriterFailed", f"{call.state}: prefix {prefix!r} is outside the pipeline's")
        results = call.results or []
        by_status: dict[str, list[dict]] = {}
        for r in results:
            by_status.setdefault(str(r.get("Status", "SUCCEEDED")), []).append(r)
        files = []
        for status, items in sorted(by_status.items()):
            name = f"{status}_0.json"
            write_atomic(folder / name, json.dumps(items, sort_keys=True) + "\n")
            files.append({"Key": f"{key}/{name}", "Size": len(items)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": call.context.get("MapRunArn", ""),
                    "ResultFiles": {s: [f for f in files if f["Key"].endswith(f"/{s}_0.json")] for s in by_status}}
        write_atomic(folder / "manifest.json", json.dumps(manifest, sort_keys=True) + "\n")
        return None  # the Map's result is AWS's default: where the manifest is
    return run


def problems(definition: dict[str, Any], services: Any) -> list[str]:
    return []
