"""Parallel: every branch runs in its own scope on its own thread (up to max_threads at once).

AWS's rule: when a branch fails, the Parallel state fails with that branch's error (its Retry / Catch then
apply) and the other branches are stopped: here their token is cancelled, so running tasks see
`TaskCall.cancelled`, and the state waits for them before it fails.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .control import Cancelled, Token
from .errors import StatesError
from .group import run_jobs
from .payload import apply_template

if TYPE_CHECKING:
    from .replay import Replay
    from .states import Machine


def run_parallel(m: "Machine", name: str, state: dict, effective: Any, scope: tuple, token: Token,
                 context: dict, replay: "Replay | None") -> list:
    if "Parameters" in state:
        effective = apply_template(state["Parameters"], effective, context)
    if replay is None or (scope + (name,)) not in replay.markers:
        m.history.emit("ParallelStateStarted", None, None, scope, state=name)
    branches = state["Branches"]
    results: list[Any] = [None] * len(branches)
    failures: list[StatesError] = []
    lock = threading.Lock()
    group = token.child()

    def branch(i: int) -> None:
        try:
            results[i] = m.run_scope(branches[i], effective, scope + (name, str(i)), group, replay)
        except StatesError as e:
            with lock:
                failures.append(e)
            group.cancel("branch failed")
        except Cancelled:
            pass

    try:
        run_jobs(len(branches), m.rt.max_threads, branch, group)
    finally:
        group.release()
    if failures:
        m.history.emit("ParallelStateFailed", None, None, scope)
        raise failures[0]
    token.check()
    m.history.emit("ParallelStateSucceeded", None, None, scope)
    return results
