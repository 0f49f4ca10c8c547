"""Rows per second per core of a local run's tasks, read from its `run.json`.

`stepkit plan --from-run RUN` prices the Fargate tasks at these rates (scaled to each task's
vCPU); `stepkit cost RUN` on a local run prints them. A fan-out's rate is its rows over its
wall time times the worker processes it ran on (so it includes each batch's fixed costs at the
local batch size); a single task's is its rows over its wall time times the machine's cores.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stepkit.errors import StepkitError
from stepkit.local.runs import RECORD, RunRecord
from stepkit.plan.coefficients import Coef


NO_CORES = "the run does not record its machine's cores (an older stepkit): run it again with this one"


@dataclass(frozen=True)
class Measured:
    stage: str
    task: str
    rows: int
    seconds: float
    cores: int
    rows_per_s_per_core: float
    how: str


def run_dir(run: str, workdir: str | Path = ".work") -> Path:
    """A run folder, or a run id under WORKDIR/runs/."""
    path = Path(run)
    if (path / RECORD).is_file():
        return path
    candidate = Path(workdir) / "runs" / run
    if (candidate / RECORD).is_file():
        return candidate
    raise StepkitError(f"{run}: no local run there (no {path / RECORD}, no {candidate / RECORD})")


def measure(path: Path, task_of: dict[str, tuple[str, str]]) -> list[Measured]:
    """Rates of the run's task stages. `task_of`: stage name -> (stage type, task key), from the spec."""
    record = RunRecord.load(path)
    out = []
    for rec in record.stages:
        if rec.name not in task_of or rec.status != "succeeded":
            continue
        kind, task = task_of[rec.name]
        seconds = rec.seconds or 0.0
        if not rec.rows_out or seconds <= 0:
            continue
        if kind == "fan_out":
            m = re.search(r"on (\d+) processes", str(rec.detail.get("note", "")))
            cores = int(m.group(1)) if m else record.cores
            how = (f"{rec.rows_out:,} rows in {seconds:,.1f} s on {cores} worker processes"
                   f" ({rec.detail.get('batches', '?')} batches)")
        else:
            cores = record.cores
            how = f"{rec.rows_out:,} rows in {seconds:,.1f} s on {cores} cores"
        if not cores:
            out.append(Measured(rec.name, task, int(rec.rows_out), seconds, 0, 0.0, NO_CORES))
            continue
        out.append(Measured(rec.name, task, int(rec.rows_out), seconds, int(cores),
                            rec.rows_out / (seconds * cores), how))
    return out


def rates(path: Path, task_of: dict[str, tuple[str, str]]) -> dict[str, Coef]:
    """Task key -> rows/s per vCPU (the slowest stage of that task, if several)."""
    out: dict[str, Coef] = {}
    for m in measure(path, task_of):
        if not m.cores:
            raise StepkitError(f"{path / RECORD}: {m.stage}: {m.how}")
        coef = Coef(m.rows_per_s_per_core, "rows/s a vCPU", f"measured by local run {path.name}: {m.how}")
        if m.task not in out or coef.value < out[m.task].value:
            out[m.task] = coef
    if not out:
        raise StepkitError(f"{path}: no finished task stage in this run to measure")
    return out
