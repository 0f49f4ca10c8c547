"""The compiled predict_age definition, run end to end with recording adapters."""
from __future__ import annotations

import json
from pathlib import Path

from stepkit.interpreter import Execution, load_history
from tests.interpreter._helpers import ATHENA, ECS, LAMBDA, S3_PUT, Recorder

LIST_EXECUTIONS = "arn:aws:states:::aws-sdk:sfn:listExecutions"


def _running(n: int) -> Recorder:
    return Recorder({"Executions": [{"Status": "RUNNING"}] * n})

GOLDEN = Path(__file__).parents[1] / "golden" / "predict_age" / "statemachine.asl.json"


def test_golden_definition_runs_and_tasks_get_aws_parameters(tmp_path):
    definition = json.loads(GOLDEN.read_text())
    athena, ecs, lam, s3 = Recorder({}), Recorder({}), Recorder({}), Recorder(None)
    lines: list[str] = []
    execution = Execution(definition, {ATHENA: athena, ECS: ecs, LAMBDA: lam, S3_PUT: s3, LIST_EXECUTIONS: _running(1)},
                          name="run-20261202",
                          history_dir=tmp_path, max_wait_seconds=0.001, max_threads=8, log=lines.append)
    result = execution.run()
    assert result.status == "SUCCEEDED"

    batch7 = [c for c in ecs.calls if c.path == ("ParallelPrediction", "7", "ParallelPredictionBatch")]
    command = batch7[0].parameters["Overrides"]["ContainerOverrides"][0]["Command"]
    assert command[command.index("--batch-id") + 1] == "7"
    assert command[command.index("--run-id") + 1] == "run-20261202"
    assert len([c for c in ecs.calls if c.state == "ParallelPredictionBatch"]) == 898

    staging = next(c for c in athena.calls if c.state == "StagingFeatures")
    assert "predict_age_staging_parsed_features_2025q3/run-20261202/'" in staging.parameters["QueryString"]
    assert "format = 'PARQUET'" in staging.parameters["QueryString"]
    final = next(c for c in athena.calls if c.state == "FinalResults")
    assert "'run-20261202' AS run_id" in final.parameters["QueryString"]
    assert [c.parameters["Payload"]["run_id"] for c in lam.calls] == ["run-20261202"] * 2
    assert [c.state for c in lam.calls] == ["PreCleanup", "Cleanup"]  # a new run: no stage's prepare
    assert len(s3.calls[0].results) == 898
    assert lines == ["WaitForFinalResults: Wait of 180 s shortened to 0.001 s (local run)"]

    events = load_history(tmp_path)
    assert events == execution.events and events[-1]["type"] == "ExecutionSucceeded"
    children = (tmp_path / "map-runs" / "ParallelPrediction.jsonl").read_text().splitlines()
    assert len({json.loads(line)["execution"] for line in children}) == 898


def test_golden_failure_fails_at_the_failed_stage():
    """No Catch: the execution fails at the stage, with its error, so a redrive runs that stage again."""
    definition = json.loads(GOLDEN.read_text())

    def athena(call):
        if call.state == "TrainingFeatures":
            from stepkit.interpreter import TaskFailure
            raise TaskFailure("Athena.QueryFailed", "SYNTAX_ERROR: line 1:8")
        return {}

    lam = Recorder({})
    result = Execution(definition, {ATHENA: athena, ECS: Recorder({}), LAMBDA: lam, S3_PUT: Recorder(None),
                                    LIST_EXECUTIONS: _running(1)}, name="run-x").run()
    assert (result.status, result.error, result.cause) == ("FAILED", "Athena.QueryFailed", "SYNTAX_ERROR: line 1:8")
    assert result.failed_state.split("/")[-1] == "TrainingFeatures"
    assert [c.state for c in lam.calls] == ["PreCleanup"]


def test_golden_refuses_to_start_beside_a_running_execution():
    definition = json.loads(GOLDEN.read_text())
    lam = Recorder({})
    result = Execution(definition, {ATHENA: Recorder({}), ECS: Recorder({}), LAMBDA: lam, S3_PUT: Recorder(None),
                                    LIST_EXECUTIONS: _running(2)}, name="run-y").run()
    assert (result.status, result.error, result.failed_state) == ("FAILED", "stepkit.AnotherRunInProgress",
                                                                  "AnotherRunInProgress")
    assert lam.calls == []  # nothing ran: its PreCleanup would have deleted the running one's tables


def test_golden_continued_run_skips_done_stages_and_prepares_the_rest():
    """An execution that continues run R: stages in `done` are skipped; every other stage that writes a
    table is cleaned (its prepare state) before it runs; every state uses R's tables."""
    definition = json.loads(GOLDEN.read_text())
    athena, lam = Recorder({}), Recorder({})
    done = ["PreCleanup", "CreatePredictionsTable", "StagingFeatures", "TrainingFeatures", "TrainingTargets",
            "Training", "EvaluationFeatures"]
    result = Execution(definition, {ATHENA: athena, ECS: Recorder({}), LAMBDA: lam, S3_PUT: Recorder(None),
                                    LIST_EXECUTIONS: _running(1)}, name="run-z-2",
                       input={"run": {"id": "run-z"}, "done": dict.fromkeys(done, True)}).run()
    assert result.status == "SUCCEEDED"
    assert [c.state for c in athena.calls] == ["HumanQA", "FinalResults"] or \
        sorted(c.state for c in athena.calls) == ["FinalResults", "HumanQA"]
    assert sorted(c.state for c in lam.calls) == ["Cleanup", "FinalResults.prepare", "HumanQA.prepare",
                                                  "ParallelPrediction.prepare"]
    assert all("/run-z/" in c.parameters["QueryString"] for c in athena.calls)
    assert all(c.parameters["Payload"]["run_id"] == "run-z" for c in lam.calls)


def test_golden_refuses_a_run_id_that_would_break_out_of_sql():
    definition = json.loads(GOLDEN.read_text())
    result = Execution(definition, {ATHENA: Recorder({}), ECS: Recorder({}), LAMBDA: Recorder({}),
                                    S3_PUT: Recorder(None), LIST_EXECUTIONS: _running(1)}, name="x",
                       input={"run": {"id": "a'b"}}).run()
    assert (result.status, result.error) == ("FAILED", "stepkit.InvalidRunId")
