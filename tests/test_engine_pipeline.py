"""Every Athena template of pipelines/predict_age.yaml, rendered for a local root and run in stage
order on the DuckDB engine, statement by statement, over a small messy source."""
from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from stepkit.ir.context import Context
from stepkit.engines.duckdb import DuckDBEngine
from stepkit.engines.transpile import parse
from stepkit.compiler.load import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
RUN = "run_0001"


def _env() -> dict[str, str]:
    lines = (ROOT / "pipelines" / "example.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _doc(rng: random.Random, age) -> dict:
    return {
        "person": {"age": age},
        "employment": {"years_since_first_job": round(rng.uniform(0, 40), 1), "tenure_years": 3.5,
                       "num_jobs": rng.randint(0, 9), "seniority": rng.choice(["junior", "Senior", "ceo"])},
        "education": {"level": "master", "graduation_year": 2001, "degrees": 2},
        "family": {"children": 2, "marital_status": "married"},
        "household": {"homeowner": rng.choice([True, False]), "size": 3},
        "finance": {"income_usd": 52000.0, "credit_cards": 2, "credit_history_years": 9.5,
                    "retirement_account": True},
        "account": {"age_years": 4.0},
        "activity": {"posts_per_week": 2.5, "night_share": 0.2, "emoji_rate": 0.1},
        "device": {"type": "ios"},
        "contact": {"email_domain_age_years": 12.0},
    }


# Crafted rows: id -> (document text, expected staging values).
CRAFTED = {
    "c_malformed": ('{"person": {"age": 30', {"parse_ok": False, "age": None, "num_jobs": None}),
    "c_not_object": ("[1, 2, 3]", {"parse_ok": True, "age": None, "device_type": None}),
    "c_age_text": (json.dumps({"person": {"age": "42"}, "employment": {"num_jobs": "4.7"}}),
                   {"parse_ok": True, "age": 42, "num_jobs": None}),
    "c_age_decimal": (json.dumps({"person": {"age": 4.7}, "household": {"homeowner": "yes"}}),
                      {"age": None, "homeowner": None}),
    "c_out_of_range": (json.dumps({"person": {"age": 130}, "family": {"children": 99}}),
                       {"age": None, "num_children": None}),
    "c_object_value": (json.dumps({"person": {"age": {"years": 40}}, "device": {"type": ["ios"]}}),
                       {"age": None, "device_type": None}),
    "c_category": (json.dumps({"person": {"age": 50}, "employment": {"seniority": "SENIOR"},
                               "education": {"level": "kindergarten"}, "household": {"homeowner": "T"}}),
                   {"age": 50, "seniority_level": "senior", "education_level": "other", "homeowner": True}),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    pipeline, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _env())
    warehouse = base / "warehouse"
    rng = random.Random(3)
    rows = []
    for i in range(1500):
        age = rng.randint(14, 90) if rng.random() < 0.5 else None  # half the rows are labelled
        rows.append((f"p{i:05d}", json.dumps(_doc(rng, age))))
    rows += [(k, d) for k, (d, _) in CRAFTED.items()]
    rows += [(f"p{i:05d}", '{"broken') for i in range(0, 40)]  # malformed duplicates: the valid copy is kept
    rows += [(None, "{}")] * 3  # no id: dropped
    src = base / "source"
    src.mkdir()
    con = duckdb.connect()
    con.execute("CREATE TABLE s (person_id VARCHAR, profile_json VARCHAR)")
    con.executemany("INSERT INTO s VALUES (?, ?)", rows)
    con.execute(f"COPY s TO '{src}/part-0.parquet' (FORMAT parquet)")
    engine = DuckDBEngine(warehouse, threads=2)
    engine.register_table(pipeline.source.database, pipeline.source.table, str(src))
    compiled = Context(pipeline, root=str(warehouse) + "/")
    ctx = SimpleNamespace(compile=compiled, names=compiled.names, engine=engine, run_id=RUN)
    stages = {s.name: s for s in pipeline.stages}
    out = {"pipeline": pipeline, "engine": engine, "ctx": ctx, "stages": stages,
           "ids": {r[0] for r in rows if r[0] is not None}, "results": {}}
    for name in ["StagingFeatures", "TrainingFeatures", "TrainingTargets", "EvaluationFeatures", "CreatePredictionsTable"]:
        out["results"][name] = run_stage(stages[name], ctx)
    yield out
    engine.close()


def run_stage(stage, ctx) -> dict:
    """A stage's statements, in order, as its states send them."""
    statements = stage.sql(ctx.compile)
    rows = 0
    for st in statements:
        result = ctx.engine.execute(st.text(ctx.run_id))
        rows += result.rows_written if result.rows_written is not None else 0
    return {"rows_out": rows, "statements": len(statements)}


def table(run, key):
    p = run["pipeline"]
    return p.aws.database, p.tables.names()[key]


def q(run, sql):
    return run["engine"].execute(sql).rows


def test_staging_reads_each_document_twice_at_most(run):
    # One validation (try(json_parse)) and one list extraction of the 22 paths: no per-path parse.
    # The dedup validates too, to prefer a copy that parses, but only in the branch that aggregates
    # the copies of repeated ids (after SEMI JOIN); a document whose id is seen once is not tested there.
    (statement,) = run["stages"]["StagingFeatures"].sql(run["ctx"].compile)
    sql = parse(statement.text(RUN)).duckdb_sql().lower()
    dedup, rest = sql.split("parsed as (", 1)
    assert rest.count("json_valid(") == 1 and sql.count("json_extract(") == 1
    once, repeated = dedup.split(" union all ", 1)
    assert "anti join" in once and "json_valid(" not in once
    assert "semi join" in repeated and repeated.count("json_valid(") == 1


def test_staging_has_one_row_per_distinct_id(run):
    db, staging = table(run, "staging")
    assert run["results"]["StagingFeatures"] == {"rows_out": len(run["ids"]), "statements": 1}
    assert run["engine"].row_count(db, staging) == len(run["ids"])
    # Partitioned by batch group: 9 folders of 100 batches each (the last 98).
    groups = q(run, f"SELECT batch_group, min(batch_id), max(batch_id) FROM {db}.{staging} GROUP BY 1 ORDER BY 1")
    assert [g[0] for g in groups] == list(range(9))
    assert all(g[0] * 100 <= lo <= hi < min(g[0] * 100 + 100, 898) for g, lo, hi in [(g, g[1], g[2]) for g in groups])


@pytest.mark.parametrize("row_id", sorted(CRAFTED))
def test_staging_values_follow_athena(run, row_id):
    db, staging = table(run, "staging")
    expected = CRAFTED[row_id][1]
    cols = ", ".join(expected)
    assert q(run, f"SELECT {cols} FROM {db}.{staging} WHERE id = '{row_id}'") == [tuple(expected.values())]


def test_duplicates_keep_the_copy_that_parses(run):
    db, staging = table(run, "staging")
    # '{"broken' sorts before '{"person...', but does not parse: the valid copy is kept.
    assert q(run, f"SELECT count(*) FROM {db}.{staging} WHERE NOT parse_ok AND id LIKE 'p%'") == [(0,)]


def test_training_sample_is_about_ten_percent_of_labelled_rows(run):
    db, staging = table(run, "staging")
    _, features = table(run, "training_features")
    _, targets = table(run, "training_targets")
    labelled = q(run, f"SELECT count(*) FROM {db}.{staging} WHERE parse_ok AND age IS NOT NULL")[0][0]
    n = run["results"]["TrainingFeatures"]["rows_out"]
    assert 0.06 * labelled <= n <= 0.14 * labelled
    assert run["results"]["TrainingTargets"]["rows_out"] == n
    assert q(run, f"SELECT count(*) FROM {db}.{features} f JOIN {db}.{targets} t USING (id)") == [(n,)]
    assert q(run, f"SELECT max(sample_bucket) < 1000 FROM {db}.{features}") == [(True,)]


def test_evaluation_partitions_are_written_in_nine_statements(run, tmp_path):
    db, staging = table(run, "staging")
    _, evaluation = table(run, "evaluation_features")
    parseable = q(run, f"SELECT count(*), count(DISTINCT batch_id) FROM {db}.{staging} WHERE parse_ok")[0]
    assert run["results"]["EvaluationFeatures"] == {"rows_out": parseable[0], "statements": 9}
    location = Path(run["engine"].table_location(db, evaluation))
    folders = {p.name for p in location.iterdir()}
    assert len(folders) == parseable[1] and all(0 <= int(f.split("=")[1]) < 898 for f in folders)
    assert location == Path(run["ctx"].names.table_location("evaluation_features", RUN))


def test_predictions_table_is_readable_once_files_exist(run):
    db, predictions = table(run, "predictions")
    _, evaluation = table(run, "evaluation_features")
    engine, ctx = run["engine"], run["ctx"]
    assert run["results"]["CreatePredictionsTable"] == {"rows_out": 0, "statements": 1}
    assert engine.row_count(db, predictions) == 0
    location = Path(engine.table_location(db, predictions))
    present = [r[0] for r in q(run, f"SELECT DISTINCT batch_id FROM {db}.{evaluation} ORDER BY 1")]
    batches = [present[0], present[len(present) // 2], present[-1]]
    for batch in batches:  # as prediction workers do: one Parquet file under batch_id=N/
        (location / f"batch_id={batch}").mkdir(parents=True, exist_ok=True)
        duckdb.sql(
            f"COPY (SELECT id, 40.0 AS predicted_age, 30.0 AS lower_bound, 50.0 AS upper_bound, 0.8 AS confidence_score,"
            f" 'xgboost' AS model_name, 'v1' AS model_version, '{RUN}' AS run_id FROM read_parquet("
            f"'{engine.table_location(db, evaluation)}batch_id={batch}/*.parquet')) "
            f"TO '{location}/batch_id={batch}/part.parquet' (FORMAT parquet)")
    scored = q(run, f"SELECT count(*) FROM {db}.{evaluation} WHERE batch_id IN {tuple(batches)}")[0][0]
    assert scored > 0 and engine.row_count(db, predictions) == scored
    qa = run_stage(run["stages"]["HumanQA"], ctx)
    final = run_stage(run["stages"]["FinalResults"], ctx)
    assert qa == {"rows_out": scored, "statements": 1}
    assert final == {"rows_out": len(run["ids"]), "statements": 1}
    _, final_table = table(run, "final_results")
    sources = dict(q(run, f"SELECT prediction_source, count(*) FROM {db}.{final_table} GROUP BY 1"))
    assert sources["model"] == scored and sources["default_unparseable"] == 1  # c_malformed
    assert q(run, f"SELECT count(DISTINCT id) = count(*) FROM {db}.{final_table}") == [(True,)]
