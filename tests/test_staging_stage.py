"""StagingFeatures on the local engine: which copy it keeps of an id seen more than once (a copy
that parses as JSON, then the smallest text), through the engine's dedup plan
(stepkit/engines/dedup.py) and, as the SQL reads, without it; and the id's type (source.id_type)."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepkit.compiler.load import load_pipeline, pipeline_model
from stepkit.engines import shims
from stepkit.engines.duckdb import DuckDBEngine
from stepkit.ir.context import Context

ROOT = Path(__file__).resolve().parents[1]


def variant(pipeline, **changes):
    """A validated copy of `pipeline` with sections updated (dicts merge), stages as blocks."""
    data = pipeline.model_dump(mode="json", by_alias=True)
    for key, value in changes.items():
        data[key] = {**data[key], **value}
    return pipeline_model().model_validate(data)


def _env() -> dict[str, str]:
    lines = (ROOT / "pipelines" / "example.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def doc(age: int) -> str:
    return json.dumps({"person": {"age": age}})


def cut(age: int) -> str:
    """A malformed copy: the valid document cut short, so it sorts before it (min() chose it)."""
    return doc(age)[:-2]


# (case, the id's copies in source order, (parse_ok, age) of the row kept; None: no row)
CASES = [
    ("valid then malformed", [doc(40), cut(40)], (True, 40)),
    ("malformed then valid", [cut(41), doc(41)], (True, 41)),
    ("malformed that sorts after the valid one", ["not json", doc(42)], (True, 42)),
    ("two valid, different: the smaller text", [doc(50), doc(43)], (True, 43)),
    ("two valid, same text", [doc(44), doc(44)], (True, 44)),
    ("two malformed", [cut(45), "{"], (False, None)),
    ("null document and a valid one", [None, doc(46)], (True, 46)),
    ("null document and a malformed one", [None, cut(47)], (False, None)),
    ("null document alone", [None], (False, None)),
    ("malformed alone", [cut(48)], (False, None)),
    ("valid alone", [doc(49)], (True, 49)),
    ("three: malformed, valid, valid", [cut(60), doc(61), doc(60)], (True, 60)),
    ("valid JSON that is not an object beats a malformed one", ["[1]", cut(62)], (True, None)),
]


def _source(path: Path, rows: list[tuple]) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE src (person_id VARCHAR, profile_json VARCHAR)")
    con.executemany("INSERT INTO src VALUES (?, ?)", rows)
    con.execute(f"COPY src TO '{path}' (FORMAT parquet)")
    con.close()


def run_staging(tmp: Path, source: Path, pipeline=None, columns: str = "id, parse_ok, age") -> list[tuple]:
    """The rows (`columns`) of the staging table StagingFeatures writes from `source`."""
    pipeline = pipeline or load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _env())[0]
    warehouse = tmp / "warehouse"
    engine = DuckDBEngine(warehouse, threads=1)
    try:
        engine.register_table(pipeline.source.database, pipeline.source.table, str(source))
        ctx = Context(pipeline, root=str(warehouse) + "/")
        stage = next(s for s in pipeline.stages if s.name == "StagingFeatures")
        (statement,) = stage.sql(ctx)
        engine.execute(statement.text("run_1"))
        table = f"{pipeline.aws.database}.{pipeline.tables['staging']}"
        return engine.execute(f"SELECT {columns} FROM {table}").rows
    finally:
        engine.close()


def staged(tmp: Path, rows, plan: bool, monkeypatch) -> dict[str, tuple]:
    """id -> (parse_ok, age) of the staging table StagingFeatures writes from `rows`."""
    _source(tmp / "source.parquet", rows)
    if not plan:  # the statement as written: one GROUP BY over every copy
        monkeypatch.setattr(shims, "rewrite_min_dedup", lambda tree: None)
    return {r[0]: (r[1], r[2]) for r in run_staging(tmp, tmp / "source.parquet")}


@pytest.mark.parametrize("plan", [True, False], ids=["dedup plan", "as written"])
def test_the_parseable_copy_is_kept(tmp_path, monkeypatch, plan):
    rows = [(f"id{i:02d}", d) for i, (_, copies, _) in enumerate(CASES) for d in copies]
    rows.append((None, doc(70)))  # a NULL id is never staged
    got = staged(tmp_path, rows, plan, monkeypatch)
    want = {f"id{i:02d}": kept for i, (_, _, kept) in enumerate(CASES)}
    assert {CASES[int(k[2:])][0]: v for k, v in got.items()} == {CASES[int(k[2:])][0]: v for k, v in want.items()}


@pytest.mark.parametrize("plan", [True, False], ids=["dedup plan", "as written"])
def test_one_valid_and_one_malformed_copy_of_500_ids(tmp_path, monkeypatch, plan):
    """The issue's case: 500 ids, each a valid copy and the same text cut short. Every one is
    staged parseable, with its age (min(document) kept the cut copy of all 500)."""
    rows = [(f"p{i:03d}", d) for i in range(500) for d in (doc(20 + i % 60), cut(20 + i % 60))]
    rows += [(f"q{i:03d}", doc(30)) for i in range(100)]  # ids seen once, beside them
    got = staged(tmp_path, rows, plan, monkeypatch)
    assert len(got) == 600
    assert [k for k, (ok, _) in got.items() if not ok] == []
    assert all(got[f"p{i:03d}"] == (True, 20 + i % 60) for i in range(500))


# (source id column, source.id_type, the staging id's DuckDB type and values). Athena compares ids by
# type: HumanQA joins the staging ids with the predictions table, declared with `id <id_type>`.
ID_TYPES = [
    (pa.array([7, 8], pa.int64()), "string", "VARCHAR", ["7", "8"]),
    (pa.array([7, 8], pa.int32()), "bigint", "BIGINT", [7, 8]),
    (pa.array([7, 8], pa.int64()), "bigint", "BIGINT", [7, 8]),
    (pa.array(["7", "8"]), "string", "VARCHAR", ["7", "8"]),
]


@pytest.mark.parametrize("ids, id_type, duck_type, values", ID_TYPES)
def test_staging_ids_take_the_declared_id_type(tmp_path, ids, id_type, duck_type, values):
    pipeline, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _env())
    pipeline = variant(pipeline, source={"id_type": id_type})
    pq.write_table(pa.table({"person_id": ids, "profile_json": [doc(30), doc(31)]}), tmp_path / "source.parquet")
    rows = run_staging(tmp_path, tmp_path / "source.parquet", pipeline, "typeof(id), id")
    assert sorted(rows) == [(duck_type, v) for v in values]


def test_source_names_athena_reserves_are_quoted(tmp_path):
    """The source's database, table and columns are the user's and cannot be renamed: a reserved word
    among them is double-quoted in the query (stepkit's own names are refused instead, by validate)."""
    pipeline, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _env())
    pipeline = variant(pipeline, source={"database": "group", "table": "select", "id_column": "order",
                                         "document_column": "values"})
    ctx = Context(pipeline, root=str(tmp_path / "warehouse") + "/")
    (statement,) = next(s for s in pipeline.stages if s.name == "StagingFeatures").sql(ctx)
    assert 'FROM "group"."select"' in statement.sql and 'min("values")' in statement.sql
    assert 'WHERE "order" IS NOT NULL' in statement.sql
    pq.write_table(pa.table({"order": ["a", "b"], "values": [doc(30), cut(31)]}), tmp_path / "source.parquet")
    rows = run_staging(tmp_path, tmp_path / "source.parquet", pipeline)
    assert sorted(rows) == [("a", True, 30), ("b", False, None)]
