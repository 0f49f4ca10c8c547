"""Failures of a local run: a worker killed mid-write, a failed quality gate and `--resume`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stepkit.local.pool import FAULT_ENV
from tests._local_runs import SMALL, once, query, record, run_local, shared_dir, table
from tests.test_local_run import clean, shared, source  # noqa: F401  (session fixtures)

@pytest.fixture(scope="session")
def faulty(shared, source) -> dict:  # noqa: F811
    def build(folder: Path) -> dict:
        marker = folder / "fault-fired"
        env = {FAULT_ENV: "stepkit.workers.prediction:3", FAULT_ENV + "_MARKER": str(marker)}
        result = run_local(SMALL, source, folder / "work", env=env)
        assert result.exit_code == 0, result.output
        return {"output": result.output, "record": record(folder / "work"),
                "fired": marker.read_text() if marker.exists() else ""}

    return once(shared, "faulty", build)


def test_fault_fired_and_the_batch_was_retried(faulty):
    assert faulty["fired"] == "stepkit.workers.prediction:3\n"  # killed once, in the middle of writing batch 3
    detail = {s["name"]: s for s in faulty["record"]["stages"]}["ParallelPrediction"]["detail"]
    assert 3 in detail["retried"] and detail["pool_restarts"] == 1 and detail["batches"] == 7
    assert re.search(r"ParallelPrediction/3/ParallelPredictionBatch: States.TaskFailed \(the worker process died"
                     r".*\); retry 1 in", faulty["output"]), faulty["output"]


def test_killed_worker_leaves_the_same_results_as_a_clean_run(faulty, clean):  # noqa: F811
    a = table(clean["record"]["outputs"]["final_results"])
    b = table(faulty["record"]["outputs"]["final_results"])
    (rows,), = query(f"SELECT count(*) FROM {a}")
    assert query(f"SELECT count(*) FROM {b}") == [(rows,)]
    # Same ids, each once, with the same outcome. Two separate trainings may differ in the last
    # float32 bit (model_version differs between any two runs), hence the tolerance on numbers.
    differing = query(
        f"SELECT count(*) FROM {a} x FULL JOIN {b} y USING (id) WHERE x.id IS NULL OR y.id IS NULL "
        "OR x.prediction_source <> y.prediction_source OR x.known_age IS DISTINCT FROM y.known_age "
        "OR x.model_name <> y.model_name OR abs(x.predicted_age - y.predicted_age) > 1e-3 "
        "OR abs(x.lower_bound - y.lower_bound) > 1e-3 OR abs(x.upper_bound - y.upper_bound) > 1e-3 "
        "OR abs(x.confidence_score - y.confidence_score) > 1e-3"
    )
    assert differing == [(0,)]
    assert query(f"SELECT count(*) - count(DISTINCT id) FROM {b}") == [(0,)]


def _with_gate(path: Path, gate: str) -> Path:
    text = SMALL.read_text().replace("quality_gate: {max_mae: 30.0}", f"quality_gate: {gate}")
    assert gate in text
    path.write_text(text)
    return path


def test_failed_quality_gate_stops_before_predictions_and_resume_continues(tmp_path, source):  # noqa: F811
    work = tmp_path / "work"
    pipeline = _with_gate(tmp_path / "pipeline.yaml", "{max_mae: 0.5}")
    failed = run_local(pipeline, source, work)
    assert failed.exit_code == 1
    lines = failed.output.strip().splitlines()
    assert "Traceback" not in failed.output
    assert "failed at stage Training" in lines[-1] and "mae" in lines[-1] and "0.5" in lines[-1], lines[-1]
    rec = record(work)
    by = {s["name"]: s for s in rec["stages"]}
    assert (rec["status"], rec["failed_stage"], by["Training"]["status"]) == ("failed", "Training", "failed")
    assert all(by[n]["status"] == "pending" for n in ("ParallelPrediction", "FinalResults"))
    # It ran beside Training (one Parallel state): finished, or stopped when Training's branch failed.
    assert by["EvaluationFeatures"]["status"] in ("succeeded", "failed")
    assert not list((work / "warehouse" / "tables").glob("predict_age_ml_predictions/*/batch_id=*"))
    assert not (Path(rec["outputs"].get("final_results", "/nonexistent"))).exists()

    _with_gate(pipeline, "{max_mae: 30.0}")  # fixed spec
    resumed = run_local(pipeline, source, work, "--resume", rec["run_id"])
    assert resumed.exit_code == 0, resumed.output
    # Training fails as a container task does: it may simply run again, so the execution is redriven.
    assert "resume: redrive" in resumed.output
    assert "PreCleanup: done in an earlier attempt of this run; skipped" in resumed.output
    rec2 = record(work, rec["run_id"])
    assert rec2["status"] == "succeeded" and rec2["failed_stage"] is None and len(rec2["resumed_epochs"]) == 1
    final = table(rec2["outputs"]["final_results"])
    (rows, ids), = query(f"SELECT count(*), count(DISTINCT id) FROM {final}")
    (distinct,), = query(f"SELECT count(DISTINCT person_id) FROM read_parquet('{source}')")
    assert rows == ids == distinct
    # PreCleanup ran once (the first attempt); Training ran again on resume, after it.
    by2 = {s["name"]: s for s in rec2["stages"]}
    assert by2["PreCleanup"]["end_epoch"] == by["PreCleanup"]["end_epoch"]
    assert by2["Training"]["start_epoch"] > by["Training"]["end_epoch"]
    assert json.loads(Path(rec2["outputs"]["config"]).read_text())["pipeline"]["training"]["quality_gate"]["max_mae"] == 30.0

    # --from: a finished run's stage and those after it run again, on the tables of the ones before.
    bad = run_local(pipeline, source, work, "--resume", rec["run_id"], "--from", "Nope")
    assert bad.exit_code == 1 and bad.output.strip().splitlines()[-1].startswith(
        "--from Nope: no stage 'Nope' to start from (stages: PreCleanup,"), bad.output
    assert record(work, rec["run_id"])["status"] == "succeeded"  # a refusal leaves the run's record as it was
    # The run's last stage dropped the intermediate tables HumanQA reads: it says so, and where to start.
    gone = run_local(pipeline, source, work, "--resume", rec["run_id"], "--from", "HumanQA")
    assert gone.exit_code == 1 and gone.output.strip().splitlines()[-1] == (
        "--from HumanQA: the tables of StagingFeatures, TrainingFeatures, TrainingTargets, EvaluationFeatures, which "
        "come before HumanQA, are gone (a clean-up of the run dropped them): start from StagingFeatures"), gone.output
    again = run_local(pipeline, source, work, "--resume", rec["run_id"], "--from", "StagingFeatures")
    assert again.exit_code == 0, again.output
    assert "resume: continue (--from StagingFeatures)" in again.output
    rec3 = record(work, rec["run_id"])
    by3 = {s["name"]: s for s in rec3["stages"]}
    assert by3["PreCleanup"]["start_epoch"] == by2["PreCleanup"]["start_epoch"]
    assert by3["StagingFeatures"]["start_epoch"] > by2["Cleanup"]["end_epoch"]
    assert by3["HumanQA"]["start_epoch"] > by2["Cleanup"]["end_epoch"]
    assert query(f"SELECT count(*), count(DISTINCT id) FROM {table(rec3['outputs']['final_results'])}") == [(rows, ids)]


def test_a_run_continued_after_its_on_failure_clean_up_keeps_its_predictions(tmp_path, source, clean):  # noqa: F811
    """A pipeline with an on_failure clean-up, failing at HumanQA (its statement broken in the definition the run
    executes), then resumed on the compiled definition: the run goes on in a new execution, and its final results
    hold the model's predictions, as a clean run's do (not an empty predictions table's defaults)."""
    from stepkit.commands.options import _variables
    from stepkit.compiler.build import compile_file
    from stepkit.ir import asl
    from tests._local_runs import ENV

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(SMALL.read_text() + "\non_failure:\n  delete_data: [human_qa]\n")
    definition = compile_file(pipeline, _variables((), str(ENV))).definition
    qa = definition["States"]["Beside.HumanQA.FinalResults"]["Branches"][0]["States"]["HumanQA"]["Parameters"]
    assert "AS SELECT p.id," in qa["QueryString.$"]
    qa["QueryString.$"] = qa["QueryString.$"].replace("AS SELECT p.id,", "AS SELECT p.no_such_column,")
    broken = tmp_path / "broken.asl.json"
    broken.write_text(asl.render(definition))
    work = tmp_path / "work"
    failed = run_local(pipeline, source, work, "--definition", str(broken))
    last = failed.output.strip().splitlines()[-1]
    assert failed.exit_code == 1 and "no_such_column" in last and "failed at stage HumanQA:" in last, failed.output
    assert record(work)["failed_stage"] == "HumanQA"
    run_id = record(work)["run_id"]
    resumed = run_local(pipeline, source, work, "--resume", run_id)
    assert resumed.exit_code == 0 and "resume: continue" in resumed.output, resumed.output

    def sources(rec: dict) -> list:
        return query(f"SELECT prediction_source, count(*) FROM {table(rec['outputs']['final_results'])} "
                     "GROUP BY 1 ORDER BY 1")
    assert sources(record(work, run_id)) == sources(clean["record"])
