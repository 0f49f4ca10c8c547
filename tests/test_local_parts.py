"""The local runner's parts that need no engine: order, retries, run ids, source checks, progress."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepkit.compiler.build import build
from stepkit.ir.context import Context
from stepkit.errors import DataError
from stepkit.local.progress import Progress
from stepkit.local.retry import TASK_FAILED, Attempts, RetryPolicy
from stepkit.local.runner import stage_order
from stepkit.local.runs import new_run_id
from stepkit.local.source import PLACEHOLDERS, check_source, fill_placeholders
from stepkit.compiler.load import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"


@pytest.fixture(scope="module")
def compiled():
    variables = dict(PLACEHOLDERS)
    pipeline, positions = load_pipeline(PIPELINE, variables)
    ctx = Context(pipeline, PIPELINE, root="/tmp/wh/")
    return ctx, build(ctx, positions)


def test_stage_order_follows_the_state_machine(compiled):
    ctx, artifacts = compiled
    order = stage_order(ctx, artifacts.definition)
    assert [s.name for s, _ in order] == [s.name for s in ctx.p.stages]
    states = dict((s.name, names) for s, names in order)
    # One stage, several states: the 898-partition CTAS is written in 9 statements.
    assert states["EvaluationFeatures"] == ["EvaluationFeatures"] + [f"EvaluationFeatures_Insert{i:02d}" for i in range(1, 9)]
    assert "CleanupOnFailure" not in {n for names in states.values() for n in names}


@pytest.mark.parametrize("state, error, attempts", [
    ("ParallelPrediction", TASK_FAILED, 3),      # the child's TaskFailed retrier: 1 + MaxAttempts 2
    ("Training", TASK_FAILED, 1),                # only ECS throttling is retried: never happens locally
    ("StagingFeatures", TASK_FAILED, 1),         # only Athena throttling
    ("Training", "ECS.AmazonECSException", 11),  # 1 + 10, as compiled
    ("Training", "AmazonECS.Unknown", 6),        # no Fargate capacity at launch: 1 + 5
    ("ParallelPrediction", "AmazonECS.Unknown", 6),  # its own budget, before the TaskFailed retrier
])
def test_retry_policy_mirrors_the_compiled_retry(compiled, state, error, attempts):
    _, artifacts = compiled
    s = artifacts.definition["States"][state]
    if s["Type"] == "Map":
        s = next(iter(s["ItemProcessor"]["States"].values()))
    assert RetryPolicy.of(s).max_attempts(error) == attempts


def test_attempts_give_up_after_max_and_shorten_delays(compiled):
    _, artifacts = compiled
    child = next(iter(artifacts.definition["States"]["ParallelPrediction"]["ItemProcessor"]["States"].values()))
    tries = Attempts(RetryPolicy.of(child))
    delays = [tries.retry_delay(TASK_FAILED) for _ in range(3)]
    assert delays[:2] == [0.2, 0.2] and delays[2] is None  # AWS waits 30 s then 60 s


def test_run_ids_are_sortable_execution_names():
    a, b = new_run_id(1_700_000_000), new_run_id(1_700_000_060)
    assert re.fullmatch(r"local-\d{8}-\d{6}-[0-9a-f]{4}", a)
    assert a[:21] < b[:21]


def test_placeholders_fill_only_unset_variables():
    values = {"AWS_REGION": "eu-west-1", "S3_BUCKET": ""}
    filled = fill_placeholders(values)
    assert values["AWS_REGION"] == "eu-west-1"
    assert set(filled) == {"AWS_ACCOUNT_ID", "S3_BUCKET", "SUBNET_ID", "SECURITY_GROUP_ID"}


def _write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.parquet", r"no such source file or folder \(source table db\.src\)"),
    (lambda d: _write(d / "noid.parquet", pa.table({"doc": ["{}"]})),
     r"source table db\.src has no column 'person_id' \(source\.id_column\); its columns: doc"),
    (lambda d: _write(d / "nodoc.parquet", pa.table({"person_id": ["a"]})),
     r"has no column 'doc' \(source\.document_column\)"),
    (lambda d: _write(d / "empty.parquet", pa.table({"person_id": pa.array([], pa.string()), "doc": pa.array([], pa.string())})),
     r"source table db\.src is empty \(0 rows\)"),
    (lambda d: (d / "emptydir").mkdir() or d / "emptydir", r"has 0 rows: no Parquet files"),
    (lambda d: (d / "junk.parquet").write_text("not parquet") and d / "junk.parquet", r"is not readable Parquet"),
])
def test_bad_sources_are_one_line_data_errors(tmp_path, make, message):
    with pytest.raises(DataError) as e:
        check_source(make(tmp_path), "db.src", "person_id", "doc")
    assert "\n" not in str(e.value)
    assert re.search(message, str(e.value)), str(e.value)


def test_good_source_counts_rows(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(2):
        _write(folder / f"part-{i}.parquet", pa.table({"person_id": ["a", "b", "c"], "doc": ["{}"] * 3}))
    src = check_source(folder, "db.src", "person_id", "doc")
    assert (src.rows, len(src.files), src.location.endswith("/src/")) == (6, 2, True)


@pytest.mark.parametrize("tty, expected", [
    (False, ["batches 90/898", "batches 180/898", "batches 898/898"]),
    (True, ["\r      P: [", "batches 898/898\n"]),
])
def test_progress_is_short_in_logs_and_live_on_terminals(tty, expected):
    buf = io.StringIO()
    prog = Progress(buf, tty=tty)
    for done in range(1, 899):
        prog.batches("P", done, 898)
    text = buf.getvalue()
    assert all(e in text for e in expected)
    if not tty:
        assert len(text.splitlines()) == 10


def _local_ctx(tmp_path, pipeline_ctx):
    from stepkit.engines.duckdb import DuckDBEngine
    from stepkit.local.context import LocalContext

    warehouse = tmp_path / "warehouse"
    ctx = Context(pipeline_ctx.p, PIPELINE, root=warehouse.as_posix() + "/")
    return LocalContext(compile=ctx, run_id="local-20250101-000000-abcd", workdir=tmp_path, run_dir=tmp_path / "run",
                        config_path=tmp_path / "config.json", engine=DuckDBEngine(warehouse), concurrency=1,
                        log=lambda line: None)


def _table_with_runs(lctx, key: str, runs: list[str]) -> Path:
    p = lctx.compile.p
    for run in runs:
        folder = Path(lctx.names.table_location(key, run))
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"id": ["a"]}), folder / "part-0.parquet")
    lctx.engine.register_table(p.aws.database, p.tables.names()[key], lctx.names.table_location(key, runs[0]))
    return Path(lctx.names.table_root(key))


@pytest.mark.parametrize("stage, kept_runs, dropped", [
    # Cleanup of this run: its folder goes, another run's stays.
    ("Cleanup", ["local-other"], True),
    # PreCleanup (scope all): every run's files of delete_data tables go.
    ("PreCleanup", [], True),
])
def test_cleanup_runs_the_shared_plan_on_the_local_catalog(tmp_path, compiled, stage, kept_runs, dropped):
    ctx, _ = compiled
    lctx = _local_ctx(tmp_path, ctx)
    root = _table_with_runs(lctx, "staging", [lctx.run_id, "local-other"])
    block = next(s for s in ctx.p.stages if s.name == stage)
    done = block.run_local(lctx)
    assert (sorted(p.name for p in root.iterdir()) if root.exists() else []) == kept_runs
    assert (lctx.engine.table_location(ctx.p.aws.database, ctx.p.tables.staging) is None) == dropped
    assert ctx.p.tables.staging in done["dropped"]


@pytest.mark.parametrize("function, outcome", [
    ("cleanup", "runs the cleanup plan"),
    ("score-things", "stages.Notify.function: score-things: a local run has no Lambda functions"),
])
def test_lambda_invoke_runs_only_stepkits_cleanup_function_locally(tmp_path, compiled, function, outcome):
    from stepkit.errors import StepkitError
    from stepkit.steps.lambda_invoke import LambdaInvoke

    ctx, _ = compiled
    lctx = _local_ctx(tmp_path, ctx)
    root = _table_with_runs(lctx, "staging", [lctx.run_id])
    payload = {"database": ctx.p.aws.database, "scope": "run", "tables": [
        {"name": ctx.p.tables.staging, "location": lctx.names.table_root("staging"), "delete_data": True}]}
    block = LambdaInvoke(name="Notify", function=function, payload=payload)
    if function == "cleanup":
        block.run_local(lctx)
        assert list(root.iterdir()) == []
    else:
        with pytest.raises(StepkitError, match=outcome):
            block.run_local(lctx)
        assert list(root.iterdir()) != []


def test_workers_see_the_environment_of_their_run_not_an_earlier_one(monkeypatch):
    """The forkserver keeps the environment it started with; a variable of an earlier run (a fault
    injection) must not reach the workers of a later one."""
    from stepkit.local.pool import run_task
    from stepkit.local.retry import RetryPolicy

    policy = RetryPolicy()  # no retries
    monkeypatch.setenv("STEPKIT_PROBE", "earlier run")
    assert run_task("tests._env_probe", ("STEPKIT_PROBE",), policy, "probe")[0] == "earlier run"
    monkeypatch.delenv("STEPKIT_PROBE")
    assert run_task("tests._env_probe", ("STEPKIT_PROBE",), policy, "probe")[0] is None


def test_workers_start_with_xgboost_loaded_without_scikit_learn_yet_can_import_it():
    """The forkserver preloads what the workers import (stepkit/local/preload.py); xgboost there
    does not drag in scikit-learn (2 s of the first task's start), which a worker may still import."""
    from stepkit.local.pool import run_task, start
    from stepkit.local.retry import RetryPolicy

    start(["tests._import_probe"])
    out, _ = run_task("tests._import_probe", (["xgboost", "pyarrow.parquet", "pandas", "sklearn"], "sklearn"),
                      RetryPolicy(), "probe")
    assert out == {"loaded": {"xgboost": True, "pyarrow.parquet": True, "pandas": True, "sklearn": False},
                   "importable": True}


@pytest.mark.parametrize("stage, beside_a_task", [
    ("StagingFeatures", True),          # reads the source only
    ("EvaluationFeatures", True),       # reads the staging table, which a CTAS wrote whole
    ("GenerateBatchIds", True),         # reads no table
    ("CreatePredictionsTable", True),   # DDL: reads no table
    ("HumanQA", False),                 # reads the predictions, an external table the workers fill
    ("ParallelPrediction", False),      # a fan-out: needs the model a task writes
    ("Cleanup", False),
])
def test_which_stages_may_run_beside_a_task(compiled, stage, beside_a_task):
    from types import SimpleNamespace

    from stepkit.local.runner import _reads_only, _whole_tables

    ctx, _ = compiled
    lctx = SimpleNamespace(compile=ctx, run_id="local-20260101-000000-abcd")
    block = next(s for s in ctx.p.stages if s.name == stage)
    assert _reads_only(lctx, block, _whole_tables(lctx)) is beside_a_task
