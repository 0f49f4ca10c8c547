"""What interpreting a state machine costs next to the work it drives, against a baseline from the same run.

Adapters return at once, so everything measured is the interpreter's own cost. The baseline is a plain
Python loop that builds each call the way the interpreter hands it over (a TaskCall with the parameters
dict) and calls the same adapter: the least any orchestration can cost. Cases:

- `chain`: N Task states in a row (microseconds per state);
- `inline map`: one inline Map over 898 items, one Task per item (per item);
- `distributed map`: the golden pipeline's shape, one DISTRIBUTED Map over 898 items (a child execution per
  item, parameters built with intrinsics), with and without the history written to disk (per item);
- `golden`: the compiled predict_age definition end to end (898 batches), history on disk.

Each case runs `--runs` times; medians are printed. Wall time on the shared 2-core machine; max_threads=1
so thread scheduling does not blur the per-item figure (more threads overlap real work, not this cost).

Run: `.venv/bin/python benchmarks/interpreter_overhead.py [--runs N]`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepkit.interpreter import Execution, TaskCall  # noqa: E402

LAMBDA = "arn:aws:states:::lambda:invoke"
ECS = "arn:aws:states:::ecs:runTask.sync"
ITEMS = 898


def adapter(call: TaskCall):
    return None


def baseline(n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        params = {"Command": ["--config", "s3://b/pipeline.json", "--run-id", "run-1", "--batch-id", str(i)]}
        adapter(TaskCall(state="T", path=("M", str(i), "T"), resource=ECS, parameters=params, context={},
                         timeout=3600, attempt=0, cancelled=threading.Event(), execution_name="run-1"))
    return time.perf_counter() - start


def chain(n: int) -> dict:
    states = {f"T{i}": {"Type": "Task", "Resource": LAMBDA, "ResultPath": None,
                        "Parameters": {"i": i, "run.$": "$$.Execution.Name"}, "Next": f"T{i + 1}"} for i in range(n)}
    states[f"T{n - 1}"].pop("Next")
    states[f"T{n - 1}"]["End"] = True
    return {"StartAt": "T0", "States": states}


def map_of(mode: str) -> dict:
    task = {"Type": "Task", "Resource": ECS, "TimeoutSeconds": 3600, "ResultPath": None, "End": True,
            "Parameters": {"Command.$": "States.Array('--config', 's3://b/pipeline.json', '--run-id', $.run_id, "
                                        "'--batch-id', States.Format('{}', $.batch_id))"},
            "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 2}]}
    return {"StartAt": "Ids", "States": {
        "Ids": {"Type": "Pass", "Parameters": {"ids.$": f"States.ArrayRange(0, {ITEMS - 1}, 1)"},
                "ResultPath": "$.batch", "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.batch.ids", "MaxConcurrency": 100, "ResultPath": None, "End": True,
              "ItemSelector": {"batch_id.$": "$$.Map.Item.Value", "run_id.$": "$$.Execution.Name"},
              "ItemProcessor": {"ProcessorConfig": {"Mode": mode, "ExecutionType": "STANDARD"},
                                "StartAt": "T", "States": {"T": task}}}}}


def timed(definition: dict, adapters: dict, disk: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        execution = Execution(definition, adapters, name="run-1", history_dir=Path(tmp) if disk else None,
                              max_threads=1, max_wait_seconds=0)
        start = time.perf_counter()
        result = execution.run()
        elapsed = time.perf_counter() - start
    assert result.status == "SUCCEEDED", result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    golden = json.loads((ROOT / "tests/golden/predict_age/statemachine.asl.json").read_text())
    golden_adapters = {r: adapter for r in ("arn:aws:states:::athena:startQueryExecution.sync", ECS, LAMBDA,
                                            "arn:aws:states:::s3:putObject")}
    # The one-run-at-a-time check: this execution is the only one running.
    golden_adapters["arn:aws:states:::aws-sdk:sfn:listExecutions"] = lambda call: {"Executions": [{"Name": "run-1"}]}
    cases = [
        ("chain of 200 Task states", 200, "state", lambda: timed(chain(200), {LAMBDA: adapter}, False)),
        ("inline map, 898 items", ITEMS, "item", lambda: timed(map_of("INLINE"), {ECS: adapter}, False)),
        ("distributed map, 898 children, history in memory", ITEMS, "item",
         lambda: timed(map_of("DISTRIBUTED"), {ECS: adapter}, False)),
        ("distributed map, 898 children, history on disk", ITEMS, "item",
         lambda: timed(map_of("DISTRIBUTED"), {ECS: adapter}, True)),
        ("golden predict_age end to end, history on disk", ITEMS, "batch",
         lambda: timed(golden, golden_adapters, True)),
    ]
    base = statistics.median(baseline(ITEMS) for _ in range(runs)) / ITEMS
    print(f"baseline: plain loop building a TaskCall and calling the adapter: {base * 1e6:.1f} us per call")
    for label, n, unit, fn in cases:
        fn()  # warm-up: imports, compiled paths and intrinsic parses cached
        per = statistics.median(fn() for _ in range(runs)) / n
        print(f"{label}: {per * 1e6:.0f} us per {unit} ({per / base:.0f}x the baseline); "
              f"{per * n * 1e3:.0f} ms in all")
    print("for scale: one Fargate task of the pipeline starts in ~30-60 s; one local worker process in ~1 s")


if __name__ == "__main__":
    main()
