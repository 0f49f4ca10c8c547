"""The examples in pipelines/, each run locally end to end at test size (20k demo rows, 5 batches,
small models): a boolean target, a six-class target, two targets from one scan, an Athena ETL of
the pipeline's own tables and container, and a re-score with an earlier run's model.

Test size is the example with a few values changed (`TEST_SIZE`), nothing else: the same stages,
templates, roles and command. The examples' golden files are in tests/golden (test_compiler_golden.py).
"""
from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests._local_runs import ENV, ROOT, cli, once, query, record, run_local, table
from tests.test_local_run import clean, shared, source  # noqa: F401  (session fixtures)

SOURCE_ROWS = 20_000
# (pattern, replacement): the examples' production sizes, cut to a test's. ECE on a few hundred held-out
# rows carries ~0.05 of sampling noise alone: the gate is looser here (benchmarks measure the claim).
TEST_SIZE = [(r"batches: (898|200)\b", "batches: 5"), (r"max_concurrency: (100|40)\b", "max_concurrency: 2"),
             (r"percent: 10$", "percent: 50"), (r"n_estimators: (300|150)", "n_estimators: 30"),
             (r"max_ece: 0\.05", "max_ece: 0.15")]


def at_test_size(name: str, folder: Path, edit=lambda text: text) -> Path:
    """The example at test size in `folder` (with its template folder beside it, as in pipelines/)."""
    text = (ROOT / "pipelines" / f"{name}.yaml").read_text()
    for pattern, new in TEST_SIZE:
        text = re.sub(pattern, new, text, flags=re.M)
    path = folder / f"{name}.yaml"
    path.write_text(edit(text))
    if (ROOT / "pipelines" / "etl").is_dir() and not (folder / "etl").exists():
        shutil.copytree(ROOT / "pipelines" / "etl", folder / "etl")
    return path


def _run(shared: Path, name: str) -> dict:
    def build(folder: Path) -> dict:
        pipeline = at_test_size(name, folder)
        src = folder / "source.parquet"
        made = cli("demo-data", str(pipeline), "--rows", str(SOURCE_ROWS), "--out", str(src), "--env-file", str(ENV))
        assert made.exit_code == 0, made.output
        result = run_local(pipeline, str(src), folder / "work")
        assert result.exit_code == 0, result.output
        return {"output": result.output, "record": record(folder / "work"), "source": str(src),
                "meta": json.loads(Path(f"{src}.meta.json").read_text()), "workdir": str(folder / "work")}
    return once(shared, f"example-{name}", build)


def test_the_second_numeric_example_passes_its_gate_on_its_own_demo_data(shared):  # noqa: F811
    run = _run(shared, "predict_income")
    assert run["record"]["status"] == "succeeded"
    final = table(run["record"]["outputs"]["final_results"])
    (rows, ids, scored), = query(f"SELECT count(*), count(DISTINCT id), count(predicted_income_usd) FROM {final}")
    assert rows == ids and scored == rows


@pytest.fixture(scope="session")
def binary(shared):  # noqa: F811
    return _run(shared, "classify_homeowner")


@pytest.fixture(scope="session")
def multiclass(shared):  # noqa: F811
    return _run(shared, "classify_seniority")


@pytest.fixture(scope="session")
def two_targets(shared):  # noqa: F811
    return _run(shared, "predict_profile")


@pytest.fixture(scope="session")
def etl(shared):  # noqa: F811
    return _run(shared, "etl_device_activity")


def _distinct_ids(run: dict) -> int:
    return query(f"SELECT count(DISTINCT person_id) FROM read_parquet('{run['source']}')")[0][0]


def _unparseable(run: dict) -> str:
    return (f"(SELECT DISTINCT person_id FROM read_parquet('{run['source']}') WHERE NOT json_valid(profile_json) "
            f"EXCEPT SELECT person_id FROM read_parquet('{run['source']}') WHERE json_valid(profile_json))")


# --- classes ------------------------------------------------------------------------------

@pytest.mark.parametrize("example, target, default, classes", [
    ("binary", "homeowner", "false", 2),
    ("multiclass", "seniority_level", "mid", 6),
])
def test_class_results_one_row_per_id_default_class_flagged_probabilities_in_range(
        request, example, target, default, classes):
    run = request.getfixturevalue(example)
    final = table(run["record"]["outputs"]["final_results"])
    (rows, ids), = query(f"SELECT count(*), count(DISTINCT id) FROM {final}")
    assert rows == ids == _distinct_ids(run)
    # Unparseable documents get the default class, flagged, and no probability (no model said anything).
    flagged = query(f"SELECT lower(CAST(predicted_{target} AS VARCHAR)), prediction_source, count(*), count(probability) "
                    f"FROM {final} f JOIN {_unparseable(run)} u ON u.person_id = f.id GROUP BY ALL")
    assert len(flagged) == 1 and flagged[0][:2] == (default, "default_unparseable") and flagged[0][2] > 0
    assert flagged[0][3] == 0
    (low, high, outside), = query(f"SELECT min(probability), max(probability), count(*) FILTER (WHERE probability "
                                  f"< {1 / classes - 1e-9} OR probability > 1) FROM {final} "
                                  "WHERE prediction_source = 'model'")
    assert outside == 0 and 1 / classes <= low <= high <= 1


def test_every_class_probability_of_a_row_sums_to_one_and_names_its_prediction(multiclass):
    final = table(multiclass["record"]["outputs"]["final_results"])
    (rows, bad_sum, bad_range, not_argmax), = query(
        f"SELECT count(*), count(*) FILTER (WHERE abs(list_sum(map_values(class_probabilities)) - 1) > 1e-9), "
        "count(*) FILTER (WHERE list_min(map_values(class_probabilities)) < 0 OR "
        "list_max(map_values(class_probabilities)) > 1), "
        "count(*) FILTER (WHERE abs(class_probabilities[predicted_seniority_level] - probability) > 1e-12 OR "
        "probability < list_max(map_values(class_probabilities))) "
        f"FROM {final} WHERE prediction_source = 'model'")
    assert rows > 0 and (bad_sum, bad_range, not_argmax) == (0, 0, 0)


@pytest.mark.parametrize("example, classes", [("binary", 2), ("multiclass", 6)])
def test_class_report_has_confusion_matrix_calibration_and_per_class_bars(request, example, classes):
    run = request.getfixturevalue(example)
    run_dir = Path(run["record"]["report"]).parent
    html = (run_dir / "report.html").read_text()
    for name, cls, count in [("confusion_matrix.svg", "cell", classes * classes), ("calibration_curve.svg", "bin", None),
                             ("class_precision_recall.svg", "bar", None)]:
        shapes = [r for r in ET.parse(run_dir / name).getroot().iter("{http://www.w3.org/2000/svg}rect")
                  if r.get("class") == cls]
        assert shapes and (count is None or len(shapes) == count), name
        assert f"src='{name}'" in html
    # The matrix's cells hold every labelled QA row once.
    qa = table(run["record"]["outputs"]["human_qa"])
    target = next(iter(run["meta"]["targets"]))
    (labelled,), = query(f"SELECT count(*) FROM {qa} WHERE known_{target} IS NOT NULL")
    cells = ET.parse(run_dir / "confusion_matrix.svg").getroot().iter("{http://www.w3.org/2000/svg}title")
    assert sum(int(t.text.split(" rows")[0].replace(",", "")) for t in cells) == labelled


@pytest.mark.parametrize("example", ["binary", "multiclass"])
def test_class_run_record_keeps_the_classification_metrics(request, example):
    rec = request.getfixturevalue(example)["record"]
    assert rec["status"] == "succeeded" and set(rec["metrics"]) == {"logistic", "xgboost"}
    for m in rec["metrics"].values():
        assert set(m) == {"accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc", "ece"}
    assert rec["training"]["selection_metric"] == "log_loss" and rec["training"]["gate"]["passed"]


# --- two targets from one scan ------------------------------------------------------------

def test_two_targets_one_scan_one_row_per_id_with_both_predictions(two_targets):
    run = two_targets
    final = table(run["record"]["outputs"]["final_results"])
    (rows, ids, both), = query(f"SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE predicted_age IS NOT "
                               f"NULL AND predicted_homeowner IS NOT NULL) FROM {final}")
    assert rows == ids == both == _distinct_ids(run)
    # One scan of the raw JSON: the source table is named by one statement, the staging CTAS.
    out = ROOT / "pipelines" / "predict_profile.yaml"
    compiled = cli("compile", str(out), "--env-file", str(ENV), "--out", str(Path(run["workdir"]) / "compiled"))
    assert compiled.exit_code == 0, compiled.output
    readers = [p.name for p in (Path(run["workdir"]) / "compiled" / "sql").glob("*.sql")
               if "kb_person_profiles_2025q3" in p.read_text()]
    assert readers == ["StagingFeatures.sql"]
    rec = run["record"]
    assert {k.split(".")[0] for k in rec["metrics"]} == {"age", "homeowner"}
    assert set(rec["training"]["targets"]) == {"age", "homeowner"}
    by = {s["name"]: s for s in rec["stages"]}
    assert by["ParallelPrediction"]["detail"]["batches"] == 5  # one fan-out scores both targets
    charts = {p.name for p in Path(rec["report"]).parent.glob("*.svg")}
    assert {"predicted_vs_actual_age.svg", "confusion_matrix_homeowner.svg"} <= charts


# --- a pipeline without ML ----------------------------------------------------------------

def test_etl_writes_its_own_table_with_its_own_sql_and_exports_it(etl):
    run, rec = etl, etl["record"]
    assert rec["status"] == "succeeded" and [s["name"] for s in rec["stages"]] == [
        "PreCleanup", "ParseProfiles", "ActivityBySegment", "Export", "Cleanup"]
    activity = table(rec["outputs"]["final_results"])
    assert "device_activity_by_segment" in rec["outputs"]["final_results"]
    (groups, profiles), = query(f"SELECT count(*), sum(profiles) FROM {activity}")
    (parsed,), = query(f"SELECT count(DISTINCT person_id) FROM read_parquet('{run['source']}') "
                       "WHERE json_valid(profile_json)")
    assert profiles == parsed and groups > 1
    # The user's container (run here as a process) wrote its CSV, and reported its rows.
    csv = next(Path(run["workdir"]).glob("warehouse/runs/*/exports/activity_by_segment.csv"))
    assert len(csv.read_text().strip().splitlines()) == groups + 1
    assert {s["name"]: s for s in rec["stages"]}["Export"]["rows_out"] == groups
    assert rec["outputs"]["tables"]["profiles"]["exists"] is False  # the final cleanup dropped it
    assert rec["metrics"] == {} and rec["outputs"]["human_qa"] is None
    assert [p.name for p in Path(rec["report"]).parent.glob("*.svg")] == ["stage_timeline.svg"]


# --- re-scoring ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rescored(shared, clean, source):  # noqa: F811
    """rescore_age in a work folder that holds the clean predict-age run's models (copied, as a later
    run of predict-age in that folder would have left them)."""
    def build(folder: Path) -> dict:
        trained = Path(clean["workdir"]) / "warehouse" / "runs" / clean["record"]["run_id"] / "models"
        shutil.copytree(trained, folder / "work" / "warehouse" / "runs" / clean["record"]["run_id"] / "models")
        result = run_local(at_test_size("rescore_age", folder), source, folder / "work")
        assert result.exit_code == 0, result.output
        return {"record": record(folder / "work"), "workdir": str(folder / "work")}
    return once(shared, "example-rescore", build)


def test_rescoring_uses_the_latest_passing_model_and_trains_nothing(rescored, clean, source):  # noqa: F811
    rec = rescored["record"]
    assert [s["name"] for s in rec["stages"]][:2] == ["UseModel", "PreCleanup"]
    assert "Training" not in {s["name"] for s in rec["stages"]}
    assert rec["training"]["source_run"] == clean["record"]["run_id"]
    final = table(rec["outputs"]["final_results"])
    (rows, ids, versions), = query(f"SELECT count(*), count(DISTINCT id), list(DISTINCT model_version) FROM {final} "
                                   "WHERE model_version IS NOT NULL")
    assert versions == [clean["record"]["training"]["model_version"]]
    (everyone,), = query(f"SELECT count(*) FROM {final}")
    assert everyone == query(f"SELECT count(DISTINCT person_id) FROM read_parquet('{source}')")[0][0]


def test_rescoring_with_a_changed_feature_list_fails_first_in_one_line(rescored, source, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    shutil.copytree(Path(rescored["workdir"]) / "warehouse" / "runs", work / "warehouse" / "runs")
    pipeline = at_test_size("rescore_age", tmp_path, lambda t: t.replace(
        "  - {name: emoji_rate, json_path: $.activity.emoji_rate, type: double, min: 0, max: 1}\n", ""))
    result = run_local(pipeline, source, work)
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert "failed at stage UseModel" in last and "the pipeline lacks 'emoji_rate' (21 features trained, 20 listed)" in last
    rec = record(work)
    assert {s["name"]: s["status"] for s in rec["stages"]} == {
        "UseModel": "failed", **{s["name"]: "pending" for s in rec["stages"][1:]}}
