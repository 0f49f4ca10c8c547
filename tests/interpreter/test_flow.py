"""Parallel, Map (inline and distributed), timeouts, stop(), and what the interpreter refuses."""
from __future__ import annotations

import threading
import time

import pytest

from stepkit.interpreter import DefinitionError, Execution, TaskFailure, check_resources
from tests.interpreter._helpers import ECS, LAMBDA, S3_PUT, Recorder, one, run


def _task(**extra):
    return {"Type": "Task", "Resource": LAMBDA, "End": True, **extra}


def _waits_for_cancel(call):
    """A cooperative adapter: runs until told to stop, then reports how it ended."""
    if call.parameters.get("fail"):
        time.sleep(0.05)
        raise TaskFailure("Branch.Error", "branch 1 failed")
    assert call.cancelled.wait(5), "the task was never cancelled"
    raise TaskFailure("Cancelled", "stopped")


def test_failed_branch_cancels_siblings_and_fails_the_parallel_with_its_error():
    task = Recorder(_waits_for_cancel)
    definition = one({"Type": "Parallel", "Branches": [
        {"StartAt": "A", "States": {"A": _task(Parameters={"fail": False})}},
        {"StartAt": "B", "States": {"B": _task(Parameters={"fail": True})}},
        {"StartAt": "C", "States": {"C": _task(Parameters={"fail": False})}}],
        "Catch": [{"ErrorEquals": ["Branch.Error"], "ResultPath": "$.error", "Next": "Caught"}]})
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    out = run(definition, {}, {LAMBDA: task})
    assert out.status == "SUCCEEDED"
    assert out.output["error"] == {"Error": "Branch.Error", "Cause": "branch 1 failed"}
    assert sorted(c.path for c in task.calls) == [("S", "0", "A"), ("S", "1", "B"), ("S", "2", "C")]
    assert all(c.cancelled.is_set() for c in task.calls if c.state != "B")


def test_parallel_output_is_the_branch_outputs_in_order():
    definition = one({"Type": "Parallel", "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": i, "End": True}}} for i in range(5)]})
    assert run(definition, {}, max_threads=2).output == [0, 1, 2, 3, 4]


def test_inline_map_concurrency_is_capped_by_maxconcurrency():
    running, peak, lock = [0], [0], threading.Lock()

    def answer(call):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return call.parameters

    definition = one({"Type": "Map", "MaxConcurrency": 3, "ItemProcessor": {"StartAt": "T", "States": {"T": _task()}}})
    out = run(definition, list(range(12)), {LAMBDA: Recorder(answer)}, max_threads=8)
    assert out.output == list(range(12)) and peak[0] == 3


def _distributed(**fields):
    return one({"Type": "Map", "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "T", "States": {"T": _task()}}, **fields})


def _fails_odd(call):
    if call.parameters % 2:
        raise TaskFailure("Odd", str(call.parameters))
    return call.parameters


TOLERANCE = [
    # (name, fields, items, status) -- items 0..n-1, odd ones fail
    ("no_tolerance_one_failure_fails", {}, 2, "FAILED"),
    ("count_equal_to_failures_succeeds", {"ToleratedFailureCount": 5}, 10, "SUCCEEDED"),
    ("count_below_failures_fails", {"ToleratedFailureCount": 4}, 10, "FAILED"),
    ("percentage_equal_to_failures_succeeds", {"ToleratedFailurePercentage": 50}, 10, "SUCCEEDED"),
    ("percentage_below_failures_fails", {"ToleratedFailurePercentage": 49}, 10, "FAILED"),
    ("percentage_from_a_path", {"ToleratedFailurePercentagePath": "$.pct"}, 10, "SUCCEEDED"),
    ("either_threshold_exceeded_fails", {"ToleratedFailureCount": 100, "ToleratedFailurePercentage": 10}, 10, "FAILED"),
]


@pytest.mark.parametrize("name,fields,n,status", TOLERANCE, ids=[c[0] for c in TOLERANCE])
def test_distributed_map_tolerated_failures(name, fields, n, status):
    definition = _distributed(ItemsPath="$.items", **fields)
    out = run(definition, {"items": list(range(n)), "pct": 50}, {LAMBDA: Recorder(_fails_odd)}, max_threads=1)
    assert out.status == status
    if status == "FAILED":
        assert out.error == "States.ExceedToleratedFailureThreshold"
    else:
        assert out.output[::2] == list(range(0, n, 2)) and out.output[1]["Error"] == "Odd"


def test_distributed_children_have_their_own_execution_name_and_itemselector_sees_the_parent():
    task = Recorder(lambda call: call.parameters)
    definition = _distributed(ItemSelector={"value.$": "$$.Map.Item.Value", "run.$": "$$.Execution.Name"},
                              Label="Batches")
    out = run(definition, ["a", "b"], {LAMBDA: task}, name="parent-run")
    assert out.output == [{"value": "a", "run": "parent-run"}, {"value": "b", "run": "parent-run"}]
    assert sorted(c.execution_name for c in task.calls) == ["Batches-0", "Batches-1"]
    assert {c.context["Execution"]["Name"] for c in task.calls} == {"Batches-0", "Batches-1"}


def test_item_reader_result_writer_and_batcher_call_their_adapters():
    reader = Recorder(lambda call: list(range(5)))
    writer = Recorder(lambda call: {"written": len(call.results)})
    task = Recorder(lambda call: len(call.parameters["Items"]))
    reader_arn = "arn:aws:states:::s3:getObject"
    definition = _distributed(
        ItemReader={"Resource": reader_arn, "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": "b", "Key.$": "$.key"}},
        ItemBatcher={"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$$.Execution.Name"}},
        ResultWriter={"Resource": S3_PUT, "Parameters": {"Bucket": "b", "Prefix": "out"}})
    out = run(definition, {"key": "items.json"}, {LAMBDA: task, reader_arn: reader, S3_PUT: writer})
    assert out.output == {"written": 3}
    assert reader.calls[0].parameters == {"Bucket": "b", "Key": "items.json"}
    assert reader.calls[0].config == {"InputType": "JSON"}
    assert sorted(c.parameters["Items"] for c in task.calls) == [[0, 1], [2, 3], [4]]
    assert task.calls[0].parameters["run"] == "exec-1"
    assert [r["Status"] for r in writer.calls[0].results] == ["SUCCEEDED"] * 3


def test_result_writer_default_output_names_the_manifest():
    definition = _distributed(ResultWriter={"Resource": S3_PUT, "Parameters": {"Bucket": "b", "Prefix": "out"}})
    out = run(definition, [1], {LAMBDA: Recorder(1), S3_PUT: Recorder(None)})
    details = out.output["ResultWriterDetails"]
    assert details["Bucket"] == "b" and details["Key"].startswith("out/") and details["Key"].endswith("/manifest.json")


def test_task_timeout_is_states_timeout_and_the_adapter_sees_cancelled():
    task = Recorder(_waits_for_cancel)
    started = time.monotonic()
    out = run(one(_task(TimeoutSeconds=1, Parameters={})), {}, {LAMBDA: task}, timeout_scale=0.05)
    assert (out.status, out.error) == ("FAILED", "States.Timeout")
    assert task.calls[0].timeout == pytest.approx(0.05) and task.calls[0].cancelled.is_set()
    assert time.monotonic() - started < 2


def test_state_machine_timeout_ends_timed_out():
    definition = one({"Type": "Wait", "Seconds": 60}, TimeoutSeconds=1)
    out = run(definition, {}, max_wait_seconds=5, timeout_scale=0.05)
    assert (out.status, out.error) == ("TIMED_OUT", "States.Timeout")


def test_stop_aborts_and_cancels_running_tasks():
    entered = threading.Barrier(4)

    def answer(call):
        entered.wait(5)
        assert call.cancelled.wait(5)
        return "late"

    task = Recorder(answer)
    execution = Execution(_distributed(), {LAMBDA: task}, name="e", input=[1, 2, 3], max_threads=3)
    threading.Thread(target=lambda: (entered.wait(5), execution.stop("User.Stop", "operator"))).start()
    out = execution.run()
    assert (out.status, out.error, out.cause) == ("ABORTED", "User.Stop", "operator")
    assert len(task.calls) == 3 and all(c.cancelled.is_set() for c in task.calls)
    assert execution.events[-1]["type"] == "ExecutionAborted"


def test_wait_is_shortened_and_reported():
    lines = []
    out = run(one({"Type": "Wait", "Seconds": 180}), {"x": 1}, log=lines.append)
    assert out.output == {"x": 1} and lines == ["S: Wait of 180 s shortened to 0.001 s (local run)"]


REFUSED = [
    ("missing_adapter", one(_task()), {}, "state S: no local adapter for resource arn:aws:states:::lambda:invoke"),
    ("nested_missing_adapter", _distributed(ResultWriter={"Resource": S3_PUT}), {LAMBDA: 1},
     "state S (ResultWriter): no local adapter for resource arn:aws:states:::s3:putObject"),
    ("jsonata_machine", one({"Type": "Pass"}, QueryLanguage="JSONata"), {},
     "the state machine: QueryLanguage 'JSONata' is not supported by the local interpreter (JSONPath only)"),
    ("jsonata_state", one({"Type": "Pass", "QueryLanguage": "JSONata"}), {},
     "state S: QueryLanguage 'JSONata' is not supported by the local interpreter (JSONPath only)"),
    ("assign", one({"Type": "Pass", "Assign": {"x": 1}}), {},
     "state S: workflow variables (Assign) are not supported by the local interpreter"),
    ("unknown_type", one({"Type": "Activity", "End": True}), {},
     "state S: state type 'Activity' is not supported by the local interpreter"),
    ("unknown_field", one({"Type": "Pass", "Reslt": 1}), {}, "state S: unknown field 'Reslt' for a Pass state"),
    ("dangling_next", one({"Type": "Pass", "Next": "Nowhere"}), {}, "state S: Next 'Nowhere' names no state"),
    ("branch_state_path", one({"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": _task()}}]}), {},
     "state S/0/B: no local adapter for resource arn:aws:states:::lambda:invoke"),
]


@pytest.mark.parametrize("name,definition,adapters,message", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_before_running(name, definition, adapters, message):
    assert check_resources(definition, adapters) == [message]
    with pytest.raises(DefinitionError) as caught:
        Execution(definition, adapters, name="e")
    assert caught.value.problems == [message]


def test_task_events_split_the_resource_like_aws():
    execution = Execution(one(_task(TimeoutSeconds=5, Resource=ECS)), {ECS: Recorder({"ok": 1})}, name="e")
    execution.run()
    types = [e["type"] for e in execution.events]
    assert types == ["ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded",
                     "TaskStateExited", "ExecutionSucceeded"]
    scheduled = execution.events[2]["taskScheduledEventDetails"]
    assert (scheduled["resourceType"], scheduled["resource"], scheduled["timeoutInSeconds"]) == (
        "ecs", "runTask.sync", 5)
    assert [e["id"] for e in execution.events] == list(range(1, 8))
    assert all(e["timestamp"].endswith("+00:00") for e in execution.events)
