"""The cleanup Lambda against moto's Glue and S3, and the zip deploy uploads."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import boto3
import pytest

from stepkit.aws import package
from tests.aws.conftest import BUCKET, REGION

ROOT = f"s3://{BUCKET}/predict-age/"
DB = "ai_agent_kb_predict_age"
TABLES = "predict-age/tables"
# With pages of 2 (AWS's are 1,000), 5 files take three list and delete pages.
RUN_FILES, PAGE = 5, 2


def _put(s3, keys):
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=b"x")


@pytest.fixture
def catalog(aws):
    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": DB})
    for t in ("staging", "final"):
        glue.create_table(DatabaseName=DB, TableInput={"Name": t, "StorageDescriptor": {
            "Location": f"{ROOT}tables/{t}/"}})
    s3 = boto3.client("s3", region_name=REGION)
    _put(s3, [f"{TABLES}/staging/run-1/part-{i:05d}.parquet" for i in range(RUN_FILES)])
    _put(s3, [f"{TABLES}/staging/run-0/part-0.parquet", f"{TABLES}/final/run-1/part-0.parquet",
              "predict-age/models/run-1/model.json"])
    return glue, s3


def payload(scope="run", run_id="run-1"):
    return {"database": DB, "scope": scope, "run_id": run_id, "tables": [
        {"name": "staging", "location": f"{ROOT}tables/staging/", "delete_data": True},
        {"name": "final", "location": f"{ROOT}tables/final/", "delete_data": False},
        {"name": "never_made", "location": f"{ROOT}tables/never_made/", "delete_data": True}]}


def keys(s3):
    return sorted(o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in p.get("Contents", []))


@pytest.mark.parametrize("scope, left", [
    ("run", [f"{TABLES}/final/run-1/part-0.parquet", f"{TABLES}/staging/run-0/part-0.parquet",
             "predict-age/models/run-1/model.json"]),
    ("all", [f"{TABLES}/final/run-1/part-0.parquet", "predict-age/models/run-1/model.json"]),
])
def test_handler_drops_tables_and_deletes_only_their_files(catalog, monkeypatch, scope, left):
    from stepkit.workers.cleanup import handler

    glue, s3 = catalog
    monkeypatch.setenv(handler.ROOT_ENV, ROOT)
    monkeypatch.setattr(handler, "PAGE", PAGE)
    out = handler.handler(payload(scope))
    assert out["dropped"] == ["staging", "final"]  # never_made was absent: ignored
    assert keys(s3) == sorted(left)
    assert sum(out["deleted_objects"].values()) == (RUN_FILES if scope == "run" else RUN_FILES + 1)
    assert [t["Name"] for t in glue.get_tables(DatabaseName=DB)["TableList"]] == []


def test_handler_refuses_paths_outside_the_pipeline_tables(catalog, monkeypatch):
    from stepkit.workers.cleanup import handler

    _, s3 = catalog
    monkeypatch.setenv(handler.ROOT_ENV, ROOT)
    bad = payload()
    bad["tables"][0]["location"] = f"s3://{BUCKET}/predict-age/models/"
    before = keys(s3)
    with pytest.raises(ValueError, match="outside"):
        handler.handler(bad)
    assert keys(s3) == before


def test_zip_is_reproducible_and_runs_without_pydantic(tmp_path):
    a, b = package.function_code("p"), package.function_code("p")
    assert a.body == b.body and a.key == b.key and a.key.startswith("p/stepkit/code/functions-")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as _:
        pass
    (tmp_path / "c.zip").write_bytes(a.body)
    assert sorted(zipfile.ZipFile(tmp_path / "c.zip").namelist()) == sorted(package.FUNCTION_FILES)
    # -S: no site-packages (no pydantic, no boto3): the handler module still imports and plans.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import stepkit.workers.alerts.handler; "
            "import stepkit.workers.cleanup.handler as h; "
            "print(h.plan({'database': 'd', 'scope': 'all', 'tables': [{'name': 't', 'location': 's3://b/p/tables/t/',"
            " 'delete_data': True}]}, 's3://b/p/').delete)")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path / "c.zip")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['s3://b/p/tables/t/']"


# --- many files: folders walked and deleted in parallel, and a deadline that a retry carries on from

def _tree(s3, runs: int, batches: int, files: int) -> list[str]:
    keys = [f"{TABLES}/evaluation/run-{r}/batch_id={b}/part-{f}.parquet"
            for r in range(runs) for b in range(batches) for f in range(files)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=b"x"), keys))
    return keys


@pytest.mark.parametrize("threads", [1, 16])
def test_every_file_under_nested_folders_goes(aws, monkeypatch, threads):
    from stepkit.workers.cleanup import handler

    s3 = boto3.client("s3", region_name=REGION)
    monkeypatch.setattr(handler, "PAGE", 7)  # several list pages and delete calls per folder
    made = _tree(s3, runs=2, batches=12, files=3)
    _put(s3, [f"{TABLES}/other/run-0/part-0.parquet"])
    out = handler.delete_prefixes(s3, [f"{ROOT}tables/evaluation/"], threads=threads)
    assert out == {f"{ROOT}tables/evaluation/": len(made)}
    assert keys(s3) == [f"{TABLES}/other/run-0/part-0.parquet"]


class Clock:
    """Remaining time that runs out after `checks` looks (the walk takes 24 before its first delete)."""

    def __init__(self, checks: int):
        self.left = checks

    def __call__(self) -> float:
        self.left -= 1
        return 100.0 if self.left > 0 else 0.0


def test_near_its_deadline_it_stops_and_a_retry_finishes(aws, monkeypatch):
    from stepkit.workers.cleanup import handler

    s3 = boto3.client("s3", region_name=REGION)
    monkeypatch.setattr(handler, "PAGE", 5)
    made = _tree(s3, runs=1, batches=10, files=5)
    with pytest.raises(handler.OutOfTime, match="run again"):
        handler.delete_prefixes(s3, [f"{ROOT}tables/evaluation/"], threads=4, time_left=Clock(30))
    left = keys(s3)
    assert 0 < len(left) < len(made)  # stopped part way, having deleted some
    out = handler.delete_prefixes(s3, [f"{ROOT}tables/evaluation/"], threads=4)  # the state's retry
    assert out[f"{ROOT}tables/evaluation/"] == len(left) and keys(s3) == []


class LambdaContext:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def test_the_handler_reads_its_deadline_from_the_lambda_context(catalog, monkeypatch):
    from stepkit.workers.cleanup import handler

    monkeypatch.setenv(handler.ROOT_ENV, ROOT)
    with pytest.raises(handler.OutOfTime):
        handler.handler(payload("all"), LambdaContext(handler.MARGIN_SECONDS - 1))
    out = handler.handler(payload("all"), LambdaContext(300))
    assert sum(out["deleted_objects"].values()) == RUN_FILES + 1
