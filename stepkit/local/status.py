"""`stepkit status --local`: a local run's timeline, read from its execution history as `stepkit status`
reads an AWS one (aws/timeline.py builds both from events of GetExecutionHistory's shape)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from stepkit.errors import StepkitError


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def timeline(workdir: Path, run_id: str | None = None):
    from stepkit.aws import timeline as tl
    from stepkit.compiler import recovery
    from stepkit.interpreter.history import load_history, read_jsonl
    from stepkit.local.lock import holder
    from stepkit.local.runs import execution_folders

    runs = Path(workdir) / "runs"
    found = sorted((p for p in runs.glob("*/run.json")), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    if run_id:
        found = [p for p in found if p.parent.name == run_id]
    if not found:
        what = f"no run {run_id!r}" if run_id else "no runs"
        raise StepkitError(f"{runs}: {what} (start one with `stepkit run PIPELINE --local --workdir {workdir}`)")
    run_dir = found[-1].parent
    record = json.loads(found[-1].read_text())
    folders = execution_folders(run_dir)
    if not folders:
        if record.get("error") and "executions" in record:  # refused before its execution began
            raise StepkitError(f"{run_dir}: run {run_dir.name} stopped before its execution began: {record['error']}")
        raise StepkitError(f"{run_dir}: run {run_dir.name} has no execution history (an older stepkit made it)")
    events = [dict(e, timestamp=_when(e.get("timestamp"))) for e in load_history(folders[-1])]
    status = recovery.status(events)
    error, cause = "", ""
    for e in events:
        details = e.get("executionFailedEventDetails") or e.get("executionAbortedEventDetails") or {}
        error, cause = details.get("error", error), details.get("cause", cause)
    if status == "RUNNING" and (holder(Path(workdir)) or {}).get("run_id") != run_dir.name:
        # No process holds the work folder for this run: it was killed before its history could say so.
        status, error = "ABORTED", "stepkit.Killed"
        cause = f"the run's process ended without recording its end; continue it with --resume {run_dir.name}"
    started = events[0]["timestamp"] if events else _when(record.get("started"))
    stopped = next((e["timestamp"] for e in reversed(events) if e["type"] in recovery.FINAL), None)
    name = (events[0].get("stepkit") or {}).get("name", run_dir.name) if events else run_dir.name
    desc = {"name": name, "status": status, "startDate": started, "stopDate": stopped, "error": error, "cause": cause}
    t = tl.build(desc, events)
    for stage, progress in t.maps.items():
        if progress.map_run_arn:  # a Distributed Map: its items are child executions, in their own file
            from stepkit.interpreter.history import map_run_file

            ended: dict[str, str] = {}
            for e in read_jsonl(map_run_file(folders[-1], stage)):
                if e["type"] in recovery.FINAL:
                    ended[e.get("execution", "")] = recovery.FINAL[e["type"]]
            progress.succeeded = sum(s == "SUCCEEDED" for s in ended.values())
            progress.failed = len(ended) - progress.succeeded
            progress.running = 0 if status != "RUNNING" else max(0, progress.total - len(ended))
    return t
