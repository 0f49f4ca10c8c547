"""Map: inline (iterations in this execution's history) and DISTRIBUTED (one child execution per item or
batch, each with its own name, context object and history lines in `map-runs/<state>.jsonl`).

AWS's rules kept here:
- Items come from ItemsPath (default `$`; it must select an array) or, distributed, from ItemReader (a call
  to the adapter of its Resource, which returns the items). ItemSelector (legacy `Parameters`) builds each
  item's input from the Map's input and `$$.Map.Item.Index` / `$$.Map.Item.Value`; ItemBatcher groups them
  as `{"Items": [...], **BatchInput}`.
- Concurrency: MaxConcurrency (0 or absent: no limit), capped by the interpreter's max_threads.
- Inline: the first failed iteration fails the Map with its error; the others are stopped.
- Distributed: the Map Run fails with States.ExceedToleratedFailureThreshold once the failed children
  exceed ToleratedFailureCount or ToleratedFailurePercentage of all items (both default to 0); the
  children still running are then stopped. Within the tolerance it succeeds, a failed child's entry in the
  output being its {"Error", "Cause"}. ResultWriter: its Resource's adapter gets the child results
  (`TaskCall.results`) and what it returns is the Map's result; when it returns None the result is AWS's
  `{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}`.
- Redrive: an inline iteration or a child that finished successfully keeps its output; the others resume
  from their own unfinished state. ItemReader is called again.
"""
from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING, Any

from . import errors
from .control import Cancelled, Token
from .errors import StatesError
from .group import run_jobs
from .history import History, iso, map_run_file, now, read_jsonl
from .payload import apply_template, dumps, select
from .replay import Replay, children as child_events, status as final_status

if TYPE_CHECKING:
    from .states import Machine


def _number(state: dict, field: str, data: Any, default: Any) -> Any:
    if field in state:
        return state[field]
    if field + "Path" in state:
        value = select(data, state[field + "Path"], field + "Path")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StatesError(errors.RUNTIME, f"{field}Path must select a number, got {dumps(value)[:100]}")
        return value
    return default


def _items(m: "Machine", name: str, state: dict, effective: Any, context: dict, path: tuple, token: Token) -> list:
    reader = state.get("ItemReader")
    if reader is None:
        items = select(effective, state.get("ItemsPath", "$"), "ItemsPath")
        if not isinstance(items, list):
            raise StatesError(errors.RUNTIME, f"ItemsPath of Map state '{name}' must select an array, "
                              f"got {dumps(items)[:100]}")
        return items
    params = apply_template(reader.get("Parameters", {}), effective, context)
    items, failure = m.call(reader["Resource"], params, name, path, context, None, 0, token,
                            config=reader.get("ReaderConfig", {}))
    if failure is not None:
        raise StatesError(errors.ITEM_READER_FAILED, f"{failure.error}: {failure.cause}")
    if not isinstance(items, list):
        raise StatesError(errors.ITEM_READER_FAILED, f"the ItemReader returned {type(items).__name__}, not a list")
    return items


def _inputs(state: dict, items: list, effective: Any, context: dict) -> list:
    selector = state.get("ItemSelector", state.get("Parameters"))
    if selector is not None:
        out = []
        for i, value in enumerate(items):
            ctx = {**context, "Map": {"Item": {"Index": i, "Value": value}}}
            out.append(apply_template(selector, effective, ctx, "ItemSelector"))
        items = out
    batcher = state.get("ItemBatcher")
    if batcher is None:
        return items
    size = _number(batcher, "MaxItemsPerBatch", effective, None)
    max_bytes = _number(batcher, "MaxInputBytesPerBatch", effective, None)
    extra = apply_template(batcher.get("BatchInput", {}), effective, context)
    batches: list[list] = []
    for item in items:
        if batches:
            candidate = batches[-1] + [item]
            fits = (size is None or len(candidate) <= size) and (
                max_bytes is None or len(dumps({"Items": candidate, **extra})) <= max_bytes)
            if fits:
                batches[-1] = candidate
                continue
        batches.append([item])
    return [{"Items": b, **extra} for b in batches]


def run_map(m: "Machine", name: str, state: dict, effective: Any, scope: tuple, token: Token,
            context: dict, path: tuple, replay: Replay | None) -> Any:
    processor = state.get("ItemProcessor") or state["Iterator"]
    distributed = (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED"
    items = _items(m, name, state, effective, context, path, token)
    inputs = _inputs(state, items, effective, context)
    concurrency = int(_number(state, "MaxConcurrency", effective, 0)) or len(inputs)
    limit = min(concurrency, m.rt.max_threads)
    resumed = replay is not None and (scope + (name,)) in replay.markers
    if not resumed:
        m.history.emit("MapStateStarted", "mapStateStartedEventDetails", {"length": len(inputs)}, scope, state=name)
    try:
        if distributed:
            result = _distributed(m, name, state, processor, inputs, effective, scope, token, context, path,
                                  limit, replay if resumed else None)
        else:
            result = _inline(m, name, processor, inputs, scope, token, limit, replay)
    except StatesError:
        m.history.emit("MapStateFailed", None, None, scope)
        raise
    m.history.emit("MapStateSucceeded", None, None, scope)
    return result


def _inline(m, name, processor, inputs, scope, token, limit, replay) -> list:
    results: list[Any] = [None] * len(inputs)
    failures: list[StatesError] = []
    lock = threading.Lock()
    group = token.child()

    def iteration(i: int) -> None:
        details = {"name": name, "index": i}
        iscope = scope + (name, str(i))
        if replay is not None:
            kind, _, output = replay.resume(iscope)
            if kind == "done":
                results[i] = output
                return
        m.history.emit("MapIterationStarted", "mapIterationStartedEventDetails", details, scope)
        try:
            results[i] = m.run_scope(processor, inputs[i], iscope, group, replay)
        except StatesError as e:
            m.history.emit("MapIterationFailed", "mapIterationFailedEventDetails", details, scope)
            with lock:
                failures.append(e)
            group.cancel("iteration failed")
            return
        except Cancelled:
            m.history.emit("MapIterationAborted", "mapIterationAbortedEventDetails", details, scope)
            return
        m.history.emit("MapIterationSucceeded", "mapIterationSucceededEventDetails", details, scope)

    try:
        run_jobs(len(inputs), limit, iteration, group)
    finally:
        group.release()
    if failures:
        raise failures[0]
    token.check()
    return results


def _distributed(m, name, state, processor, inputs, effective, scope, token, context, path, limit, replay):
    Machine = type(m)  # a child execution is interpreted like its parent
    rt = m.rt
    label = state.get("Label", name)
    map_run_file = map_run_file_for(rt, path)
    old: dict[str, list[dict]] = {}
    arn = replay.map_run_arn(scope + (name,)) if replay is not None else None
    if arn is not None:
        old = child_events(read_jsonl(map_run_file) if map_run_file else [], arn)
        m.history.emit("MapRunRedriven", "mapRunRedrivenEventDetails",
                       {"mapRunArn": arn, "redriveCount": m._execution["RedriveCount"]}, scope, state=name)
    else:
        arn = f"arn:aws:states:{rt.region}:{rt.account}:mapRun:{m.sm_name}/{label}:{uuid.uuid4()}"
        m.history.emit("MapRunStarted", "mapRunStartedEventDetails", {"mapRunArn": arn}, scope, state=name)
    sink = rt.sink_for(map_run_file)
    n = len(inputs)
    # Only the thresholds given apply; with neither, one failed child fails the Map Run.
    tolerated_count = _number(state, "ToleratedFailureCount", effective, None)
    tolerated_pct = _number(state, "ToleratedFailurePercentage", effective, None)
    if tolerated_count is None and tolerated_pct is None:
        tolerated_count = 0
    entries: list[dict | None] = [None] * n
    failed = [0]
    exceeded: list[bool] = []
    lock = threading.Lock()
    group = token.child()
    child_sm = f"{m.sm_name}/{label}"

    def child(i: int) -> None:
        child_name = f"{label}-{i}"
        child_arn = f"arn:aws:states:{rt.region}:{rt.account}:execution:{child_sm}:{child_name}"
        prior = old.get(child_name, [])
        if prior and final_status(prior) == "SUCCEEDED":
            entries[i] = _entry_from(prior, child_name, child_arn)
            return
        start = now()
        history = History(sink, keep=False, tag={"execution": child_name, "mapRunArn": arn},
                          start_id=max((e["id"] for e in prior), default=0), on_event=rt.on_event)
        redrives = sum(1 for e in prior if e["type"] == "ExecutionRedriven") + (1 if prior else 0)
        first_start = prior[0]["timestamp"] if prior else None
        cm = Machine(rt, name=child_name, input=inputs[i], history=history, token=group, start_time=start,
                     arn=child_arn, sm_arn=f"{m.sm_arn}/{label}", sm_name=child_sm, prefix=path + (str(i),),
                     redrive_count=redrives, redrive_time=start if prior else None)
        if first_start:
            cm._execution["StartTime"] = first_start
        entry = {"ExecutionArn": child_arn, "Name": child_name, "Input": dumps(inputs[i]),
                 "StartDate": cm._execution["StartTime"], "RedriveCount": redrives}
        if prior:
            history.emit("ExecutionRedriven", "executionRedrivenEventDetails", {"redriveCount": redrives})
        else:
            history.emit("ExecutionStarted", "executionStartedEventDetails",
                         {"input": dumps(inputs[i]), "inputDetails": {"truncated": False},
                          "roleArn": rt.role_arn, "stateMachineArn": cm.sm_arn}, name=child_name)
        try:
            output = cm.run_scope(processor, inputs[i], (), group, Replay(prior) if prior else None)
        except StatesError as e:
            history.emit("ExecutionFailed", "executionFailedEventDetails", {"error": e.error, "cause": e.cause})
            entries[i] = {**entry, "Status": "FAILED", "Error": e.error, "Cause": e.cause, "StopDate": _stamp()}
            with lock:
                failed[0] += 1
                too_many = (tolerated_count is not None and failed[0] > tolerated_count) or (
                    tolerated_pct is not None and failed[0] * 100.0 / n > tolerated_pct)
                if too_many and not exceeded:
                    exceeded.append(True)
                    group.cancel("tolerated failure threshold exceeded")
            return
        except Cancelled:
            history.emit("ExecutionAborted", "executionAbortedEventDetails", {"error": "", "cause": ""})
            entries[i] = {**entry, "Status": "ABORTED", "StopDate": _stamp()}
            return
        history.emit("ExecutionSucceeded", "executionSucceededEventDetails",
                     {"output": dumps(output), "outputDetails": {"truncated": False}})
        entries[i] = {**entry, "Status": "SUCCEEDED", "Output": dumps(output), "StopDate": _stamp()}

    try:
        run_jobs(n, limit, child, group)
    finally:
        group.release()
    if exceeded:
        limits = " and ".join(x for x in (tolerated_count is not None and f"{tolerated_count} failures",
                                          tolerated_pct is not None and f"{tolerated_pct}%") if x)
        cause = f"{failed[0]} of {n} child executions failed; the Map Run tolerates {limits}"
        m.history.emit("MapRunFailed", "mapRunFailedEventDetails",
                       {"error": errors.EXCEED_TOLERATED_FAILURE_THRESHOLD, "cause": cause}, scope)
        raise StatesError(errors.EXCEED_TOLERATED_FAILURE_THRESHOLD, cause)
    token.check()
    m.history.emit("MapRunSucceeded", None, None, scope)
    writer = state.get("ResultWriter")
    if writer is None:
        return [json.loads(e["Output"]) if e["Status"] == "SUCCEEDED" else {"Error": e.get("Error"), "Cause": e.get("Cause")}
                for e in entries]
    params = apply_template(writer.get("Parameters", {}), effective, context)
    written, failure = m.call(writer["Resource"], params, name, path, context, None, 0, token,
                              results=list(entries), config=writer.get("WriterConfig", {}))
    if failure is not None:
        raise StatesError(errors.RESULT_WRITER_FAILED, f"{failure.error}: {failure.cause}")
    if written is not None:
        return written
    prefix = params.get("Prefix", "") if isinstance(params, dict) else ""
    key = "/".join(p for p in (prefix.strip("/"), arn.rsplit(":", 1)[-1], "manifest.json") if p)
    bucket = params.get("Bucket") if isinstance(params, dict) else None
    return {"MapRunArn": arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}}


def _stamp() -> str:
    return iso(now())


def _entry_from(prior: list[dict], child_name: str, child_arn: str) -> dict:
    started = next(e for e in prior if e["type"] == "ExecutionStarted")
    done = prior[-1] if prior[-1]["type"] == "ExecutionSucceeded" else next(
        e for e in reversed(prior) if e["type"] == "ExecutionSucceeded")
    return {"ExecutionArn": child_arn, "Name": child_name, "Input": started["executionStartedEventDetails"]["input"],
            "StartDate": started["timestamp"], "Status": "SUCCEEDED",
            "Output": done["executionSucceededEventDetails"]["output"], "StopDate": done["timestamp"],
            "RedriveCount": sum(1 for e in prior if e["type"] == "ExecutionRedriven")}


def map_run_file_for(rt, path: tuple):
    if rt.history_dir is None:
        return None
    return map_run_file(rt.history_dir, "/".join(path).replace("/", "."))
