"""An execution's history as a timeline of stages (replaces the seed's `jq` over get-execution-history)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from stepkit.aws.versions import version_label


@dataclass
class Stage:
    name: str
    type: str  # Task, Map, Pass, Wait, ...
    entered: datetime
    exited: datetime | None = None
    failed: bool = False

    def seconds(self, now: datetime) -> float:
        return ((self.exited or now) - self.entered).total_seconds()


@dataclass
class MapProgress:
    stage: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    map_run_arn: str | None = None


@dataclass
class Timeline:
    name: str
    status: str
    started: datetime
    stopped: datetime | None
    stages: list[Stage] = field(default_factory=list)
    maps: dict[str, MapProgress] = field(default_factory=dict)
    error: str = ""
    cause: str = ""
    version: str = "latest"  # the state machine version the run ran (versions.version_label)

    @property
    def current(self) -> str | None:
        running = [s.name for s in self.stages if s.exited is None]
        return running[-1] if running else None


def _suffix(event_type: str, kind: str) -> str | None:
    """`TaskStateEntered` -> `Task`; None when the event is not a state's enter/exit."""
    return event_type[: -len(kind)].removesuffix("State") if event_type.endswith("State" + kind) else None


def build(execution: dict[str, Any], events: list[dict[str, Any]]) -> Timeline:
    """From describe_execution and get_execution_history (oldest first). Only top-level states:
    a Map's inner states show as the Map's progress, not as stages."""
    t = Timeline(execution["name"], execution["status"], execution["startDate"], execution.get("stopDate"),
                 error=execution.get("error", ""), cause=execution.get("cause", ""), version=version_label(execution))
    open_: dict[str, Stage] = {}
    depth = 0  # inside an inline Map's iterations (their states are not stages)
    current_map: MapProgress | None = None
    for e in events:
        kind = e["type"]
        if kind == "MapIterationStarted":
            depth += 1
            if current_map:
                current_map.running += 1
            continue
        if kind in ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"):
            depth = max(0, depth - 1)
            if current_map:
                current_map.running -= 1
                if kind == "MapIterationSucceeded":
                    current_map.succeeded += 1
                else:
                    current_map.failed += 1
            continue
        if kind == "MapStateStarted" and current_map:
            current_map.total = int(e.get("mapStateStartedEventDetails", {}).get("length", 0))
            continue
        if kind == "MapRunStarted" and current_map:
            current_map.map_run_arn = e.get("mapRunStartedEventDetails", {}).get("mapRunArn")
            continue
        if depth:
            continue
        entered = _suffix(kind, "Entered")
        if entered is not None:
            name = e["stateEnteredEventDetails"]["name"]
            stage = Stage(name, entered, e["timestamp"])
            t.stages.append(stage)
            open_[name] = stage
            if entered == "Map":
                current_map = t.maps.setdefault(name, MapProgress(name))
            continue
        exited = _suffix(kind, "Exited")
        if exited is not None:
            name = e["stateExitedEventDetails"]["name"]
            if name in open_:
                open_.pop(name).exited = e["timestamp"]
            continue
        if kind.endswith("Failed") or kind.endswith("TimedOut"):
            for stage in open_.values():
                stage.failed = True
    return t


def _clock(ts: datetime | None) -> str:
    return ts.astimezone(timezone.utc).strftime("%H:%M:%S") if ts else ""


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def render(t: Timeline, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    total = ((t.stopped or now) - t.started).total_seconds()
    lines = [f"execution {t.name}: {t.status} (started {t.started.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC, "
             f"{duration(total)}), state machine version {t.version}"]
    if t.current and t.status == "RUNNING":
        lines.append(f"current stage: {t.current}")
    lines.append(f"  {'entered':<9}{'exited':<9}{'took':>8}  stage")
    for s in t.stages:
        mark = "  FAILED" if s.failed else ("  running" if s.exited is None and t.status == "RUNNING" else "")
        lines.append(f"  {_clock(s.entered):<9}{_clock(s.exited):<9}{duration(s.seconds(now)):>8}  {s.name}{mark}")
    for m in t.maps.values():
        total_items = m.total or (m.succeeded + m.failed + m.running + m.pending)
        lines.append(f"{m.stage}: {m.succeeded}/{total_items} succeeded, {m.failed} failed, {m.running} running"
                     + (f", {m.pending} pending" if m.pending else ""))
    if t.error or t.cause:
        lines.append(f"error: {t.error}: {t.cause}".rstrip(": "))
    return lines
