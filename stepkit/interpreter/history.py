"""Execution history: events shaped like GetExecutionHistory's `events`, written as they happen.

Files, under the execution's `history_dir`:
- `history.jsonl`: the parent execution, one event per line, appended and flushed (no fsync: what reached
  the kernel survives a kill -9; a killed process may leave the last line cut, which `load_history` skips).
- `map-runs/<state name>.jsonl`: the child executions of a Distributed Map state, all children in one file
  (898 children write ~7 events each; one file keeps that to one open handle). Every line carries
  `"execution": <child execution name>` and `"mapRunArn"`.

Each event is AWS's: `timestamp` (ISO 8601, UTC offset), `type`, `id`, `previousEventId` and one
`<lowerCamelType>EventDetails` object (AWS shares one details name between related types, e.g. every
`*StateEntered` has `stateEnteredEventDetails`). One key of our own, `stepkit`, carries what redrive needs
and AWS keeps elsewhere: `scope` (where in the execution: `["Par", "1"]` is branch 1 of Parallel state
`Par`, `["Map", "7"]` iteration 7 of Map state `Map`; absent at the top level) and, on a state's exit,
`next` (the state it went to; null at the end).
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class Sink:
    """One JSON-lines file shared by the writers of one execution (or of one Map Run's children)."""

    def __init__(self, path: Path | None):
        self.lock = threading.Lock()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")

    def write(self, event: dict) -> None:
        if self._file is not None:
            self._file.write(_ENCODER.encode(event) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class History:
    """The event log of one execution (the parent, or one child of a Distributed Map)."""

    def __init__(self, sink: Sink, *, keep: bool, tag: dict | None = None, start_id: int = 0,
                 on_event: Callable[[dict], None] | None = None):
        self.sink = sink
        self.events: list[dict] = []
        self._keep = keep
        self._tag = tag
        self._id = start_id
        self._last: dict[tuple, int] = {}
        self._on_event = on_event

    def emit(self, type_: str, details_key: str | None = None, details: dict | None = None,
             scope: tuple = (), **ext: Any) -> dict:
        with self.sink.lock:
            self._id += 1
            prev = self._last.get(scope)
            if prev is None and scope:
                prev = self._last.get(scope[:-2], 0)
            event: dict[str, Any] = {"timestamp": iso(now()), "type": type_, "id": self._id,
                                     "previousEventId": prev or 0}
            if details_key:
                event[details_key] = details if details is not None else {}
            if scope or ext:
                event["stepkit"] = {"scope": list(scope), **ext} if scope else dict(ext)
            if self._tag:
                event.update(self._tag)
            self._last[scope] = self._id
            self.sink.write(event)
            if self._keep:
                self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)
        return event


def read_jsonl(path: Path) -> list[dict]:
    """The events of a history file; a last line cut by a kill is left out, any other bad line is an error."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            if any(rest.strip() for rest in lines[number:]):
                raise ValueError(f"{path}:{number}: not a JSON event") from None
    return events


def history_file(history_dir: Path) -> Path:
    return Path(history_dir) / "history.jsonl"


def map_run_file(history_dir: Path, state_name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in state_name)
    return Path(history_dir) / "map-runs" / f"{safe}.jsonl"


def load_history(history_dir: Path) -> list[dict]:
    """The parent execution's events, in order (for `stepkit status` and the run report)."""
    return read_jsonl(history_file(history_dir))
