"""Execution: runs a compiled definition with local adapters, writes its history, and redrives it.

Local time: Wait states and retry delays are shortened to `max_wait_seconds` / `max_retry_delay_seconds`
(each shortening is reported through `log`, naming the state, AWS's delay and the local one). Task and
state machine TimeoutSeconds are enforced in wall time, multiplied by `timeout_scale`.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import check, errors
from .api import Adapters, Result
from .control import Cancelled, Deadlines, Token
from .errors import DefinitionError, StatesError
from .history import History, Sink, history_file, load_history, now
from .payload import dumps
from .replay import Replay, status as final_status
from .states import Machine


class NotRedrivable(ValueError):
    """The recorded execution cannot be redriven (it succeeded, or there is none)."""


class Runtime:
    """What every execution of one run (the parent and its Distributed Map children) shares."""

    def __init__(self, adapters: Adapters, *, history_dir: Path | None, region: str, account: str,
                 role_arn: str | None, max_wait_seconds: float, max_retry_delay_seconds: float,
                 timeout_scale: float, max_threads: int, log: Callable[[str], None],
                 on_event: Callable[[dict], None] | None):
        self.adapters, self.history_dir, self.region, self.account = adapters, history_dir, region, account
        self.role_arn = role_arn or f"arn:aws:iam::{account}:role/stepkit-local"
        self.max_wait_seconds, self.max_retry_delay_seconds = max_wait_seconds, max_retry_delay_seconds
        self.timeout_scale, self.max_threads = timeout_scale, max(1, max_threads)
        self.log, self.on_event = log, on_event
        self.deadlines = Deadlines()
        self._sinks: dict[Any, Sink] = {}
        self._lock = threading.Lock()

    def sink_for(self, path: Path | None) -> Sink:
        with self._lock:
            if path not in self._sinks:
                self._sinks[path] = Sink(path)
            return self._sinks[path]

    def close(self) -> None:
        with self._lock:
            for sink in self._sinks.values():
                sink.close()
        self.deadlines.close()


class Execution:
    def __init__(self, definition: dict, adapters: Adapters, *, name: str, input: Any = None,
                 history_dir: Path | None = None, state_machine_name: str = "local",
                 max_wait_seconds: float = 1.0, max_retry_delay_seconds: float = 0.5, max_threads: int = 8,
                 timeout_scale: float = 1.0, region: str = "us-east-1", account: str = "123456789012",
                 role_arn: str | None = None, log: Callable[[str], None] = lambda s: None,
                 on_event: Callable[[dict], None] | None = None, _prior: list[dict] | None = None):
        found = check.problems(definition, adapters)
        if found:
            raise DefinitionError(found)
        self.definition = definition
        self.name = name
        self.input = {} if input is None else input
        self.history_dir = Path(history_dir) if history_dir is not None else None
        self._prior = _prior
        if self.history_dir is not None and _prior is None and load_history(self.history_dir):
            raise FileExistsError(f"{history_file(self.history_dir)} already holds an execution; "
                                  "redrive it or use a new directory")
        self.rt = Runtime(adapters, history_dir=self.history_dir, region=region, account=account,
                          role_arn=role_arn, max_wait_seconds=max_wait_seconds,
                          max_retry_delay_seconds=max_retry_delay_seconds, timeout_scale=timeout_scale,
                          max_threads=max_threads, log=log, on_event=on_event)
        self.state_machine_name = state_machine_name
        self.sm_arn = f"arn:aws:states:{region}:{account}:stateMachine:{state_machine_name}"
        self.arn = f"arn:aws:states:{region}:{account}:execution:{state_machine_name}:{name}"
        self._token = Token()
        self._stop_reason = ("", "")
        sink = self.rt.sink_for(history_file(self.history_dir) if self.history_dir else None)
        start_id = max((e["id"] for e in _prior), default=0) if _prior else 0
        self._history = History(sink, keep=True, start_id=start_id, on_event=on_event)
        if _prior:
            self._history.events.extend(_prior)

    @property
    def events(self) -> list[dict]:
        return self._history.events

    def stop(self, error: str = "", cause: str = "") -> None:
        """Abort the execution from another thread: running tasks see `cancelled`; run() returns ABORTED."""
        self._stop_reason = (error, cause)
        self._token.cancel("stopped")

    def run(self) -> Result:
        started = now()
        replay = None
        start_time, redrives = started, 0
        if self._prior:
            first = next(e for e in self._prior if e["type"] == "ExecutionStarted")
            start_time = datetime.fromisoformat(first["timestamp"])
            redrives = sum(1 for e in self._prior if e["type"] == "ExecutionRedriven") + 1
            self._history.emit("ExecutionRedriven", "executionRedrivenEventDetails", {"redriveCount": redrives})
            replay = Replay(self._prior)
        else:
            self._history.emit("ExecutionStarted", "executionStartedEventDetails",
                               {"input": dumps(self.input), "inputDetails": {"truncated": False},
                                "roleArn": self.rt.role_arn, "stateMachineArn": self.sm_arn}, name=self.name)
        machine = Machine(self.rt, name=self.name, input=self.input, history=self._history, token=self._token,
                          start_time=start_time, arn=self.arn, sm_arn=self.sm_arn, sm_name=self.state_machine_name,
                          redrive_count=redrives, redrive_time=started if self._prior else None)
        deadline = None
        if "TimeoutSeconds" in self.definition:
            seconds = self.definition["TimeoutSeconds"] * self.rt.timeout_scale
            deadline = self.rt.deadlines.add(seconds, lambda: self._token.cancel("timed out"))
        try:
            output = machine.run_scope(self.definition, self.input, (), self._token, replay)
            if self._token.cancelled:
                raise Cancelled(self._token.reason)
            self._history.emit("ExecutionSucceeded", "executionSucceededEventDetails",
                               {"output": dumps(output), "outputDetails": {"truncated": False}})
            return Result("SUCCEEDED", output)
        except StatesError as e:
            if self._token.cancelled:
                return self._cancelled()
            self._history.emit("ExecutionFailed", "executionFailedEventDetails", {"error": e.error, "cause": e.cause})
            return Result("FAILED", None, e.error, e.cause, getattr(e, "state_path", None))
        except Cancelled:
            return self._cancelled()
        finally:
            Deadlines.remove(deadline)
            self.rt.close()

    def _cancelled(self) -> Result:
        if self._token.reason == "timed out":
            cause = "The execution ran longer than the state machine's TimeoutSeconds"
            self._history.emit("ExecutionTimedOut", "executionTimedOutEventDetails",
                               {"error": errors.TIMEOUT, "cause": cause})
            return Result("TIMED_OUT", None, errors.TIMEOUT, cause)
        error, cause = self._stop_reason
        self._history.emit("ExecutionAborted", "executionAbortedEventDetails", {"error": error, "cause": cause})
        return Result("ABORTED", None, error or None, cause or None)

    @classmethod
    def redrive(cls, definition: dict, adapters: Adapters, *, history_dir: Path, **options: Any) -> "Execution":
        """An Execution that continues the FAILED / ABORTED / TIMED_OUT (or killed) one in `history_dir`."""
        prior = load_history(Path(history_dir))
        started = [e for e in prior if e["type"] == "ExecutionStarted"]
        if not started:
            raise NotRedrivable(f"{history_file(Path(history_dir))} holds no execution to redrive")
        if final_status(prior) == "SUCCEEDED":
            raise NotRedrivable("the execution SUCCEEDED: there is nothing to redrive")
        first = started[0]
        name = (first.get("stepkit") or {}).get("name", options.pop("name", "local"))
        options.pop("name", None)
        options.pop("input", None)
        recorded_input = json.loads(first["executionStartedEventDetails"]["input"])
        return cls(definition, adapters, name=name, input=recorded_input, history_dir=history_dir,
                   _prior=prior, **options)


def check_resources(definition: dict, adapters: Adapters) -> list[str]:
    """Every Task / ItemReader / ResultWriter Resource without an adapter, and every structural problem the
    interpreter refuses (JSONata, unknown state types or fields), one line each naming the state."""
    return check.problems(definition, adapters)


__all__ = ["Execution", "NotRedrivable", "check_resources", "load_history"]
