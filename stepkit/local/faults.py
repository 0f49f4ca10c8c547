"""Fault injection for the tests: kill the run's own process with SIGKILL, as `kill -9` does, at one
point of one state. STEPKIT_FAULT_KILL="<when>:<state>", where <when> is

- `enter`: right after the state's Entered event is in the history (a stage boundary, or a statement
  of a chunked CTAS about to start);
- `commit`: after the service did the state's work (the engine wrote the CTAS, the container task
  ended, the cleanup deleted) and before the interpreter records it: work done, history silent;
- `exit`: right after the state's Exited event is in the history.

Only the first matching moment of a run kills (a Map's item state kills at its first item).
"""
from __future__ import annotations

import os
import signal

ENV = "STEPKIT_FAULT_KILL"


def kill_at(when: str, state: str) -> None:
    if os.environ.get(ENV) == f"{when}:{state}":
        os.kill(os.getpid(), signal.SIGKILL)
