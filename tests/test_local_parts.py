"""The local run's parts, one at a time: run ids, source checks, progress, the service adapters, the
worker processes, the engine's turns."""
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
from stepkit.local.runs import new_run_id
from stepkit.local.source import PLACEHOLDERS, check_source, fill_placeholders
from stepkit.compiler.load import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"


@pytest.fixture(scope="module")
def compiled():
    variables = dict(PLACEHOLDERS)
    pipeline, positions = load_pipeline(PIPELINE, variables)
    return build(Context(pipeline, PIPELINE), positions)


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


@pytest.fixture
def services(tmp_path, compiled):
    from stepkit.engines.duckdb import DuckDBEngine
    from stepkit.local.pool import Workers
    from stepkit.local.services import Services

    warehouse = tmp_path / "warehouse"
    local = Context(compiled.context.p, PIPELINE, root=warehouse.as_posix() + "/")
    engine = DuckDBEngine(warehouse, roots={compiled.context.names.root: warehouse.as_posix() + "/"})
    out = Services(compiled, local, "local-20250101-000000-abcd", tmp_path, tmp_path / "run", engine, Workers(1), 1,
                   log=lambda line: None)
    yield out
    out.close()


def _table_with_runs(services, key: str, runs: list[str]) -> Path:
    p, names = services.local.p, services.local.names
    for run in runs:
        folder = Path(names.table_location(key, run))
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"id": ["a"]}), folder / "part-0.parquet")
    services.engine.register_table(p.aws.database, p.tables.names()[key], names.table_location(key, runs[0]))
    return Path(names.table_root(key))


def _task_call(state: str, parameters: dict, path: tuple = ()):
    import threading

    from stepkit.interpreter import TaskCall

    return TaskCall(state, path or (state,), "", parameters, {}, None, 0, threading.Event(), "local-test")


@pytest.mark.parametrize("stage, kept_runs, dropped", [
    # Cleanup of this run: its folder goes, another run's stays.
    ("Cleanup", ["local-other"], True),
    # PreCleanup (scope all): every run's files of delete_data tables go.
    ("PreCleanup", [], True),
])
def test_the_cleanup_function_runs_its_plan_on_the_local_catalog(services, compiled, stage, kept_runs, dropped):
    """The cleanup states' payloads, exactly as compiled (s3:// locations), through the Lambda adapter."""
    from stepkit.local.adapters import lambda_

    root = _table_with_runs(services, "staging", [services.run_id, "local-other"])
    params = dict(compiled.definition["States"][stage]["Parameters"])
    params["Payload"] = {**{k: v for k, v in params["Payload"].items() if not k.endswith(".$")},
                         "run_id": services.run_id}
    out = lambda_.adapter(services)(_task_call(stage, params))
    from stepkit.local.tasks import wait_discarded

    wait_discarded(services)
    assert (sorted(p.name for p in root.iterdir()) if root.exists() else []) == kept_runs
    assert (services.engine.table_location(compiled.context.p.aws.database,
                                           compiled.context.p.tables['staging']) is None) == dropped
    assert compiled.context.p.tables['staging'] in out["Payload"]["dropped"]


def test_a_lambda_function_other_than_stepkits_is_refused_before_the_run(services, compiled):
    from stepkit.local.adapters import lambda_

    definition = {"StartAt": "Notify", "States": {"Notify": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True,
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:score-things"}}}}
    (line,) = lambda_.problems(definition, services)
    assert line.startswith("state Notify: Lambda function arn:aws:lambda:us-east-1:000000000000:function:score-things: "
                           "a local run has no Lambda functions")


@pytest.mark.parametrize("command, parsed", [
    (["--config", "s3://b/p/c.json", "--run-id", "r1"], {"config": "s3://b/p/c.json", "run_id": "r1"}),
    (["--config", "c", "--run-id", "r", "--batch-id", "7"], {"config": "c", "run_id": "r", "batch_id": "7"}),
    (["--config", "c"], "the command has no --run-id"),
    (["--config", "c", "--run-id", "r", "--verbose", "1"], "argument '--verbose'"),
    (["--config", "c", "--run-id"], "--run-id has no value"),
])
def test_a_container_command_becomes_the_workers_arguments(command, parsed):
    from stepkit.local.adapters import ecs

    if isinstance(parsed, dict):
        assert ecs.parse(command) == parsed
    else:
        with pytest.raises(ValueError, match=re.escape(parsed)):
            ecs.parse(command)


def test_a_task_outside_the_pipelines_tasks_is_refused_before_the_run(services, compiled):
    from stepkit.local.adapters import ecs

    definition = {"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "End": True,
        "Parameters": {"TaskDefinition": "someone-elses-task"}}}}
    (line,) = ecs.problems(definition, services)
    assert line.startswith("state T: task definition 'someone-elses-task' is not one of this pipeline's tasks")


def test_statements_take_the_engine_in_the_order_of_their_stages():
    """Parallel branches waiting for the engine: the lower stage number goes first, whatever came first."""
    import threading
    import time

    from stepkit.local.services import Turns

    turns, got = Turns(), []
    holder = threading.Event()

    def first() -> None:
        with turns.take(0):
            holder.set()
            time.sleep(0.3)  # everyone else queues meanwhile

    def waiter(n: int) -> None:
        with turns.take(n):
            got.append(n)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    holder.wait()
    for n in (5, 3, 4, 2):
        threads.append(threading.Thread(target=waiter, args=(n,)))
        threads[-1].start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert got == [2, 3, 4, 5]


def test_workers_see_the_environment_of_their_run_not_an_earlier_one(monkeypatch):
    """The forkserver keeps the environment it started with; a variable of an earlier run (a fault
    injection) must not reach the workers of a later one."""
    import threading

    from stepkit.local.pool import Workers

    monkeypatch.setenv("STEPKIT_PROBE", "earlier run")
    assert Workers(1).single("tests._env_probe", ("STEPKIT_PROBE",), 1, threading.Event()) == "earlier run"
    monkeypatch.delenv("STEPKIT_PROBE")
    assert Workers(1).single("tests._env_probe", ("STEPKIT_PROBE",), 1, threading.Event()) is None


@pytest.mark.parametrize("task, module, runs", [
    ({}, "stepkit.workers.prediction", None),  # stepkit's own worker, as its own image runs it
    ({"image": "repo/mine:1", "module": "tests._env_probe"}, "tests._env_probe", True),  # the user's own
    ({"image": "repo/mine:1", "module": "tests.no_such_worker"}, "no module tests.no_such_worker", False),
])
def test_a_task_runs_stepkits_worker_or_its_own_module(compiled, task, module, runs):
    import threading

    from stepkit.errors import StepkitError
    from stepkit.local.pool import Workers
    from stepkit.local.tasks import worker_module
    from stepkit.ml.fixtures import variant

    p = compiled.context.p
    p = variant(p, compute={"tasks": {**p.model_dump(mode="json")["compute"]["tasks"],
                                      "prediction": {"cpu": 4, "memory_gb": 16, "timeout_minutes": 60, **task}}})
    if runs is False:
        with pytest.raises(StepkitError, match=f"compute.tasks.prediction: no local worker: "
                                               f"{module} .*compute.tasks.prediction.module"):
            worker_module(p, "prediction")
        return
    assert worker_module(p, "prediction") == module
    if runs:  # a local run calls its run() in a worker process
        assert Workers(1).single(module, ("PATH",), 1, threading.Event())


def test_workers_start_with_xgboost_loaded_without_scikit_learn_yet_can_import_it():
    """The forkserver preloads what the workers import (stepkit/local/preload.py); xgboost there
    does not drag in scikit-learn (2 s of the first task's start), which a worker may still import."""
    import threading

    from stepkit.local.pool import Workers, start

    start(["tests._import_probe"])
    out = Workers(1).single("tests._import_probe", (["xgboost", "pyarrow.parquet", "pandas", "sklearn"], "sklearn"),
                            1, threading.Event())
    assert out == {"loaded": {"xgboost": True, "pyarrow.parquet": True, "pandas": True, "sklearn": False},
                   "importable": True}


@pytest.mark.parametrize("task, path, extra, where", [
    # Training sits in a Parallel branch (beside EvaluationFeatures): a process, and every core, of its own
    ("training", ("Beside.TrainingFeatures.EvaluationFeatures", "1", "Training"), [], "single"),
    ("training", ("Training",), [], "single"),
    # one batch of the fan-out: the shared pool of worker processes, one thread each
    ("prediction", ("ParallelPrediction", "7", "ParallelPredictionBatch"), ["--batch-id", "7"], "batch"),
])
def test_a_task_runs_in_its_own_process_unless_it_is_a_batch_of_a_fan_out(services, monkeypatch, task, path, extra,
                                                                          where):
    import threading

    from stepkit.interpreter import TaskCall
    from stepkit.local.adapters import ecs, tasks

    family = {t: f for f, t in tasks.families(services).items()}[task]
    called = []
    monkeypatch.setattr(services.workers, "single", lambda *a, **k: called.append("single") or {})
    monkeypatch.setattr(services.workers, "batch", lambda *a, **k: called.append("batch") or {})
    command = ["--config", services.plan.context.names.config_uri, "--run-id", "r1", *extra]
    call = TaskCall(path[-1], path, ecs.RESOURCES[0], {"TaskDefinition": family, "Overrides": {
        "ContainerOverrides": [{"Name": task, "Command": command}]}}, {}, None, 0, threading.Event(), "r1")
    ecs.adapter(services)(call)
    assert called == [where]
