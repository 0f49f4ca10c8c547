"""Redrive (AWS "Redriving executions"): only unfinished work runs again, and the output equals an
uninterrupted run's. Includes a history cut by kill -9 and a last line cut in half."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stepkit.interpreter import Execution, NotRedrivable, TaskFailure, load_history
from tests.interpreter._helpers import LAMBDA, Recorder, one

ROOT = Path(__file__).parents[2]


class Flaky:
    """An adapter that fails the calls whose path is in `failing` (until cleared) and echoes the rest."""

    def __init__(self, *failing: str):
        self.failing = set(failing)
        self.calls: list[str] = []

    def __call__(self, call):
        where = "/".join(call.path)
        self.calls.append(where)
        if where in self.failing:
            raise TaskFailure("Flaky", where)
        return {"at": where, "got": call.parameters}


def _task(name_next=None, **extra):
    state = {"Type": "Task", "Resource": LAMBDA, **extra}
    state.update({"Next": name_next} if name_next else {"End": True})
    return state


PARALLEL = {"StartAt": "Before", "States": {
    "Before": _task("Par"),
    "Par": {"Type": "Parallel", "Next": "After", "Branches": [
        {"StartAt": "A1", "States": {"A1": _task("A2"), "A2": _task()}},
        {"StartAt": "B1", "States": {"B1": _task("B2"), "B2": _task()}}]},
    "After": _task()}}

INLINE_MAP = {"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, "MaxConcurrency": 1, "ItemProcessor": {
    "StartAt": "I1", "States": {"I1": _task("I2"), "I2": _task()}}}}}

DISTRIBUTED = {"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, "MaxConcurrency": 1, "ItemProcessor": {
    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
    "StartAt": "C1", "States": {"C1": _task("C2"), "C2": _task()}}, "ToleratedFailureCount": 0}}}

REDRIVE = [
    # (name, definition, input, failing task, state that failed the execution, calls made again on redrive)
    ("task_in_a_parallel_branch", PARALLEL, {"x": 1}, "Par/1/B2", "Par/1/B2", ["Par/1/B2", "After"]),
    ("inline_map_iteration", INLINE_MAP, [1, 2, 3], "M/1/I2", "M/1/I2", ["M/1/I2", "M/2/I1", "M/2/I2"]),
    # The Map Run itself fails (States.ExceedToleratedFailureThreshold), so the Map state is the failed one.
    ("distributed_child_past_tolerance", DISTRIBUTED, [1, 2, 3, 4], "M/2/C2", "M", ["M/2/C2", "M/3/C1", "M/3/C2"]),
]


@pytest.mark.parametrize("name,definition,data,failing,failed_state,again", REDRIVE, ids=[c[0] for c in REDRIVE])
def test_redrive_runs_only_unfinished_work(tmp_path, name, definition, data, failing, failed_state, again):
    clean = Execution(definition, {LAMBDA: Flaky()}, name="e", input=data).run()
    adapter = Flaky(failing)
    first = Execution(definition, {LAMBDA: adapter}, name="e", input=data, history_dir=tmp_path, max_threads=1).run()
    assert first.status == "FAILED" and first.failed_state == failed_state
    adapter.failing.clear()
    adapter.calls.clear()
    redriven = Execution.redrive(definition, {LAMBDA: adapter}, history_dir=tmp_path, max_threads=1)
    result = redriven.run()
    assert sorted(adapter.calls) == sorted(again)
    assert (result.status, result.output) == ("SUCCEEDED", clean.output)
    assert [e["type"] for e in load_history(tmp_path)].count("ExecutionRedriven") == 1


def test_redrive_after_a_caught_error_reruns_only_the_fail_state(tmp_path):
    """The caught state and the cleanup exited; the Fail state is the one unsuccessful step, so redrive
    runs it again with its recorded input and the execution fails again without calling any task."""
    definition = {"StartAt": "Work", "States": {
        "Work": _task("Done", Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Cleanup"}]),
        "Cleanup": _task("Failed", ResultPath=None),
        "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        "Done": {"Type": "Succeed"}}}
    adapter = Flaky("Work")
    first = Execution(definition, {LAMBDA: adapter}, name="e", input={}, history_dir=tmp_path).run()
    assert (first.status, first.error, first.failed_state) == ("FAILED", "Flaky", "Failed")
    adapter.failing.clear()
    adapter.calls.clear()
    again = Execution.redrive(definition, {LAMBDA: adapter}, history_dir=tmp_path).run()
    assert (again.status, again.error, again.cause) == ("FAILED", "Flaky", "Work")
    assert adapter.calls == []


def test_redrive_count_and_time_in_the_context_object(tmp_path):
    definition = one(_task(Parameters={"count.$": "$$.Execution.RedriveCount", "name.$": "$$.Execution.Name"}))
    adapter = Flaky("S")
    Execution(definition, {LAMBDA: adapter}, name="the-run", input={}, history_dir=tmp_path).run()
    Execution.redrive(definition, {LAMBDA: adapter}, history_dir=tmp_path).run()
    adapter.failing.clear()
    result = Execution.redrive(definition, {LAMBDA: adapter}, history_dir=tmp_path).run()
    assert result.output["got"] == {"count": 2, "name": "the-run"}


def test_a_succeeded_execution_is_not_redriven(tmp_path):
    Execution(one({"Type": "Pass"}), {}, name="e", history_dir=tmp_path).run()
    with pytest.raises(NotRedrivable, match="SUCCEEDED"):
        Execution.redrive(one({"Type": "Pass"}), {}, history_dir=tmp_path)


def test_a_new_execution_refuses_a_directory_with_history(tmp_path):
    Execution(one({"Type": "Pass"}), {}, name="e", history_dir=tmp_path).run()
    with pytest.raises(FileExistsError):
        Execution(one({"Type": "Pass"}), {}, name="e2", history_dir=tmp_path)


def test_history_with_its_last_line_cut_redrives(tmp_path):
    adapter = Flaky("M/2/I1")
    Execution(INLINE_MAP, {LAMBDA: adapter}, name="e", input=[1, 2, 3], history_dir=tmp_path, max_threads=1).run()
    path = tmp_path / "history.jsonl"
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 40])  # the last event (ExecutionFailed) cut mid-line
    adapter.failing.clear()
    adapter.calls.clear()
    result = Execution.redrive(INLINE_MAP, {LAMBDA: adapter}, history_dir=tmp_path, max_threads=1).run()
    assert result.status == "SUCCEEDED" and sorted(adapter.calls) == ["M/2/I1", "M/2/I2"]


KILLED = """
import json, sys, time
from stepkit.interpreter import Execution
definition = json.loads(sys.argv[1])
def adapter(call):
    if call.path == ("M", "2", "C1"):
        print("blocked", flush=True)
        time.sleep(60)
    return {"at": "/".join(call.path), "got": call.parameters}
Execution(definition, {"%s": adapter}, name="killed", input=[1, 2, 3, 4], history_dir=sys.argv[2],
          max_threads=1).run()
""" % LAMBDA


def test_redrive_after_kill_9_mid_distributed_map(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", KILLED, json.dumps(DISTRIBUTED), str(tmp_path)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout.readline().strip() == "blocked"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    adapter = Flaky()
    result = Execution.redrive(DISTRIBUTED, {LAMBDA: adapter}, history_dir=tmp_path, max_threads=1).run()
    assert result.status == "SUCCEEDED"
    assert sorted(adapter.calls) == ["M/2/C1", "M/2/C2", "M/3/C1", "M/3/C2"]
    assert result.output == Execution(DISTRIBUTED, {LAMBDA: Flaky()}, name="x", input=[1, 2, 3, 4]).run().output
