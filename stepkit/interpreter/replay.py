"""Where a redriven execution picks up, read from the history it left (complete, or cut by a kill -9).

AWS's redrive (developer guide, "Redriving executions"): the execution continues from the unsuccessful
step with the input that step had; steps that succeeded are not run again and keep their output. An inline
Map or a Parallel re-runs only the iterations / branches that failed or did not finish; a Distributed Map
re-runs only its child executions that did not succeed. The same rule applies inside each branch, iteration
and child: it continues from its own unfinished state.

So, per scope (the top level, one branch, one iteration, one child execution), the last state event says
where it stands: a state entered and never exited (it failed, was aborted, or the process died in it) is
run again with its recorded input; a state exited with a next state continues there with the exited output;
one exited at the end means the scope is done and its output is reused. A Fail state has no exit, so a
caught error that went on to a Fail state re-runs only that Fail state.
"""
from __future__ import annotations

import json
from typing import Any

_MARKERS = ("ParallelStateStarted", "MapStateStarted")


class Replay:
    def __init__(self, events: list[dict]):
        self.by_scope: dict[tuple, list[dict]] = {}
        self.markers: dict[tuple, int] = {}
        self.map_runs: dict[tuple, str] = {}
        for e in events:
            ext = e.get("stepkit") or {}
            scope = tuple(ext.get("scope") or ())
            kind = e["type"]
            if kind.endswith("StateEntered") or kind.endswith("StateExited"):
                self.by_scope.setdefault(scope, []).append(e)
            elif kind in _MARKERS:
                self.markers[scope + (ext.get("state"),)] = e["id"]
            elif kind == "MapRunStarted":
                self.map_runs[scope + (ext.get("state"),)] = e["mapRunStartedEventDetails"]["mapRunArn"]

    def resume(self, scope: tuple) -> tuple[str, str | None, Any]:
        """("done", None, output) | ("at", state name, input) | ("fresh", None, None)."""
        since = self.markers.get(scope[:-1], 0) if scope else 0
        events = self.by_scope.get(scope)
        last = events[-1] if events and events[-1]["id"] > since else None
        if last is None:
            return "fresh", None, None
        if last["type"].endswith("StateEntered"):
            d = last["stateEnteredEventDetails"]
            return "at", d["name"], json.loads(d["input"])
        d = last["stateExitedEventDetails"]
        nxt = last["stepkit"].get("next")
        output = json.loads(d["output"])
        return ("done", None, output) if nxt is None else ("at", nxt, output)

    def map_run_arn(self, state_path: tuple) -> str | None:
        return self.map_runs.get(state_path)


def children(events: list[dict], map_run_arn: str) -> dict[str, list[dict]]:
    """A Map Run's child executions' events, by child name."""
    out: dict[str, list[dict]] = {}
    for e in events:
        if e.get("mapRunArn") == map_run_arn:
            out.setdefault(e["execution"], []).append(e)
    return out


def status(events: list[dict]) -> str | None:
    """SUCCEEDED / FAILED / ABORTED / TIMED_OUT from the last execution event; None if it never ended."""
    for e in reversed(events):
        kind = e["type"]
        if kind in ("ExecutionRedriven", "ExecutionStarted"):
            return None
        if kind.startswith("Execution"):
            return {"ExecutionSucceeded": "SUCCEEDED", "ExecutionFailed": "FAILED", "ExecutionAborted": "ABORTED",
                    "ExecutionTimedOut": "TIMED_OUT"}.get(kind)
    return None
