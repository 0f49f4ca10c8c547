"""What an unfinished run does next, decided from the compiled definition and the run's histories alone
(stepkit/compiler/recovery.py): the decision `stepkit redrive` takes on AWS and `--resume` locally.

Histories are written here in AWS's event shape, as GetExecutionHistory returns them (the local
interpreter writes the same shape; tests/test_local_kill.py drives the decision through real runs).
"""
from __future__ import annotations

import json

import pytest

from stepkit.compiler import recovery

BEFORE_STAGING = ["Start", "NewRun", "CheckRunId", "CheckOtherRuns", "OneRunAtATime", "PreCleanup.done",
                  "PreCleanup", "GenerateBatchIds", "CreatePredictionsTable.done", "CreatePredictionsTable"]


@pytest.fixture(scope="module")
def shape():
    from stepkit.cli import _variables
    from stepkit.compiler.build import compile_file

    artifacts = compile_file("pipelines/predict_age.yaml", _variables((), "pipelines/example.env"))
    return recovery.Shape.of(artifacts.definition)


def history(entered_and_exited: list[str], open_: list[str] = (), end: str | None = "ExecutionFailed",
            given: dict | None = None) -> list[dict]:
    """ExecutionStarted, each state entered and exited, the `open_` ones entered only, then `end`."""
    events = [{"type": "ExecutionStarted", "executionStartedEventDetails": {"input": json.dumps(given or {})}}]
    for name in entered_and_exited:
        events += [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}},
                   {"type": "TaskStateExited", "stateExitedEventDetails": {"name": name}}]
    events += [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}} for name in open_]
    if end:
        events.append({"type": end})
    return [dict(e, id=i + 1) for i, e in enumerate(events)]


@pytest.mark.parametrize("finished, open_, end, kind, kept", [
    # a container task, a Map's batches, the cleanup function: redrive runs them again as they are
    (BEFORE_STAGING + ["StagingFeatures.done", "StagingFeatures"], ["Training.done", "Training"],
     "ExecutionFailed", "redrive", None),
    (BEFORE_STAGING, ["ParallelPrediction.done", "ParallelPrediction"], "ExecutionAborted", "redrive", None),
    # a CTAS cut short: a new execution of the run, its finished stages kept
    (BEFORE_STAGING + ["StagingFeatures.done"], ["StagingFeatures"], "ExecutionFailed", "continue",
     ["CreatePredictionsTable", "PreCleanup"]),
    # killed (no end event at all) inside an INSERT INTO of a chain: the whole stage runs again
    (BEFORE_STAGING + ["StagingFeatures.done", "StagingFeatures", "EvaluationFeatures.done",
                       "EvaluationFeatures"], ["EvaluationFeatures_Insert01"], None, "continue",
     ["CreatePredictionsTable", "PreCleanup", "StagingFeatures"]),
    # the prepare state (a clean-up) may run again as it is
    (BEFORE_STAGING + ["StagingFeatures.done"], ["StagingFeatures.prepare"], "ExecutionFailed", "redrive", None),
    # a Fail state entered: a redrive would run only the Fail state again
    (["Start", "NewRun", "CheckRunId", "CheckOtherRuns", "OneRunAtATime"], ["AnotherRunInProgress"],
     "ExecutionFailed", "continue", []),
    # a run id CheckRunId refuses (a quote, a slash...): every execution of that run would stop there again
    (["Start", "CheckRunId"], ["InvalidRunId"], "ExecutionFailed", "new", None),
    (BEFORE_STAGING, [], "ExecutionSucceeded", "done", None),
])
def test_decision(shape, finished, open_, end, kind, kept):
    d = recovery.decide(shape, [history(finished, open_, end)], "run-1")
    assert d.kind == kind, d.reason
    if kind == "continue":
        assert d.input == {"run": {"id": "run-1"}, "done": dict.fromkeys(kept, True)}


def test_a_redriven_execution_settles_what_it_entered_before(shape):
    events = history(BEFORE_STAGING + ["StagingFeatures.done"], ["StagingFeatures"])
    events += [{"type": "ExecutionRedriven"}, {"type": "TaskStateEntered", "stateEnteredEventDetails":
                                               {"name": "Training"}}, {"type": "ExecutionFailed"}]
    assert recovery.decide(shape, [events], "run-1").kind == "redrive"


def test_stages_done_accumulate_over_the_runs_executions(shape):
    first = history(BEFORE_STAGING + ["StagingFeatures.done"], ["StagingFeatures"])
    given = {"run": {"id": "run-1"}, "done": {"PreCleanup": True, "CreatePredictionsTable": True}}
    second = history(["Start", "CheckRunId", "StagingFeatures.done", "StagingFeatures.prepare", "StagingFeatures",
                      "TrainingFeatures.done", "TrainingFeatures.prepare"], ["TrainingFeatures"], given=given)
    d = recovery.decide(shape, [first, second], "run-1")
    assert d.kind == "continue"
    assert list(d.input["done"]) == ["CreatePredictionsTable", "PreCleanup", "StagingFeatures"]
    assert recovery.run_id(second, "run-1-c2") == "run-1"


# A run of predict_age.yaml with an on_failure clean-up that failed at HumanQA, after ParallelPrediction
# filled the predictions table CreatePredictionsTable made: what the clean-up dropped decides what is kept.
UP_TO_HUMAN_QA = BEFORE_STAGING + [
    "StagingFeatures.done", "StagingFeatures", "TrainingFeatures.done", "TrainingFeatures", "TrainingTargets.done",
    "TrainingTargets", "Training.done", "Training", "EvaluationFeatures.done", "EvaluationFeatures",
    *[f"EvaluationFeatures_Insert{i:02d}" for i in range(1, 9)], "ParallelPrediction.done",
    "ParallelPrediction.prepare", "ParallelPrediction", "HumanQA.done", "HumanQA.prepare"]
THROUGH_PREDICTION = ["CreatePredictionsTable", "EvaluationFeatures", "ParallelPrediction", "PreCleanup",
                      "StagingFeatures", "Training", "TrainingFeatures", "TrainingTargets"]


@pytest.mark.parametrize("on_failure, kept", [
    # HumanQA's own table: every stage before it keeps what it wrote. (Keeping only the stages without an
    # Athena write re-ran CreatePredictionsTable, whose prepare state deletes the predictions ParallelPrediction
    # wrote, and skipped ParallelPrediction: HumanQA and FinalResults then read an empty predictions table.)
    ({"delete_data": ["human_qa"]}, THROUGH_PREDICTION),
    # The predictions: both stages that wrote them run again.
    ({"delete_data": ["predictions"]}, [s for s in THROUGH_PREDICTION
                                        if s not in ("CreatePredictionsTable", "ParallelPrediction")]),
    # Catalog only (drop_tables): the table is gone all the same.
    ({"drop_tables": ["staging"], "delete_data": ["human_qa"]}, [s for s in THROUGH_PREDICTION
                                                                 if s != "StagingFeatures"]),
])
def test_after_the_failure_path_ran_the_stages_whose_tables_it_dropped_run_again(tmp_path, on_failure, kept):
    from stepkit.cli import _variables
    from tests.aws.variants import compile_variant

    variables = _variables((), "pipelines/example.env")
    shape = recovery.Shape.of(compile_variant(tmp_path, variables, {"on_failure": on_failure}).definition)
    events = history(UP_TO_HUMAN_QA + [recovery.CLEANUP_ON_FAILURE], ["HumanQA", "Failed"])
    d = recovery.decide(shape, [events], "run-1")
    assert d.kind == "continue" and list(d.input["done"]) == kept


ORDER = ["PreCleanup", "CreatePredictionsTable", "StagingFeatures", "TrainingFeatures", "TrainingTargets",
         "Training", "EvaluationFeatures", "ParallelPrediction", "HumanQA", "FinalResults", "WaitForFinalResults",
         "Cleanup"]
# A chain of statements (EvaluationFeatures: a CTAS, then INSERT INTOs) ends at its last INSERT.
INSERTS = [f"EvaluationFeatures_Insert{i:02d}" for i in range(1, 9)]
EVERYTHING = [s for name in ORDER for s in [f"{name}.done", name] + (INSERTS if name == "EvaluationFeatures" else [])]


@pytest.mark.parametrize("ran, stage, expect", [
    (EVERYTHING[:-2], "HumanQA", ORDER[:8]),  # all but the last clean-up
    (EVERYTHING, "PreCleanup", []),
    (BEFORE_STAGING, "StagingFeatures", ["PreCleanup", "CreatePredictionsTable"]),
    (BEFORE_STAGING, "Training", "has not finished StagingFeatures, TrainingFeatures, TrainingTargets, which come "
                                 "before Training: start from StagingFeatures"),
    (EVERYTHING, "Nope", "no stage 'Nope' to start from (stages: PreCleanup, CreatePredictionsTable,"),
])
def test_start_from(shape, ran, stage, expect):
    events = history(ran, end="ExecutionSucceeded")
    if isinstance(expect, str):
        with pytest.raises(ValueError, match=expect.replace("(", r"\(")):
            recovery.start_from(shape, ORDER, stage, "run-1", [events])
    else:
        given = recovery.start_from(shape, ORDER, stage, "run-1", [events])
        assert given == {"run": {"id": "run-1"}, "done": dict.fromkeys(expect, True)}


def test_the_last_clean_up_leaves_only_the_stages_whose_tables_it_kept(shape):
    assert shape.stages["Cleanup"].drops == shape.stages["StagingFeatures"].tables | \
        shape.stages["TrainingFeatures"].tables | shape.stages["TrainingTargets"].tables | \
        shape.stages["EvaluationFeatures"].tables
    events = history(EVERYTHING, end="ExecutionSucceeded")
    assert recovery.done_stages(shape, [events]) == set(ORDER) - {
        "StagingFeatures", "TrainingFeatures", "TrainingTargets", "EvaluationFeatures"}
    with pytest.raises(ValueError, match="the tables of StagingFeatures, TrainingFeatures, TrainingTargets, "
                                         "EvaluationFeatures, which come before HumanQA, are gone"):
        recovery.start_from(shape, ORDER, "HumanQA", "run-1", [events])
    # What a Cleanup dropped, a later execution that ran the stage again brought back.
    again = history(["StagingFeatures.done", "StagingFeatures.prepare", "StagingFeatures"], end="ExecutionFailed",
                    given={"run": {"id": "run-1"}, "done": {}})
    assert "StagingFeatures" in recovery.done_stages(shape, [events, again])
