"""`stepkit run --local` end to end on a small demo source (20k rows, 7 batches): the invariants
of the results, the run record and report, and one-line errors for bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests._local_runs import ENV, SMALL, cli, make_source, once, query, record, run_local, shared_dir, table

TARGET_DEFAULT = 38


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    return shared_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def source(shared) -> str:
    return once(shared, "source", make_source)


@pytest.fixture(scope="session")
def clean(shared, source) -> dict:
    def build(folder: Path) -> dict:
        result = run_local(SMALL, source, folder / "work")
        assert result.exit_code == 0, result.output
        return {"output": result.output, "record": record(folder / "work"), "workdir": str(folder / "work")}

    return once(shared, "clean", build)


def test_final_results_hold_each_distinct_source_id_once(clean, source):
    final = table(clean["record"]["outputs"]["final_results"])
    (rows, ids), = query(f"SELECT count(*), count(DISTINCT id) FROM {final}")
    (distinct,), = query(f"SELECT count(DISTINCT person_id) FROM read_parquet('{source}')")
    assert rows == ids == distinct
    lost = query(f"SELECT count(*) FROM (SELECT person_id FROM read_parquet('{source}') EXCEPT SELECT id FROM {final})")
    assert lost == [(0,)]


def test_unparseable_documents_get_the_default_and_say_so(clean, source):
    final = table(clean["record"]["outputs"]["final_results"])
    rows = query(
        f"SELECT f.prediction_source, f.predicted_age, count(*) FROM {final} f "
        f"JOIN (SELECT DISTINCT person_id FROM read_parquet('{source}') WHERE NOT json_valid(profile_json)) s "
        "ON s.person_id = f.id GROUP BY ALL"
    )
    assert len(rows) == 1 and rows[0][:2] == ("default_unparseable", TARGET_DEFAULT) and rows[0][2] > 0
    (model_rows,), = query(f"SELECT count(*) FROM {final} WHERE prediction_source = 'model'")
    assert model_rows > 0.9 * clean["record"]["outputs"]["tables"]["final_results"]["rows"]


def test_human_qa_is_one_to_one_with_predictions_and_joined_to_source(clean, source):
    out = clean["record"]["outputs"]
    qa, pred = table(out["human_qa"]), table(out["predictions"])
    (qa_rows, qa_ids), = query(f"SELECT count(*), count(DISTINCT id) FROM {qa}")
    (pred_rows,), = query(f"SELECT count(*) FROM {pred}")
    assert qa_rows == qa_ids == pred_rows > 0
    assert query(f"SELECT count(*) FROM (SELECT id, predicted_age FROM {qa} EXCEPT SELECT id, predicted_age FROM {pred})") == [(0,)]
    # The known target beside each prediction is the source document's own (where it is a plain valid integer).
    mismatched = query(
        f"SELECT count(*), count(q.known_age) FROM {qa} q JOIN read_parquet('{source}') s ON s.person_id = q.id "
        "WHERE json_valid(s.profile_json) AND json_type(s.profile_json, '$.person.age') IN ('UBIGINT', 'BIGINT') "
        "AND (s.profile_json->>'$.person.age')::INT BETWEEN 13 AND 100 "
        "AND q.known_age IS DISTINCT FROM (s.profile_json->>'$.person.age')::INT"
    )
    assert mismatched[0][0] == 0


def test_run_record_has_stages_metrics_and_outputs(clean):
    rec = clean["record"]
    assert rec["status"] == "succeeded" and rec["error"] is None
    names = [s["name"] for s in rec["stages"]]
    assert names == ["PreCleanup", "StagingFeatures", "TrainingFeatures", "TrainingTargets", "Training",
                     "EvaluationFeatures", "GenerateBatchIds", "CreatePredictionsTable", "ParallelPrediction",
                     "HumanQA", "FinalResults", "WaitForFinalResults", "Cleanup"]
    for s in rec["stages"]:
        assert s["status"] == "succeeded" and s["start"] and s["end"] and s["seconds"] >= 0, s
    by = {s["name"]: s for s in rec["stages"]}
    assert by["ParallelPrediction"]["detail"]["batches"] == 7
    assert by["FinalResults"]["rows_out"] == rec["outputs"]["tables"]["final_results"]["rows"] > 0
    assert by["StagingFeatures"]["rows_out"] == by["FinalResults"]["rows_out"]
    assert set(rec["metrics"]) == {"ridge", "xgboost", "xgboost_quantile"}
    for m in rec["metrics"].values():
        assert set(m) == {"mae", "rmse", "r2", "coverage"} and m["mae"] > 0
    for key in ("final_results", "human_qa", "predictions", "models", "config"):
        assert Path(rec["outputs"][key]).exists(), key
    # The final Cleanup stage removed the intermediate tables' files.
    assert rec["outputs"]["tables"]["staging"]["exists"] is False
    # The rows recorded for each table still there are the rows in its files.
    kept = {k: t for k, t in rec["outputs"]["tables"].items() if t["exists"]}
    assert set(kept) >= {"final_results", "human_qa", "predictions"}
    for key, t in kept.items():
        assert query(f"SELECT count(*) FROM {table(t['path'])}") == [(t["rows"],)], key


def test_independent_stages_run_beside_each_other_and_every_stage_after_what_it_needs(clean):
    by = {s["name"]: s for s in clean["record"]["stages"]}
    # The compiled Parallel state: EvaluationFeatures needs only the staging table, so it starts with
    # the training branch, not after it (the engine takes TrainingFeatures/TrainingTargets first: Training
    # waits for them; EvaluationFeatures then runs while Training does).
    assert by["EvaluationFeatures"]["start_epoch"] < by["TrainingFeatures"]["end_epoch"]
    assert by["EvaluationFeatures"]["start_epoch"] < by["Training"]["end_epoch"]
    # Every stage starts after the stages whose tables it reads have ended.
    needs = {"TrainingFeatures": ["StagingFeatures"], "TrainingTargets": ["StagingFeatures"],
             "Training": ["TrainingFeatures", "TrainingTargets"], "EvaluationFeatures": ["StagingFeatures"],
             "ParallelPrediction": ["Training", "EvaluationFeatures", "CreatePredictionsTable", "GenerateBatchIds"],
             "HumanQA": ["ParallelPrediction"], "FinalResults": ["ParallelPrediction"],
             "WaitForFinalResults": ["HumanQA", "FinalResults"], "Cleanup": ["WaitForFinalResults"]}
    for stage, before in needs.items():
        for b in before:
            assert by[stage]["start_epoch"] >= by[b]["end_epoch"], (stage, b)
    # HumanQA and FinalResults are Parallel branches, but the engine runs one statement at a time: the
    # one that went second says how long it queued (the other's run), so its time is not read as its work.
    first, second = sorted((by["HumanQA"], by["FinalResults"]), key=lambda s: s["end_epoch"])
    waited = first["end_epoch"] - second["start_epoch"]
    assert waited > 0
    assert second["detail"]["queued_seconds"] == pytest.approx(waited, abs=0.05)
    assert first["detail"].get("queued_seconds", 0) < 0.05


@pytest.mark.parametrize("svg, shape, least", [
    ("predicted_vs_actual.svg", "cell", 50),  # binned cells of the labelled QA rows
    ("residuals.svg", "bar", 10),
    ("interval_coverage.svg", "bar", 10),
    ("stage_timeline.svg", "stage", 13),  # one bar per stage
])
def test_report_has_its_charts(clean, svg, shape, least):
    import xml.etree.ElementTree as ET

    run_dir = Path(clean["record"]["report"]).parent
    root = ET.parse(run_dir / svg).getroot()
    shapes = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == shape]
    assert len(shapes) >= least
    assert f"src='{svg}'" in (run_dir / "report.html").read_text()


def test_output_names_results_report_and_shortened_wait(clean):
    out = clean["output"]
    assert "WaitForFinalResults: Wait of 180 s shortened to 0 s (local run)" in out
    assert "ParallelPrediction: batches 7/7" in out
    assert f"report:        {clean['record']['report']}" in out
    assert f"final results: {clean['record']['outputs']['final_results']}" in out


def test_status_reads_the_local_history_as_it_reads_an_aws_one(clean):
    result = cli("status", "--local", "--workdir", clean["workdir"])
    code, out = result.exit_code, result.output
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0].startswith(f"execution {clean['record']['run_id']}: SUCCEEDED (started ")
    stages = [l.split()[-1] for l in lines if l.startswith("  ") and "stage" not in l]
    assert stages[:3] == ["Start", "NewRun", "CheckRunId"] and stages[-1] == "Cleanup"
    assert {"StagingFeatures", "Training", "EvaluationFeatures", "ParallelPrediction", "HumanQA"} <= set(stages)
    assert "ParallelPrediction: 7/7 succeeded, 0 failed, 0 running" in lines


def _readonly(tmp: Path) -> Path:
    if os.geteuid() == 0:  # root writes through file modes; sysfs refuses new folders even to root
        return Path("/sys/stepkit-workdir")
    d = tmp / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d / "work"


def _write_parquet(path: Path, columns: dict) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return str(path)


@pytest.mark.parametrize("case, make_source_arg, make_workdir, message", [
    ("missing source", lambda t, s: str(t / "nope.parquet"), None, "no such source file or folder"),
    ("no id column", lambda t, s: _write_parquet(t / "a.parquet", {"profile_json": ["{}"]}), None,
     "has no column 'person_id' (source.id_column)"),
    ("no json column", lambda t, s: _write_parquet(t / "b.parquet", {"person_id": ["p1"]}), None,
     "has no column 'profile_json' (source.document_column)"),
    ("empty source", lambda t, s: _write_parquet(t / "c.parquet", {"person_id": [], "profile_json": []}), None,
     "source table ai_agent_kb.kb_person_profiles_2025q3 is empty (0 rows)"),
    ("read-only workdir", lambda t, s: s, _readonly, "work folder is not writable"),
    ("unknown run to resume", lambda t, s: s, None, "no such run"),
])
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, source, case, make_source_arg, make_workdir, message):
    workdir = make_workdir(tmp_path) if make_workdir else tmp_path / "work"
    extra = ["--resume", "local-20000101-000000-abcd"] if case == "unknown run to resume" else []
    result = run_local(SMALL, make_source_arg(tmp_path, source), workdir, *extra)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output
    assert not list(Path(workdir).glob("runs/*/run.json"))  # nothing left that looks like a run
