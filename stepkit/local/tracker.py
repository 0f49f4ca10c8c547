"""A local run's record and progress lines, kept from the execution's history events as they happen.

The stages' start and end come from their states' events (`plan.stage_of` says which state is
whose); rows come from what the adapters reported; a Map's progress from its child executions'
end events. Events arrive from several threads (Parallel branches, Map items): one lock.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable

from stepkit.local.faults import kill_at
from stepkit.local.progress import Progress
from stepkit.local.runs import RunRecord, StageRecord

# Fault injection for tests: a stage name. Half a second after that stage starts, SIGINT goes to the
# run's whole process group, as a terminal's Ctrl-C does (run it in a process group of its own).
INTERRUPT_ENV = "STEPKIT_FAULT_INTERRUPT_AT"


class Tracker:
    def __init__(self, plan: Any, record: RunRecord, progress: Progress, save: Callable[[], None],
                 services: Any, on_stage_end: Callable[[str], None]):
        self.plan, self.record, self.out, self.save = plan, record, progress, save
        self.reports, self.attempts = services.reports, services.attempts
        self.retried = services.extra.setdefault("retried", {})
        self.restarts = lambda: services.workers.restarts
        self.processes = services.workers.size
        self.on_stage_end = on_stage_end
        self.lock = threading.Lock()
        self.exit_of = {state: s.name for s in plan.stages for state in s.exits}
        self.guards = {s.entry for s in plan.stages if s.guarded}
        self.started: list[str] = []
        self.maps: dict[str, list[int]] = {}  # map run arn -> [done, total]
        self.map_stage: dict[str, str] = {}
        self.total = len(plan.stages)
        self.closed = False

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            if self.closed:  # the run has ended (a stopped execution may still send events): its record stays
                return
            try:
                self._event(event)
            except Exception as e:  # noqa: BLE001 - the record must never stop the run
                self.out.log(f"      (run record: {type(e).__name__}: {e})")

    def close(self) -> None:
        """No more events into the record: the runner writes its last state."""
        with self.lock:
            self.closed = True

    def _event(self, e: dict[str, Any]) -> None:
        kind = e.get("type", "")
        if "execution" in e:  # a Map's child execution
            if kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
                arn = e.get("mapRunArn", "")
                counts = self.maps.setdefault(arn, [0, 0])
                counts[0] += 1
                stage = self.map_stage.get(arn)
                if stage:
                    self.out.batches(stage, counts[0], counts[1])
            return
        if kind == "MapStateStarted":
            name = (e.get("stepkit") or {}).get("state")
            self._map_length = int(e.get("mapStateStartedEventDetails", {}).get("length", 0))
            self._map_state = name
            self.maps[f"inline:{name}"] = [0, self._map_length]
            return
        if kind in ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"):
            name = e.get(kind[0].lower() + kind[1:] + "EventDetails", {}).get("name", "")
            counts = self.maps.setdefault(f"inline:{name}", [0, 0])
            counts[0] += 1
            stage = self.plan.stage_of.get(name)
            if stage:
                self.out.batches(stage, counts[0], counts[1])
            return
        if kind == "MapRunStarted":
            arn = e.get("mapRunStartedEventDetails", {}).get("mapRunArn", "")
            state = (e.get("stepkit") or {}).get("state") or getattr(self, "_map_state", None)
            stage = self.plan.stage_of.get(state or "")
            if stage:
                self.map_stage[arn] = stage
                self.maps.setdefault(arn, [0, 0])[1] = getattr(self, "_map_length", 0)
            return
        if kind.endswith("StateEntered"):
            name = e.get("stateEnteredEventDetails", {}).get("name", "")
            kill_at("enter", name)
            stage = self.plan.stage_of.get(name)
            if stage and name not in self.guards:
                self._start(stage)
            rec = self._rec(stage)
            if rec is not None and kind == "MapStateEntered":
                self.out.unit = "batches"
            return
        if kind.endswith("StateExited"):
            name = e.get("stateExitedEventDetails", {}).get("name", "")
            kill_at("exit", name)
            stage = self.exit_of.get(name)
            if stage:
                self._end(stage)

    def _rec(self, stage: str | None) -> StageRecord | None:
        if stage is None:
            return None
        try:
            return self.record.stage(stage)
        except KeyError:
            return None

    def _start(self, stage: str) -> None:
        rec = self._rec(stage)
        if rec is None or stage in self.started:
            return
        self.started.append(stage)
        rec.status, rec.start, rec.end, rec.error, rec.attempts, rec.detail = "running", time.time(), None, None, 0, {}
        self.out.stage_start(len(self.started) + self.skipped_before, self.total, stage, rec.type)
        self.save()
        if os.environ.get(INTERRUPT_ENV) == stage:
            threading.Thread(target=_interrupt, daemon=True).start()

    skipped_before = 0  # stages an earlier execution of this run did (not started again)

    def _end(self, stage: str) -> None:
        rec = self._rec(stage)
        if rec is None or rec.status != "running":
            return
        rec.status, rec.end = "succeeded", time.time()
        rows, detail = _rows(self.plan, self.plan.stage(stage), self.reports, self.retried, self.processes)
        if self.restarts() and "batches" in detail:
            detail["pool_restarts"] = self.restarts()
        rec.rows_out, rec.detail = rows, detail
        rec.attempts = sum(n for state, n in self.attempts.items() if self.plan.stage_of.get(state) == stage)
        self._metrics(self.plan.stage(stage))
        self.save()
        self.out.stage_end(stage, rec.end - (rec.start or rec.end), rec.rows_out, detail.get("note", ""))
        self.on_stage_end(stage)

    def _metrics(self, stage: Any) -> None:
        """Model metrics from a task that reports them (the training worker's summary: one target's, or
        every target's under `targets`, keyed `target.model` in the record)."""
        for state in stage.states:
            for result in self.reports.get(state, []):
                targets = result.get("targets")
                if isinstance(targets, dict) and targets:
                    several = len(targets) > 1
                    self.record.metrics = {f"{t}.{m}" if several else m: v for t, summary in targets.items()
                                           for m, v in _metrics(summary.get("models")).items()}
                    self.record.training = {
                        "chosen_model": "; ".join(f"{t}: {s.get('chosen_model')}" for t, s in targets.items())
                        if several else next(iter(targets.values())).get("chosen_model"),
                        "targets": {t: {k: s[k] for k in TRAINING_KEYS if k in s} for t, s in targets.items()},
                        **{k: result[k] for k in ("gate", "source_run", "seconds") if k in result}}
                    continue
                models = result.get("metrics") or result.get("models")
                if isinstance(models, dict) and models:
                    self.record.metrics = _metrics(models)
                    self.record.training = {k: result[k] for k in TRAINING_KEYS if k in result}

    def fail_running(self, error: str) -> None:
        """The execution ended: the stages still running failed with it (or were stopped)."""
        with self.lock:
            now = time.time()
            for rec in self.record.stages:
                if rec.status == "running":
                    rec.status, rec.end, rec.error = "failed", now, error


def _rows(plan: Any, stage: Any, reports: dict[str, list[dict[str, Any]]],
          retried_batches: dict[str, set[int]], processes: int) -> tuple[int | None, dict[str, Any]]:
    """Rows a stage wrote (its statements' counts, or its tasks' own) and a note for its line."""
    got: list[dict[str, Any]] = []
    for state in stage.states:
        got += reports.get(state, [])
    inner = [s for s, owner in plan.stage_of.items() if owner == stage.name and s not in stage.states]
    batches = [r for s in inner for r in reports.get(s, [])]
    detail: dict[str, Any] = {}
    if batches:
        rows = [b.get("rows") for b in batches if isinstance(b.get("rows"), (int, float))]
        retried = sorted(b for s in inner for b in retried_batches.get(s, ()))
        detail["batches"] = len(batches)
        detail["retried"] = retried
        detail["note"] = f", {len(batches)} batches on {processes} processes" + (
            f", {len(retried)} retried" if retried else "")
        return (int(sum(rows)) if rows else None), detail
    if not got:
        return None, detail
    last = got[-1]
    if stage.statements:
        rows = [g.get("rows") for g in got if g.get("rows") is not None]
        detail["statements"] = len(stage.statements)
        queued = sum(g.get("queued_seconds") or 0.0 for g in got)
        if queued > 0:  # its statements waited for another stage's (Parallel branches): not its own work
            detail["queued_seconds"] = round(queued, 3)
            if queued >= 0.05:
                detail["note"] = f", {queued:.1f} s of it queued behind other SQL"
        return (int(sum(rows)) if rows else None), detail
    rows = last.get("rows", last.get("rows_out"))
    if isinstance(rows, dict):  # the training worker counts its train/calibration/test rows
        rows = rows.get("total")
    for key in ("dropped", "deleted"):
        if key in last:
            detail[key] = last[key]
    return (int(rows) if isinstance(rows, (int, float)) else None), detail


TRAINING_KEYS = ("chosen_model", "selection_metric", "model_version", "gate", "rows", "data_fingerprint", "seconds")


# The figures a model's line keeps: a number's (the first four), or a class's.
METRICS = ("mae", "rmse", "r2", "coverage", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc", "ece")


def _metrics(raw: Any) -> dict[str, dict[str, float | None]]:
    """{model: {mae, rmse, r2, coverage}} (a class target's: accuracy ... ece) from the training worker's report."""
    out = {}
    for model, m in (raw or {}).items():
        if isinstance(m, dict):
            keys = METRICS[:4] if "mae" in m else [k for k in METRICS[4:] if k in m]
            out[model] = {k: (float(m[k]) if m.get(k) is not None else None) for k in keys}
    return out


def _interrupt() -> None:
    # A moment into the stage: a worker process still being forked for a task that has just started
    # would find the ended run's semaphores gone and print a traceback.
    time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGINT)
