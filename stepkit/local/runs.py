"""A local run's folder and its record, `runs/<run_id>/run.json`.

The record is rewritten (atomically) after every stage, so a killed run leaves `status:
running` or `failed`, never a record that looks complete. `--resume` reads it back.
"""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stepkit.errors import StepkitError

RECORD = "run.json"
EXECUTIONS = "executions"  # a run's executions' histories: executions/1, executions/2, ...
RECORD_VERSION = 1


def new_run_id(now: float | None = None) -> str:
    """`local-YYYYmmdd-HHMMSS-xxxx`: sortable, and a valid Step Functions execution name too."""
    stamp = datetime.fromtimestamp(now or time.time(), tz=timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"local-{stamp}-{secrets.token_hex(2)}"


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class StageRecord:
    name: str
    type: str
    status: str = "pending"  # pending, running, succeeded, failed, skipped
    start: float | None = None
    end: float | None = None
    rows_out: int | None = None
    attempts: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return round(self.end - self.start, 3)

    def render(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"], out["end"], out["seconds"] = iso(self.start), iso(self.end), self.seconds
        out["start_epoch"], out["end_epoch"] = self.start, self.end
        return out

    @classmethod
    def read(cls, data: dict[str, Any]) -> "StageRecord":
        return cls(name=data["name"], type=data["type"], status=data["status"], start=data.get("start_epoch"),
                   end=data.get("end_epoch"), rows_out=data.get("rows_out"), attempts=data.get("attempts", 0),
                   detail=data.get("detail") or {}, error=data.get("error"))


@dataclass
class RunRecord:
    run_id: str
    pipeline: str
    source: str
    workdir: str
    status: str = "running"  # running, succeeded, failed
    started: float = field(default_factory=time.time)
    ended: float | None = None
    error: str | None = None
    failed_stage: str | None = None
    stages: list[StageRecord] = field(default_factory=list)
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    report: str | None = None
    notes: list[str] = field(default_factory=list)
    resumed: list[float] = field(default_factory=list)
    # The executions of the run, oldest first: {"dir": "executions/N", "kind": new|redrive|continue, ...}
    executions: list[dict[str, Any]] = field(default_factory=list)
    cores: int | None = None  # of the machine that ran it: `stepkit plan --from-run` scales rates by it

    def stage(self, name: str) -> StageRecord:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def render(self) -> dict[str, Any]:
        seconds = round(self.ended - self.started, 3) if self.ended else None
        return {
            "stepkit_run": RECORD_VERSION,
            "run_id": self.run_id,
            "status": self.status,
            "pipeline": self.pipeline,
            "source": self.source,
            "workdir": self.workdir,
            "started": iso(self.started),
            "ended": iso(self.ended),
            "seconds": seconds,
            "started_epoch": self.started,
            "ended_epoch": self.ended,
            "error": self.error,
            "failed_stage": self.failed_stage,
            "stages": [s.render() for s in self.stages],
            "metrics": self.metrics,
            "training": self.training,
            "outputs": self.outputs,
            "report": self.report,
            "notes": self.notes,
            "resumed_epochs": self.resumed,
            "executions": self.executions,
            "cores": self.cores,
        }

    def save(self, run_dir: Path) -> Path:
        path = run_dir / RECORD
        write_atomic(path, json.dumps(self.render(), indent=2, sort_keys=True, default=str) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        path = run_dir / RECORD
        if not path.is_file():
            raise StepkitError(f"{run_dir}: no such run (no {RECORD}); runs are in {run_dir.parent}")
        try:
            data = json.loads(path.read_text())
            return cls(
                run_id=data["run_id"], pipeline=data["pipeline"], source=data["source"], workdir=data["workdir"],
                status=data["status"], started=data["started_epoch"], ended=data.get("ended_epoch"),
                error=data.get("error"), failed_stage=data.get("failed_stage"),
                stages=[StageRecord.read(s) for s in data["stages"]], metrics=data.get("metrics") or {},
                training=data.get("training") or {}, outputs=data.get("outputs") or {}, report=data.get("report"),
                notes=data.get("notes") or [], resumed=data.get("resumed_epochs") or [],
                executions=data.get("executions") or [], cores=data.get("cores"),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise StepkitError(f"{path}: not a stepkit run record ({e})") from None


def execution_folders(run_dir: Path) -> list[Path]:
    """The history folders of a run's executions, oldest first."""
    return sorted((Path(run_dir) / EXECUTIONS).glob("*"), key=lambda p: int(p.name) if p.name.isdigit() else 0)


def write_atomic(path: Path, text: str) -> None:
    """Write beside, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # threads save too
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def check_writable(workdir: Path) -> None:
    """Fail early, in one line, when the work folder cannot be written."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".stepkit-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StepkitError(f"{workdir}: work folder is not writable: {e.strerror or e}") from None
