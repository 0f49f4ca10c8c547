"""The worker entrypoints as ECS runs them (`python -m stepkit.workers.<task> ...`), their run() functions,
the prediction output contract, S3 via moto, and the image contents."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import stepkit.workers.prediction
import stepkit.workers.training
from stepkit import storage
from stepkit.errors import DataError
from stepkit.ml import fixtures
from tests.test_ml_train import RUN, small

ROOT = Path(__file__).resolve().parents[1]


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    p = small()
    root = f"{tmp_path_factory.mktemp('wh')}/"
    names, config_uri, _ = fixtures.warehouse(p, root, RUN, rows=6000, seed=5)
    done = _cli("stepkit.workers.training", "--config", config_uri, "--run-id", RUN)
    assert done.returncode == 0, done.stderr
    return p, names, config_uri, json.loads(done.stdout.strip().splitlines()[-1])


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_training_entrypoint_prints_one_json_summary(local):
    _, names, _, summary = local
    assert summary["chosen_model"] in {"ridge", "xgboost", "xgboost_quantile"} and summary["gate"]["passed"]
    assert Path(names.model_location("age", RUN) + "model.joblib").is_file()


def test_prediction_entrypoint_writes_the_batch_file_and_a_retry_overwrites(local):
    p, names, config_uri, summary = local
    first = _cli("stepkit.workers.prediction", "--config", config_uri, "--run-id", RUN, "--batch-id", "2")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert out["path"] == f"{names.table_location('predictions', RUN)}batch_id=2/part-00000.parquet"
    digest = _digest(out["path"])
    again = stepkit.workers.prediction.run(config_uri, RUN, 2)  # the retry, in a long-lived process
    assert again["rows"] == out["rows"] > 0 and _digest(again["path"]) == digest
    assert storage.list_parquet(f"{names.table_location('predictions', RUN)}batch_id=2/") == [out["path"]]


def test_prediction_rows_follow_the_contract(local):
    p, names, config_uri, summary = local
    out = stepkit.workers.prediction.run(config_uri, RUN, 1)
    table = pq.read_table(out["path"])
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("id", "string"), ("predicted_age", "double"), ("lower_bound", "double"), ("upper_bound", "double"),
        ("confidence_score", "double"), ("model_name", "string"), ("model_version", "string"), ("run_id", "string")]
    src = storage.read_table(f"{names.table_location('evaluation_features', RUN)}batch_id=1/", columns=["id"])
    assert table.column("id").to_pylist() == src.column("id").to_pylist()  # every row once, in input order
    pred, lo, hi, conf = (table.column(c).to_numpy() for c in ("predicted_age", "lower_bound", "upper_bound",
                                                               "confidence_score"))
    assert (lo <= pred).all() and (pred <= hi).all() and lo.min() >= 13 and hi.max() <= 100
    assert (conf >= 0).all() and (conf <= 1).all() and conf.std() > 0
    assert set(table.column("model_name").to_pylist()) == {summary["chosen_model"]}
    assert set(table.column("model_version").to_pylist()) == {summary["model_version"]}
    assert set(table.column("run_id").to_pylist()) == {RUN}


def test_a_batch_without_rows_writes_an_empty_file_with_the_schema(local):
    _, names, config_uri, _ = local
    out = stepkit.workers.prediction.run(config_uri, RUN, 97)  # Athena wrote no folder for it
    table = pq.read_table(out["path"])
    assert out["rows"] == 0 and table.num_rows == 0 and table.column_names[1] == "predicted_age"


@pytest.mark.parametrize("module, args, code, message", [
    ("stepkit.workers.training", ["--config", "/nonexistent/pipeline.json", "--run-id", RUN], 2,
     r"^/nonexistent/pipeline\.json: no such file$"),
    ("stepkit.workers.prediction", ["--config", "/nonexistent/pipeline.json", "--run-id", RUN, "--batch-id", "0"], 2,
     r"^/nonexistent/pipeline\.json: no such file$"),
    ("stepkit.workers.training", ["--config", "CONFIG", "--run-id", "other-run"], 2,
     r"^.*training_features_14m/other-run/: no such folder .*$"),
])
def test_user_errors_are_one_line_and_exit_2(local, module, args, code, message):
    args = [local[2] if a == "CONFIG" else a for a in args]
    done = _cli(module, *args)
    assert done.returncode == code and re.match(message, done.stderr.strip()) and "Traceback" not in done.stderr


def test_a_missed_quality_gate_exits_3(local, tmp_path):
    p, names, _, _ = local
    strict = fixtures.variant(p, training={"quality_gate": {"max_mae": 0.1}})
    from stepkit import config

    cfg = tmp_path / "strict.json"
    cfg.write_text(config.render(config.worker_config(strict, names.root)))
    done = _cli("stepkit.workers.training", "--config", str(cfg), "--run-id", RUN)
    # Per-model progress lines come first (CloudWatch keeps them); the error is the last line.
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 3 and re.fullmatch(r"quality gate: mae [\d.]+ > max_mae 0\.1 \(model \w+, \d+ held-out rows\)", last)
    assert "Traceback" not in done.stderr


def test_bigint_ids_stay_int64(tmp_path):
    p = small()
    p = fixtures.variant(p, source={"id_type": "bigint"})
    names, config_uri, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=4000, seed=2)
    stepkit.workers.training.run(config_uri, RUN)
    table = pq.read_table(stepkit.workers.prediction.run(config_uri, RUN, 0)["path"])
    assert str(table.schema.field("id").type) == "int64" and table.num_rows > 0


# --- S3: the same workers against moto, through the s3:// config and table locations
@pytest.fixture
def s3(aws_env):
    import boto3

    client = boto3.client("s3")
    if "stepkit-example-bucket" not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket="stepkit-example-bucket")
    return client


def test_workers_on_s3(s3):
    p = small()
    names, config_uri, _ = fixtures.warehouse(p, "s3://stepkit-example-bucket/predict-age/", RUN, rows=4000, seed=4)
    assert config_uri == names.config_uri  # where deploy puts it
    summary = stepkit.workers.training.run(config_uri, RUN)
    out = stepkit.workers.prediction.run(config_uri, RUN, 3)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="stepkit-example-bucket", Prefix="predict-age/")["Contents"]}
    assert f"predict-age/runs/{RUN}/models/age/model.joblib" in keys and f"predict-age/runs/{RUN}/models/metrics.json" in keys
    assert out["path"].startswith("s3://") and out["path"][len("s3://stepkit-example-bucket/"):] in keys
    assert storage.read_table(out["path"]).num_rows == out["rows"] > 0
    assert out["model_version"] == summary["model_version"]


# --- the image: the workers run with nothing importable beyond their requirements file
def _allowed_modules(requirements: Path) -> set[str]:
    """Top-level modules of the distributions the requirements file installs (with --no-deps)."""
    wanted = {re.split(r"[=<>\[ ]", line)[0].lower().replace("_", "-") for line in requirements.read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    return {mod for mod, ds in packages_distributions().items() if {d.lower().replace("_", "-") for d in ds} & wanted}


BLOCKER = """
import sys, importlib.abc, json
ALLOWED = set(json.loads(sys.argv[1])) | set(sys.stdlib_module_names) | {"stepkit"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top not in ALLOWED and not top.startswith("_"):
            raise ModuleNotFoundError(f"not in the image: {top}")
sys.meta_path.insert(0, Block())
import stepkit.workers.training, stepkit.workers.prediction
summary = stepkit.workers.training.run(sys.argv[2], sys.argv[3])
out = stepkit.workers.prediction.run(sys.argv[2], sys.argv[3], 0)
print(json.dumps([summary["chosen_model"], out["rows"]]))
"""


@pytest.mark.parametrize("task", ["training", "prediction"])
def test_workers_run_with_only_their_image_requirements(local, task):
    allowed = _allowed_modules(ROOT / "workers" / task / "requirements.txt")
    assert not {"sklearn", "pandas", "boto3", "click", "sqlglot"} & allowed
    done = subprocess.run([sys.executable, "-c", BLOCKER, json.dumps(sorted(allowed)), local[2], RUN],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])[1] > 0


@pytest.mark.parametrize("task, args", [("training", ""), ("prediction", " --batch-id N")])
def test_dockerfile_entrypoint_takes_the_compiled_arguments(task, args):
    text = (ROOT / "workers" / task / "Dockerfile").read_text()
    assert f'ENTRYPOINT ["python", "-m", "stepkit.workers.{task}"]' in text
    assert text.count("FROM python:3.11-slim") == 2 and f"--run-id ID{args})" in text
    assert f"COPY workers/{task}/requirements.txt" in text
    # Bytecode kept in the image: the non-root runtime user cannot write it, so it would be
    # recompiled on every task's start.
    assert "__pycache__" not in text and "USER worker" in text


# --- a long-lived worker process: what its first batch pays, what each batch re-reads
FIRST_BATCH = BLOCKER.split("import stepkit.workers.training")[0] + """
import xgboost  # as stepkit/local/preload.py has it in the forkserver
import stepkit.workers.prediction
from stepkit.spec.pipeline import WorkerPipeline
complete = WorkerPipeline.__pydantic_complete__
before = set(sys.modules)
stepkit.workers.prediction.run(sys.argv[2], sys.argv[3], 1)
print(json.dumps({"complete": complete, "imported": sorted(set(sys.modules) - before)}))
"""


def test_the_module_import_holds_everything_the_first_batch_needs(local):
    # A local run's forkserver imports stepkit.workers.prediction once; each worker process it forks
    # then scores its first batch without importing anything (it paid ~1.2 s before). Run with
    # only the image's modules importable: a dev venv's pandas is imported by pyarrow's first
    # array conversion wherever it is installed (stepkit/local/preload.py decides about that).
    allowed = _allowed_modules(ROOT / "workers" / "prediction" / "requirements.txt")
    done = subprocess.run([sys.executable, "-c", FIRST_BATCH, json.dumps(sorted(allowed)), local[2], RUN],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["complete"] and out["imported"] == []


def test_load_config_is_parsed_once_per_content(local, tmp_path):
    from stepkit.workers import load_config

    cfg = tmp_path / "pipeline.json"
    text = Path(local[2]).read_text()
    cfg.write_text(text)
    first = load_config(str(cfg))
    assert load_config(str(cfg)) is first  # the same bytes: the parsed config, kept
    cfg.write_text(text.replace('"batches": 4', '"batches": 5'))
    changed = load_config(str(cfg))
    assert changed is not first and changed[0].batching.batches == 5
    cfg.write_text("{}")
    with pytest.raises(DataError, match=r"pipeline\.json: not a stepkit worker config"):
        load_config(str(cfg))
