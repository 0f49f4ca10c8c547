"""One execution's interpreter: runs a `States` graph (the top level, a Parallel branch, a Map iteration,
a Distributed Map child) state by state, with Retry and Catch, writing the history as it goes.
Parallel and Map live in `parallel.py` / `map.py`.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import errors
from .api import TaskCall
from .choice import evaluate as choice_matches, parse_timestamp
from .control import Cancelled, Deadlines, Token
from .errors import StatesError
from .history import History, iso, now
from .intrinsics import evaluate as intrinsic, is_intrinsic
from .map import run_map
from .parallel import run_parallel
from .payload import apply_template, dumps, result_path, select
from .retry import Retries

if TYPE_CHECKING:
    from .execution import Runtime
    from .replay import Replay


def split_resource(arn: str) -> tuple[str, str]:
    """resourceType / resource as AWS's task events split them: `arn:aws:states:::athena:startQueryExecution.sync`
    is (`athena`, `startQueryExecution.sync`)."""
    if arn.startswith("arn:aws:states:::"):
        service, _, api = arn[len("arn:aws:states:::"):].partition(":")
        return service, api
    parts = arn.split(":")
    return (parts[2] if len(parts) > 2 else arn), arn


def label(path: tuple) -> str:
    return "/".join(path)


class Machine:
    """One execution (the parent or a Distributed Map child)."""

    def __init__(self, runtime: "Runtime", *, name: str, input: Any, history: History, token: Token,
                 start_time: datetime, arn: str, sm_arn: str, sm_name: str, prefix: tuple = (),
                 redrive_count: int = 0, redrive_time: datetime | None = None):
        self.rt, self.name, self.input, self.history, self.token = runtime, name, input, history, token
        self.prefix, self.arn, self.sm_arn, self.sm_name = prefix, arn, sm_arn, sm_name
        self._execution = {"Id": arn, "Input": input, "Name": name, "RoleArn": runtime.role_arn,
                           "StartTime": iso(start_time), "RedriveCount": redrive_count}
        if redrive_time is not None:
            self._execution["RedriveTime"] = iso(redrive_time)

    def context(self, state: str, entered: str, retry_count: int) -> dict:
        return {"Execution": self._execution, "State": {"Name": state, "EnteredTime": entered,
                                                        "RetryCount": retry_count},
                "StateMachine": {"Id": self.sm_arn, "Name": self.sm_name}}

    # -- the state graph -------------------------------------------------------------------------
    def run_scope(self, machine: dict, data: Any, scope: tuple, token: Token, replay: "Replay | None" = None) -> Any:
        states = machine["States"]
        name = machine["StartAt"]
        if replay is not None:
            kind, at, recorded = replay.resume(scope)
            if kind == "done":
                return recorded
            if kind == "at":
                name, data = at, recorded
            else:
                replay = None
        while True:
            token.check()
            data, name = self.run_state(name, states[name], data, scope, token, replay)
            replay = None  # only the state the redrive picks up at looks into the old history
            if name is None:
                return data

    def run_state(self, name: str, state: dict, raw: Any, scope: tuple, token: Token,
                  replay: "Replay | None") -> tuple[Any, str | None]:
        kind = state["Type"]
        path = self.prefix + scope + (name,)
        event = self.history.emit(f"{kind}StateEntered", "stateEnteredEventDetails",
                                  {"name": name, "input": dumps(raw), "inputDetails": {"truncated": False}}, scope)
        entered = event["timestamp"]
        try:
            if kind in ("Task", "Parallel", "Map"):
                output, nxt = self._with_errors(name, state, raw, scope, token, entered, path, replay)
            else:
                output, nxt = self._simple(kind, name, state, raw, scope, token, entered, path)
        except StatesError as e:
            if not hasattr(e, "state_path"):
                e.state_path = label(path)
                if e.error == errors.RUNTIME:  # AWS's wording of a Runtime error's cause
                    e.cause = (f"An error occurred while executing the state '{name}' (entered at the event id "
                               f"#{event['id']}). {e.cause}")
            raise
        except Cancelled:
            if kind in ("Task", "Parallel", "Map", "Wait"):
                self.history.emit(f"{kind}StateAborted", None, None, scope)
            raise
        self.history.emit(f"{kind}StateExited", "stateExitedEventDetails",
                          {"name": name, "output": dumps(output), "outputDetails": {"truncated": False}},
                          scope, next=nxt)
        return output, nxt

    def _simple(self, kind, name, state, raw, scope, token, entered, path):
        if kind == "Fail":
            context = self.context(name, entered, 0)
            raise StatesError(self._fail_field(state, raw, "Error", context),
                              self._fail_field(state, raw, "Cause", context))
        effective = select(raw, state.get("InputPath", "$"), "InputPath")
        nxt = None if state.get("End") else state.get("Next")
        if kind == "Pass":
            if "Parameters" in state:
                effective = apply_template(state["Parameters"], effective, self.context(name, entered, 0))
            result = state["Result"] if "Result" in state else effective
            effective = result_path(raw, result, state.get("ResultPath", "$"))
        elif kind == "Wait":
            self._wait(state, effective, token, path)
        elif kind == "Choice":
            nxt = next((rule["Next"] for rule in state.get("Choices", []) if choice_matches(rule, effective)),
                       state.get("Default"))
            if nxt is None:
                raise StatesError(errors.NO_CHOICE_MATCHED, f"No Choice rule matched the input '{dumps(effective)[:200]}'")
        return select(effective, state.get("OutputPath", "$"), "OutputPath"), (None if kind == "Succeed" else nxt)

    def _fail_field(self, state: dict, raw: Any, field: str, context: dict) -> str | None:
        if field in state:
            return state[field]
        path = state.get(field + "Path")
        if path is None:
            return None
        value = intrinsic(path, raw, context) if is_intrinsic(path) else select(raw, path, field + "Path", context)
        if not isinstance(value, str):
            raise StatesError(errors.RUNTIME, f"{field}Path '{path}' must select a string, got {dumps(value)[:200]}")
        return value

    def _wait(self, state: dict, data: Any, token: Token, path: tuple) -> None:
        if "Seconds" in state or "SecondsPath" in state:
            seconds = state["Seconds"] if "Seconds" in state else select(data, state["SecondsPath"], "SecondsPath")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise StatesError(errors.RUNTIME, f"Wait seconds must be a non-negative number, got {seconds!r}")
        else:
            stamp = state["Timestamp"] if "Timestamp" in state else select(data, state["TimestampPath"], "TimestampPath")
            moment = parse_timestamp(stamp)
            if moment is None:
                raise StatesError(errors.RUNTIME, f"Wait timestamp is not an RFC 3339 timestamp: {stamp!r}")
            seconds = max(0.0, (moment - now()).total_seconds())
        local = min(seconds, self.rt.max_wait_seconds)
        if local < seconds:
            self.rt.log(f"{label(path)}: Wait of {seconds:g} s shortened to {local:g} s (local run)")
        token.sleep(local)

    # -- Task, Parallel, Map: Retry and Catch --------------------------------------------------------
    def _with_errors(self, name, state, raw, scope, token, entered, path, replay):
        effective = select(raw, state.get("InputPath", "$"), "InputPath")
        retries = Retries(state.get("Retry"))
        attempt = 0
        while True:
            context = self.context(name, entered, retries.total)
            try:
                if state["Type"] == "Task":
                    result = self._task(name, state, effective, scope, token, context, attempt, path)
                elif state["Type"] == "Parallel":
                    result = run_parallel(self, name, state, effective, scope, token, context,
                                          replay if attempt == 0 else None)
                else:
                    result = run_map(self, name, state, effective, scope, token, context, path,
                                     replay if attempt == 0 else None)
                if "ResultSelector" in state:
                    result = apply_template(state["ResultSelector"], result, context, "ResultSelector")
                output = result_path(raw, result, state.get("ResultPath", "$"))
                return select(output, state.get("OutputPath", "$"), "OutputPath"), \
                    (None if state.get("End") else state.get("Next"))
            except StatesError as e:
                delay = retries.next_delay(e.error)
                if delay is not None:
                    local = min(delay, self.rt.max_retry_delay_seconds)
                    why = (e.cause or "").strip().splitlines()[0][:160] if e.cause else ""
                    self.rt.log(f"{label(path)}: {e.error}" + (f" ({why})" if why else "")
                                + f"; retry {retries.total} in {local:.2g} s (AWS would wait {delay:.3g} s)")
                    token.sleep(local)
                    attempt += 1
                    continue
                catchers = state.get("Catch") or []
                index = errors.first_match(catchers, e.error)
                if index is None:
                    raise
                catcher = catchers[index]
                caught = {"Error": e.error, "Cause": e.cause}
                return result_path(raw, caught, catcher.get("ResultPath", "$")), catcher["Next"]

    def _task(self, name, state, effective, scope, token, context, attempt, path):
        params = apply_template(state["Parameters"], effective, context) if "Parameters" in state else effective
        timeout = state.get("TimeoutSeconds")
        if "TimeoutSecondsPath" in state:
            timeout = select(effective, state["TimeoutSecondsPath"], "TimeoutSecondsPath")
        resource = state["Resource"]
        rtype, rname = split_resource(resource)
        scheduled = {"resourceType": rtype, "resource": rname, "region": self.rt.region, "parameters": dumps(params)}
        if timeout is not None:
            scheduled["timeoutInSeconds"] = timeout
        if "HeartbeatSeconds" in state:
            scheduled["heartbeatInSeconds"] = state["HeartbeatSeconds"]
        self.history.emit("TaskScheduled", "taskScheduledEventDetails", scheduled, scope)
        self.history.emit("TaskStarted", "taskStartedEventDetails", {"resourceType": rtype, "resource": rname}, scope)
        local_timeout = None if timeout is None else timeout * self.rt.timeout_scale
        result, failure = self.call(resource, params, name, path, context, local_timeout, attempt, token)
        ids = {"resourceType": rtype, "resource": rname}
        if failure is not None:
            kind = "TaskTimedOut" if failure.error == errors.TIMEOUT else "TaskFailed"
            self.history.emit(kind, kind[0].lower() + kind[1:] + "EventDetails",
                              {**ids, "error": failure.error, "cause": failure.cause}, scope)
            raise failure
        self.history.emit("TaskSucceeded", "taskSucceededEventDetails", {**ids, "output": dumps(result)}, scope)
        return result

    def call(self, resource: str, params: Any, name: str, path: tuple, context: dict, timeout: float | None,
             attempt: int, token: Token, **extra) -> tuple[Any, StatesError | None]:
        """Run the adapter of `resource`; (result, None) or (None, the failure). Cancelled if the scope was."""
        task_token = token.child()
        timed_out: list[bool] = []
        entry = None
        if timeout is not None:
            def expire() -> None:
                timed_out.append(True)
                task_token.cancel("timeout")
            entry = self.rt.deadlines.add(timeout, expire)
        call = TaskCall(state=name, path=path, resource=resource, parameters=params, context=context,
                        timeout=timeout, attempt=attempt, cancelled=task_token.event, execution_name=self.name,
                        **extra)
        result, failure = None, None
        try:
            result = self.rt.adapters[resource](call)
        except StatesError as e:  # TaskFailure included
            failure = StatesError(e.error, e.cause)
        except Exception as e:  # an adapter's own bug: the task fails with the exception's class, as Lambda reports it
            self.rt.log(f"{label(path)}: the adapter for {resource} raised {type(e).__name__}: {e}")
            failure = StatesError(type(e).__name__, str(e))
        finally:
            Deadlines.remove(entry)
            task_token.release()
        if timed_out:
            return None, StatesError(errors.TIMEOUT, f"The task ran longer than its TimeoutSeconds ({timeout:g} s locally)")
        token.check()
        return result, failure

