"""`--resume` continues the same run, or says in one line why it cannot; an interrupted run and a
work folder that cannot be written leave an honest record and one line, never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stepkit.local.tracker import INTERRUPT_ENV
from stepkit.local.runs import RunRecord, StageRecord
from tests._local_runs import ENV, ROOT, SMALL, default_sigint, record, run_local
from tests.test_local_run import shared, source  # noqa: F401  (session fixtures)


def _failed_run(work: Path, run_id: str, started: float, pipeline: Path = SMALL, source: str = "/data/s.parquet",
                entered: list[str] | None = None) -> None:
    """A run's record; with `entered`, the history of its execution that entered those states, then stopped."""
    rec = RunRecord(run_id, str(pipeline.resolve()), source, str(work), status="failed", started=started,
                    failed_stage="Training", stages=[StageRecord("PreCleanup", "cleanup", "succeeded")])
    (work / "runs" / run_id).mkdir(parents=True)
    rec.save(work / "runs" / run_id)
    if entered is not None:
        events = [{"id": 1, "type": "ExecutionStarted", "executionStartedEventDetails": {"input": "{}"}}]
        events += [{"id": i + 2, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}}
                   for i, name in enumerate(entered)]
        (work / "runs" / run_id / "executions" / "1").mkdir(parents=True)
        (work / "runs" / run_id / "executions" / "1" / "history.jsonl").write_text(
            "".join(json.dumps(e) + "\n" for e in events))


@pytest.mark.parametrize("setup, resume, extra, expected", [
    (None, "", (), "--resume '': expected a run id, one of the folders in"),
    (None, "../elsewhere/runs/local-1", (), "--resume '../elsewhere/runs/local-1': expected a run id"),
    (None, "..", (), "--resume '..': expected a run id"),
    (None, "local-nope", (), "local-nope: no such run"),
    ({"pipeline": ROOT / "pipelines" / "predict_age.yaml"}, "local-a", (),
     "run local-a ran " + str((ROOT / "pipelines" / "predict_age.yaml").resolve())),
    ({}, "local-a", ("--source", "/data/other.parquet"),
     "/data/other.parquet: run local-a read /data/s.parquet; a resumed run reads the same source"),
    ({"later": ["Start", "NewRun", "CheckRunId", "CheckOtherRuns", "OneRunAtATime", "PreCleanup.done", "PreCleanup"]},
     "local-a", (), "run local-b started after run local-a"),
    # A later run refused before its execution began (a hand-edited definition, say) touched no table: local-a
    # is not in its way (it then stops at what it lacks itself, here any history).
    ({"later": []}, "local-a", (), "run local-a has no execution history"),
])
def test_resume_refuses_what_is_not_the_same_run(tmp_path, setup, resume, extra, expected):
    work = tmp_path / "work"
    if setup is not None:
        _failed_run(work, "local-a", 1000.0, pipeline=setup.get("pipeline", SMALL))
        if setup.get("later") is not None:
            _failed_run(work, "local-b", 2000.0, entered=setup["later"] or None)
    from tests._local_runs import cli

    args = ["run", str(SMALL), "--local", "--workdir", str(work), "--env-file", str(ENV), "--resume", resume, *extra]
    result = cli(*args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert expected in lines[-1], lines
    assert "Traceback" not in result.output
    # Nothing was run: no new run folder, the records as they were.
    runs = sorted(p.name for p in (work / "runs").iterdir()) if (work / "runs").is_dir() else []
    assert runs == ["local-a"] * (setup is not None) + ["local-b"] * bool(setup and setup.get("later") is not None)


def test_an_interrupted_run_leaves_no_stage_running_and_says_how_to_resume(tmp_path, source):  # noqa: F811
    """Ctrl-C (SIGINT to the run's process group, as a terminal sends it) half a second into Training,
    while EvaluationFeatures runs beside it: exit 130, the resume command, no stage left 'running',
    and no worker's traceback."""
    work = tmp_path / "work"
    env = {**os.environ, INTERRUPT_ENV: "Training", "STEPKIT_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "stepkit", "run", str(SMALL), "--local", "--source", source,
                           "--workdir", str(work), "--env-file", str(ENV)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, start_new_session=True,
                          preexec_fn=default_sigint)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    rec = record(work)
    by = {s["name"]: s for s in rec["stages"]}
    assert (rec["status"], rec["failed_stage"]) == ("failed", "Training")
    assert by["Training"]["error"] == "interrupted (Ctrl-C)"
    assert by["Training"]["status"] == "failed" and "running" not in {s["status"] for s in rec["stages"]}
    assert f"--resume {rec['run_id']}" in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == "interrupted"


@pytest.mark.parametrize("blocked", ["runs", "warehouse/_tmp"])
def test_a_work_folder_that_cannot_be_written_is_one_line(tmp_path, source, blocked):  # noqa: F811
    """A file where the run needs a folder (permissions alone do not stop root, who runs CI)."""
    work = tmp_path / "work"
    (work / blocked).parent.mkdir(parents=True, exist_ok=True)
    (work / blocked).write_text("")
    result = run_local(SMALL, source, work)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert str(work / blocked) in last, last
    for path in (work / "runs").glob("*/run.json") if (work / "runs").is_dir() else []:
        assert json.loads(path.read_text())["status"] == "failed"


@pytest.mark.parametrize("empty, outcome", [
    # killed after its folder was made, before its first event: the run's first execution never ran
    ("1", "run {run} succeeded"),
    # a continuation killed so: the decision is the one the first execution's history takes
    ("2", "resume: redrive"),
])
def test_an_execution_killed_before_its_first_event_is_started_again(tmp_path, source, empty, outcome):  # noqa: F811
    """What a kill leaves between an execution's start (its folder and empty history file) and its first
    event; `--resume` then ends the run as a clean one, in one line if not."""
    pipeline = tmp_path / "gate.yaml"
    pipeline.write_text(SMALL.read_text().replace("quality_gate: {max_mae: 30.0}", "quality_gate: {max_mae: 0.5}"))
    work = tmp_path / "work"
    assert run_local(pipeline, source, work).exit_code == 1  # fails at Training's quality gate
    rec = record(work)
    run_dir = work / "runs" / rec["run_id"]
    (run_dir / "executions" / empty).mkdir(exist_ok=True)
    (run_dir / "executions" / empty / "history.jsonl").write_text("")
    pipeline.write_text(SMALL.read_text())
    resumed = run_local(pipeline, source, work, "--resume", rec["run_id"])
    assert resumed.exit_code == 0 and outcome.format(run=rec["run_id"]) in resumed.output, resumed.output
    assert record(work, rec["run_id"])["status"] == "succeeded"


def test_status_of_a_run_refused_before_its_execution_began(tmp_path, source):  # noqa: F811
    """A hand-edited definition with a state no local adapter runs is refused before anything runs; the run's
    record stays, and `stepkit status --local` says why it has no history (not an older stepkit's run)."""
    from stepkit.commands.options import _variables
    from stepkit.compiler.build import compile_file
    from tests._local_runs import cli

    definition = compile_file(SMALL, _variables((), str(ENV))).definition
    definition["States"]["PreCleanup"]["Resource"] = "arn:aws:states:::sqs:sendMessage"
    edited = tmp_path / "edited.asl.json"
    edited.write_text(json.dumps(definition))
    work = tmp_path / "work"
    refused = run_local(SMALL, source, work, "--definition", str(edited))
    assert refused.exit_code == 1 and "no local adapter for resource arn:aws:states:::sqs:sendMessage" in refused.output
    (run_id,) = [p.name for p in (work / "runs").iterdir()]
    status = cli("status", "--local", "--workdir", str(work))
    assert status.exit_code == 1 and f"run {run_id} stopped before its execution began: " in status.output, \
        status.output
