"""CTAS properties, Athena's refusals, INSERT INTO, external tables and DROP on the local engine."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

from stepkit.engines import QueryError
from stepkit.engines.duckdb import DuckDBEngine
from stepkit.errors import DataError


@pytest.fixture
def wh(tmp_path):
    return tmp_path / "warehouse"


@pytest.fixture
def engine(wh):
    eng = DuckDBEngine(wh, threads=1)
    yield eng
    eng.close()


def ctas(table, loc, select, **props):
    with_ = ["format = 'PARQUET'", f"external_location = '{loc}'"]
    with_ += [f"{k} = {v}" for k, v in props.items()]
    return f"CREATE TABLE db.{table} WITH ({', '.join(with_)}) AS {select}"


def files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))


def parquet_codecs(folder):
    rows = duckdb.sql(f"SELECT DISTINCT compression FROM parquet_metadata('{folder}/**/*.parquet')").fetchall()
    return {r[0] for r in rows}


NUMBERS = "SELECT i AS id, CAST(i % 3 AS integer) AS part FROM UNNEST(sequence(0, 29)) AS t(i)"


@pytest.mark.parametrize("props, layout, codec", [
    ({"write_compression": "'SNAPPY'"}, ["part00001_0.parquet"], "SNAPPY"),
    ({"write_compression": "'ZSTD'"}, ["part00001_0.parquet"], "ZSTD"),
    ({"write_compression": "'GZIP'", "partitioned_by": "ARRAY['part']"},
     ["part=0/part00001_0.parquet", "part=1/part00001_0.parquet", "part=2/part00001_0.parquet"], "GZIP"),
    ({"bucketed_by": "ARRAY['id']", "bucket_count": "2"},
     ["00000_part00001_0.parquet", "00001_part00001_0.parquet"], "SNAPPY"),
], ids=["snappy", "zstd", "partitioned-gzip", "bucketed"])
def test_ctas_honours_its_properties(engine, wh, props, layout, codec):
    loc = wh / "tables" / "t" / "run1"
    r = engine.execute(ctas("t", f"{loc}/", NUMBERS, **props))
    assert (r.kind, r.rows_written, r.table) == ("ctas", 30, "db.t")
    assert files(loc) == layout
    assert parquet_codecs(loc) == {codec}
    assert engine.row_count("db", "t") == 30
    assert engine.table_location("db", "t") == f"{loc}/"
    # Read back with Athena's types and column order (partition column last).
    rows = engine.execute("SELECT id, part FROM db.t WHERE part = 2 ORDER BY id").rows
    assert rows[:3] == [(2, 2), (5, 2), (8, 2)] and len(rows) == 10


def test_bucket_files_hold_only_their_bucket(engine, wh):
    loc = wh / "b"
    engine.execute(ctas("b", f"{loc}/", NUMBERS, bucketed_by="ARRAY['id']", bucket_count="3"))
    ids = [set(duckdb.sql(f"SELECT id FROM '{loc}/{f}'").fetchnumpy()["id"].tolist()) for f in files(loc)]
    assert len(ids) == 3 and set().union(*ids) == set(range(30)) and sum(map(len, ids)) == 30


@pytest.mark.parametrize("select, props, message", [
    # Athena: at most 100 partition x bucket writers per statement.
    ("SELECT i AS id, i AS p FROM UNNEST(sequence(1, 101)) AS t(i)", {"partitioned_by": "ARRAY['p']"},
     "db.t: HIVE_TOO_MANY_OPEN_PARTITIONS: the statement writes 101 partitions"),
    ("SELECT i AS id FROM UNNEST(sequence(1, 5)) AS t(i)", {"bucketed_by": "ARRAY['id']", "bucket_count": "898"},
     "db.t: HIVE_TOO_MANY_OPEN_PARTITIONS: the statement writes 898 buckets"),
    ("SELECT i AS id, i % 30 AS p FROM UNNEST(sequence(1, 90)) AS t(i)",
     {"partitioned_by": "ARRAY['p']", "bucketed_by": "ARRAY['id']", "bucket_count": "4"},
     "120 partition x bucket combinations (30 x 4)"),
    ("SELECT i % 3 AS p, i AS id FROM UNNEST(sequence(1, 9)) AS t(i)", {"partitioned_by": "ARRAY['p']"},
     "HIVE_COLUMN_ORDER_MISMATCH: partition columns p must be the last columns"),
    ("SELECT 1 AS id", {"partitioned_by": "ARRAY['nope']"}, "column nope of the table properties is not in the SELECT"),
    ("SELECT 1 AS id", {"write_compression": "'LZ4'"}, "write_compression LZ4 is not one of"),
])
def test_refused_ctas_writes_nothing(engine, wh, select, props, message):
    loc = wh / "t"
    with pytest.raises(QueryError) as e:
        engine.execute(ctas("t", f"{loc}/", select, **props))
    assert message in str(e.value)
    assert files(loc) == [] and engine.table_location("db", "t") is None
    staging = wh / "_tmp"
    assert not staging.exists() or not any(staging.iterdir())  # a refused write's staging folder is gone


def test_ctas_refuses_a_non_empty_location(engine, wh):
    loc = wh / "t"
    engine.execute(ctas("t", f"{loc}/", "SELECT 1 AS id"))
    engine.execute("DROP TABLE db.t")
    with pytest.raises(QueryError, match=f"HIVE_PATH_ALREADY_EXISTS: .* already exists: {loc}/"):
        engine.execute(ctas("t", f"{loc}/", "SELECT 2 AS id"))


@pytest.mark.parametrize("location", ["s3://bucket/prefix/t/", "relative/t/"])
def test_ctas_needs_a_local_folder(engine, location):
    with pytest.raises(QueryError, match="the local engine reads and writes local folders"):
        engine.execute(ctas("t", location, "SELECT 1 AS id"))


def test_ctas_of_an_existing_table_is_refused(engine, wh):
    engine.execute(ctas("t", f"{wh}/a/", "SELECT 1 AS id"))
    with pytest.raises(QueryError, match="db.t: AlreadyExistsException"):
        engine.execute(ctas("t", f"{wh}/b/", "SELECT 1 AS id"))


def test_insert_into_adds_partitions(engine, wh):
    loc = wh / "p"
    parts = "SELECT i AS id, CAST(i AS integer) AS p FROM UNNEST(sequence({lo}, {hi})) AS t(i)"
    engine.execute(ctas("p", f"{loc}/", parts.format(lo=0, hi=99), partitioned_by="ARRAY['p']"))
    r = engine.execute("INSERT INTO db.p " + parts.format(lo=100, hi=149))
    assert (r.kind, r.rows_written, r.writers) == ("insert", 50, 50)
    assert engine.row_count("db", "p") == 150
    assert len({f.split("/")[0] for f in files(loc)}) == 150
    # A partition written twice keeps both statements' files (numbered per write).
    engine.execute("INSERT INTO db.p " + parts.format(lo=0, hi=0))
    assert files(loc)[:2] == ["p=0/part00001_0.parquet", "p=0/part00003_0.parquet"]
    assert engine.execute("SELECT count(*) FROM db.p WHERE p = 0").rows == [(2,)]


@pytest.fixture(params=["warehouse", "tmpfs"])
def table_root(request, wh, tmp_path):
    """Where the table lives: beside the engine's staging folder, or on another file system (a
    rename cannot cross it, the write's files are copied there)."""
    if request.param == "warehouse":
        yield wh / "tables"
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        yield Path(d)


def test_writes_land_in_place_on_any_file_system(engine, wh, table_root):
    loc = table_root / "m"
    parts = "SELECT i AS id, CAST(i % {n} AS integer) AS p FROM UNNEST(sequence({lo}, {hi})) AS t(i)"
    engine.execute(ctas("m", f"{loc}/", parts.format(n=3, lo=0, hi=29), partitioned_by="ARRAY['p']"))
    # New partitions (moved whole) and existing ones (files moved into them) in one statement.
    r = engine.execute("INSERT INTO db.m " + parts.format(n=5, lo=30, hi=39))
    assert (r.rows_written, r.writers) == (10, 5)
    assert files(loc) == [f"p={k}/part0000{w}_0.parquet" for k in range(5) for w in ((1, 2) if k < 3 else (2,))]
    assert engine.execute("SELECT p, count(*) FROM db.m GROUP BY 1 ORDER BY 1").rows == [
        (0, 12), (1, 12), (2, 12), (3, 2), (4, 2)]
    assert not any((wh / "_tmp").glob("*/*"))  # the staging folders are gone


@pytest.mark.parametrize("sql, message", [
    ("INSERT INTO db.p SELECT i, CAST(i AS integer) FROM UNNEST(sequence(200, 300)) AS t(i)",
     "db.p: HIVE_TOO_MANY_OPEN_PARTITIONS: the statement writes 101 partitions"),
    ("INSERT INTO db.p SELECT 1", "db.p: TYPE_MISMATCH: insert query has 1 columns, the table has 2"),
    ("INSERT INTO db.b SELECT 1", "db.b: NOT_SUPPORTED: INSERT INTO a bucketed table"),
    ("INSERT INTO db.missing SELECT 1", "db.missing: TABLE_NOT_FOUND"),
])
def test_insert_into_refusals(engine, wh, sql, message):
    engine.execute(ctas("p", f"{wh}/p/", "SELECT 1 AS id, 1 AS p", partitioned_by="ARRAY['p']"))
    engine.execute(ctas("b", f"{wh}/b/", "SELECT 1 AS id", bucketed_by="ARRAY['id']", bucket_count="2"))
    before = files(wh)
    with pytest.raises(QueryError) as e:
        engine.execute(sql)
    assert message in str(e.value)
    assert files(wh) == before


EXTERNAL = """CREATE EXTERNAL TABLE db.preds (
  id string,
  score double
)
PARTITIONED BY (batch_id int)
STORED AS PARQUET
LOCATION '{loc}'
TBLPROPERTIES ('projection.enabled' = 'true', 'projection.batch_id.type' = 'integer')"""


def test_external_table_over_a_hive_layout(engine, wh):
    loc = wh / "preds"
    r = engine.execute(EXTERNAL.format(loc=f"{loc}/"))
    assert (r.kind, r.table) == ("external", "db.preds")
    # Before any worker wrote: an empty table with the declared columns.
    empty = engine.execute("SELECT * FROM db.preds")
    assert (empty.columns, empty.rows) == (["id", "score", "batch_id"], [])
    for batch in (0, 7):  # as prediction workers do: one file per batch folder
        (loc / f"batch_id={batch}").mkdir(parents=True)
        duckdb.sql(f"COPY (SELECT 'p' || i AS id, i * 0.5 AS score FROM range(3) t(i)) "
                   f"TO '{loc}/batch_id={batch}/part.parquet' (FORMAT parquet)")
    assert engine.execute("SELECT batch_id, count(*), sum(score) FROM db.preds GROUP BY 1 ORDER BY 1").rows == [
        (0, 3, 1.5), (7, 3, 1.5)]
    assert engine.row_count("db", "preds") == 6
    with pytest.raises(QueryError, match="AlreadyExistsException"):
        engine.execute(EXTERNAL.format(loc=f"{loc}/"))
    engine.execute(EXTERNAL.format(loc=f"{loc}/").replace("CREATE EXTERNAL TABLE", "CREATE EXTERNAL TABLE IF NOT EXISTS"))


# Two workers' files of one external table (id string, score double): Athena reads Parquet
# columns by name, coerces each file's type to the table's, and gives NULL for a missing column.
FILE_PAIRS = {
    "same schema": ("'a' AS id, 1.5 AS score", "'b' AS id, 2.5 AS score", [("a", 1.5), ("b", 2.5)]),
    "columns in another order": ("'a' AS id, 1.5 AS score", "2.5 AS score, 'b' AS id", [("a", 1.5), ("b", 2.5)]),
    "integer file first": ("'a' AS id, 2 AS score", "'b' AS id, 2.7 AS score", [("a", 2.0), ("b", 2.7)]),
    "column missing": ("'a' AS id, 1.5 AS score", "'b' AS id", [("a", 1.5), ("b", None)]),
    "column missing first": ("'a' AS id", "'b' AS id, 2.5 AS score", [("a", None), ("b", 2.5)]),
    "extra column": ("'a' AS id, 1.5 AS score", "'b' AS id, 2.5 AS score, 'x' AS note", [("a", 1.5), ("b", 2.5)]),
}


@pytest.mark.parametrize("first, second, rows", FILE_PAIRS.values(), ids=FILE_PAIRS.keys())
def test_files_with_different_schemas_read_by_name(engine, wh, first, second, rows):
    loc = wh / "preds"
    engine.execute(EXTERNAL.format(loc=f"{loc}/"))
    for batch, select in enumerate((first, second)):
        (loc / f"batch_id={batch}").mkdir(parents=True)
        duckdb.sql(f"COPY (SELECT {select}) TO '{loc}/batch_id={batch}/part.parquet' (FORMAT parquet)")
    query = "SELECT id, score FROM db.preds ORDER BY id"
    assert engine.execute(query).rows == rows
    # A file replaced under its name (a retried worker) is read again, with its new schema.
    duckdb.sql(f"COPY (SELECT 'c' AS id, 7 AS score) TO '{loc}/batch_id=1/part.parquet' (FORMAT parquet)")
    assert engine.execute(query).rows == [rows[0], ("c", 7.0)]
    assert engine.row_count("db", "preds") == 2


def test_a_file_rewritten_in_place_is_read_anew(engine, wh):
    """The engine caches Parquet footers; a retried worker rewrites its file under the same name,
    here with the same size, so only the footer's statistics tell the two apart."""
    loc = wh / "preds"
    engine.execute(EXTERNAL.format(loc=f"{loc}/"))
    path = loc / "batch_id=0" / "part.parquet"
    path.parent.mkdir(parents=True)
    query = "SELECT count(*), min(score) FROM db.preds WHERE score > {0} + 5"
    sizes = []
    for shift in (0, 100):
        duckdb.sql(f"COPY (SELECT 'p' || i AS id, CAST(i + {shift} AS double) AS score FROM range(10) t(i)) "
                   f"TO '{path}' (FORMAT parquet, COMPRESSION uncompressed)")
        sizes.append(path.stat().st_size)
        assert engine.execute(query.format(shift)).rows == [(4, shift + 6.0)]
    assert sizes[0] == sizes[1]


def test_drop_forgets_the_table_and_keeps_files(engine, wh):
    engine.execute(ctas("t", f"{wh}/t/", "SELECT 1 AS id"))
    assert engine.execute("DROP TABLE db.t").table == "db.t"
    assert engine.table_location("db", "t") is None and files(wh / "t") == ["part00001_0.parquet"]
    engine.execute("DROP TABLE IF EXISTS db.t")
    with pytest.raises(QueryError, match="db.t: TABLE_NOT_FOUND"):
        engine.execute("DROP TABLE db.t")
    assert engine.drop_table("db", "t") is False


def test_catalog_survives_a_new_engine(engine, wh):
    engine.execute(ctas("t", f"{wh}/t/", NUMBERS, partitioned_by="ARRAY['part']"))
    engine.close()
    again = DuckDBEngine(wh)
    assert again.row_count("db", "t") == 30
    saved = json.loads((wh / "_catalog.json").read_text())
    assert saved["tables"]["db.t"]["partitioned_by"] == ["part"]
    again.close()


def test_source_table_registered_over_parquet(engine, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    duckdb.sql(f"COPY (SELECT 'a' || i AS pid, '{{}}' AS doc FROM range(5) t(i)) TO '{src}/x.parquet' (FORMAT parquet)")
    engine.register_table("raw", "people", str(src))
    assert engine.row_count("raw", "people") == 5
    engine.register_table("raw", "nothing", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="raw.nothing: no Parquet files under .* \\(0 rows\\)"):
        engine.execute("SELECT count(*) FROM raw.nothing")


# What writers leave beside the data; Athena skips every name that starts with `_` or `.`.
LEFTOVERS = {
    "torn temp file (killed worker)": ("batch_id=0/.tmp-3f2a-part.parquet", b"PAR1 torn: no footer"),
    "_SUCCESS marker": ("_SUCCESS", b""),
    "hidden folder of whole files": (".staging/batch_id=9/part.parquet", None),
    "_temporary folder": ("_temporary/0/batch_id=8/part.parquet", None),
    "marker inside a partition": ("batch_id=7/_committed_123", b"{}"),
}


@pytest.mark.parametrize("rel, content", LEFTOVERS.values(), ids=LEFTOVERS.keys())
def test_reads_skip_hidden_files_and_folders(engine, wh, rel, content):
    loc = wh / "preds"
    engine.execute(EXTERNAL.format(loc=f"{loc}/"))
    for batch in (0, 7):
        (loc / f"batch_id={batch}").mkdir(parents=True)
        duckdb.sql(f"COPY (SELECT 'p' || i AS id, i * 0.5 AS score FROM range(3) t(i)) "
                   f"TO '{loc}/batch_id={batch}/part.parquet' (FORMAT parquet)")
    query = "SELECT batch_id, count(*), sum(score) FROM db.preds GROUP BY 1 ORDER BY 1"
    before = engine.execute(query).rows
    path = loc / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:  # a complete, readable file: skipped all the same, its rows must not count
        duckdb.sql(f"COPY (SELECT 'x' AS id, 100.0 AS score) TO '{path}' (FORMAT parquet)")
    else:
        path.write_bytes(content)
    assert engine.execute(query).rows == before == [(0, 3, 1.5), (7, 3, 1.5)]
    assert engine.row_count("db", "preds") == 6
    # A CTAS reading the table, into a partitioned table holding the same kind of leftover.
    engine.execute(ctas("copy", f"{wh}/copy/", "SELECT id, score, batch_id FROM db.preds",
                        partitioned_by="ARRAY['batch_id']"))
    (wh / "copy" / "batch_id=0" / ".tmp-torn.parquet").write_bytes(b"PAR1")
    assert engine.execute(query.replace("db.preds", "db.copy")).rows == before


@pytest.mark.parametrize("limit, shown", [("64MB", "61.0 MiB"), ("1GB", "953.6 MiB"), (None, None)])
def test_memory_limit(wh, limit, shown):
    eng = DuckDBEngine(wh, memory_limit=limit)
    default = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert eng.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == (shown or default)
    eng.close()


def test_memory_limit_refused_in_one_line(wh):
    with pytest.raises(QueryError, match=r"^memory_limit 'lots': DuckDB refused it: .*") as e:
        DuckDBEngine(wh, memory_limit="lots")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("setting, value", [
    ("enable_progress_bar", False),      # DuckDB's bar would draw over stepkit's output lines
    ("preserve_insertion_order", False),
    ("integer_division", True),          # Trino's integer `/`
    ("parquet_metadata_cache", True),
])
def test_engine_connection_settings(engine, setting, value):
    assert engine.con.execute(f"SELECT current_setting('{setting}')").fetchone()[0] is value


def test_engine_threads_can_be_lent_and_given_back(wh):
    eng = DuckDBEngine(wh, threads=2)
    try:
        current = lambda: eng.con.execute("SELECT current_setting('threads')").fetchone()[0]  # noqa: E731
        eng.set_threads(1)
        assert current() == 1
        eng.set_threads(None)
        assert current() == 2  # what it was made with, not DuckDB's default
        # A container task starts while a Parallel branch's statement holds the connection.
        import threading

        busy = threading.Thread(target=lambda: eng.con.execute(
            "SELECT count(*) FROM range(200000000) t(x) WHERE x % 7 = 3").fetchall())
        busy.start()
        time.sleep(0.2)
        eng.set_threads(1)
        busy.join()
        assert current() == 1
    finally:
        eng.close()
