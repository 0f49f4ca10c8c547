"""Partition pruning in the local engine (stepkit/engines/pruning.py): a statement that wants some
partitions of a table binds the table's view over their files only, and gets the same rows."""
from __future__ import annotations

import duckdb
import pytest

from stepkit.engines import QueryError, pruning
from stepkit.engines.duckdb import DuckDBEngine
from stepkit.engines.transpile import parse

P = ("db", "p")  # partitioned by grp (integer) and tag (string)

# (query, what pruning.wanted finds for db.p)
WANTED = [
    ("SELECT * FROM db.p WHERE grp = 1", {"grp": {1}}),
    ("SELECT * FROM db.p WHERE 1 = grp AND id > 3", {"grp": {1}}),
    ("SELECT * FROM db.p WHERE (grp = 1) AND tag = 'b'", {"grp": {1}, "tag": {"b"}}),
    ("SELECT * FROM db.p WHERE grp IN (0, 2)", {"grp": {0, 2}}),
    ("SELECT * FROM db.p WHERE grp IN (0, 2) AND grp = 2", {"grp": {2}}),
    ("SELECT * FROM db.p x WHERE x.grp = 1", {"grp": {1}}),
    ("SELECT * FROM db.p WHERE p.grp = 1", {"grp": {1}}),
    ("SELECT x.id FROM db.p x JOIN db.q ON q.id = x.id WHERE x.grp = 1", {"grp": {1}}),
    ("WITH c AS (SELECT * FROM db.p WHERE grp = 2) SELECT * FROM c", {"grp": {2}}),
    ("SELECT id FROM db.p WHERE grp = 1 UNION ALL SELECT id FROM db.q", {"grp": {1}}),
    # Nothing to prune on, or pruning could change a row:
    ("SELECT * FROM db.p", {}),
    ("SELECT * FROM db.p WHERE grp = 1 OR id = 3", {}),
    ("SELECT * FROM db.p WHERE NOT grp = 1", {}),
    ("SELECT * FROM db.p WHERE grp NOT IN (1)", {}),
    ("SELECT * FROM db.p WHERE grp > 1", {}),
    ("SELECT * FROM db.p WHERE grp = 1.0", {}),
    ("SELECT * FROM db.p WHERE grp = id", {}),
    ("SELECT * FROM db.p WHERE grp IN (SELECT id FROM db.q)", {}),
    ("SELECT * FROM db.p WHERE id = 1", {}),
    ("SELECT a.id FROM db.p a JOIN db.p b ON a.id = b.id WHERE a.grp = 1", {}),  # read twice
    ("SELECT id FROM db.p WHERE grp = 1 UNION ALL SELECT id FROM db.p", {}),
    ("SELECT x.id FROM db.p x JOIN db.q ON q.id = x.id WHERE grp = 1", {}),  # unqualified beside a join
    ("SELECT x.id FROM db.p x JOIN db.q ON q.id = x.id WHERE q.grp = 1", {}),  # another table's column
    ("SELECT q.id FROM db.q LEFT JOIN db.p ON p.id = q.id WHERE p.grp = 1", {}),  # not the FROM
    ("SELECT * FROM (SELECT * FROM db.p) WHERE grp = 1", {}),  # the filter is outside its SELECT
    ("SELECT * FROM db.p, db.q WHERE grp = 1", {}),
    ("SELECT * FROM db.p TABLESAMPLE BERNOULLI (50) WHERE grp = 1", {}),
    ("SELECT * FROM db.p CROSS JOIN UNNEST(ARRAY[1]) AS t(x) WHERE grp = 1", {}),
    ("SELECT id FROM db.q WHERE EXISTS (SELECT 1 FROM db.p WHERE p.grp = 1 AND p.id = q.id)", {"grp": {1}}),
    ("SELECT * FROM db.p WHERE GRP = 1", {"grp": {1}}),
    ("SELECT * FROM db.p AS x(grp, id, tag) WHERE grp IN (0, 4)", {}),  # the alias renames the columns
]


@pytest.mark.parametrize("sql, expected", WANTED, ids=[w[0] for w in WANTED])
def test_what_a_statement_wants_of_the_partitions(sql, expected):
    assert pruning.wanted(parse(sql).query, P, ["grp", "tag"]) == expected


TYPES = {"grp": "INTEGER", "tag": "VARCHAR"}


@pytest.mark.parametrize("path, values, kept", [
    ("/t/grp=1/tag=a/f.parquet", {"grp": {1}}, True),
    ("/t/grp=2/tag=a/f.parquet", {"grp": {1}}, False),
    ("/t/grp=2/tag=b/f.parquet", {"grp": {2}, "tag": {"a"}}, False),
    ("/t/grp=2/tag=b/f.parquet", {"grp": {1, 2}, "tag": {"a", "b"}}, True),
    ("/t/grp=-3/tag=a/f.parquet", {"grp": {-3}}, True),
    ("/t/grp=01/tag=a/f.parquet", {"grp": {1}}, True),  # DuckDB casts 01 to 1
    ("/t/grp=02/tag=a/f.parquet", {"grp": {1}}, False),
    ("/t/grp=2/tag=a/f.parquet", {"grp": {1, "2"}}, True),  # `grp IN (1, '2')`: coerced, not pruned
    ("/t/grp=2/tag=a/f.parquet", {"tag": {1}}, True),
    ("/t/grp=1/tag=a%20b/f.parquet", {"tag": {"a b"}}, True),  # Hive escapes folder values; DuckDB reads them so
    ("/t/grp=1/tag=a%20b/f.parquet", {"tag": {"a%20b"}}, False),
    # Kept whatever is wanted: DuckDB would read these otherwise, or fail on them, as it does unpruned.
    ("/t/grp=+1/tag=a/f.parquet", {"grp": {2}}, True),  # not a plain integer
    ("/t/grp=\uff11/tag=a/f.parquet", {"grp": {2}}, True),  # a digit Python reads and DuckDB does not
    ("/t/grp=2147483648/tag=a/f.parquet", {"grp": {2}}, True),  # out of INTEGER's range
    ("/t/grp=__HIVE_DEFAULT_PARTITION__/tag=a/f.parquet", {"grp": {1}}, True),
    ("/t/grp=2/tag=%C3%28/f.parquet", {"grp": {1}}, True),  # not UTF-8 once unescaped
    ("/t/grp=2/tag=a=b/f.parquet", {"grp": {1}}, True),
    ("/t/grp=2/tag=a\\b/f.parquet", {"grp": {1}}, True),  # DuckDB splits paths on a backslash too
    ("/t/grp=2/f.parquet", {"grp": {1}}, True),  # not the table's levels
    ("/t/tag=a/grp=2/f.parquet", {"grp": {1}}, True),  # not in the table's order
    ("/t/GRP=2/tag=a/f.parquet", {"grp": {1}}, True),  # DuckDB: a partition mismatch
    ("/t/grp=2/tag=a/grp=2/f.parquet", {"grp": {1}}, True),
    ("/t/f.parquet", {"grp": {1}}, True),
])
def test_which_files_are_kept(path, values, kept):
    # Beside a file that is always kept (no partition folders), so "none can hold them, keep all" stays out.
    assert (path in pruning.kept([path, "/t/other.parquet"], "/t", ["grp", "tag"], values, TYPES)) is kept


def test_when_no_file_can_hold_the_rows_all_are_kept():
    paths = ["/t/grp=1/tag=a/f.parquet", "/t/grp=2/tag=a/f.parquet"]
    assert pruning.kept(paths, "/t", ["grp", "tag"], {"grp": {7}}, TYPES) == paths
    assert pruning.kept(paths, "/t", ["grp", "tag"], {"grp": {2}}, TYPES) == paths[1:]


def test_a_root_below_a_partition_folder_prunes_nothing():
    # DuckDB reads `grp` from the first `grp=` of the whole path: 1 for both files.
    paths = ["/d/grp=1/b/grp=1/tag=a/f.parquet", "/d/grp=1/b/grp=2/tag=a/f.parquet"]
    assert pruning.kept(paths, "/d/grp=1/b", ["grp", "tag"], {"grp": {1}}, TYPES) == paths


@pytest.fixture
def engine(tmp_path):
    eng = DuckDBEngine(tmp_path / "wh", threads=1)
    loc = tmp_path / "wh" / "p"
    eng.execute(f"CREATE TABLE db.p WITH (format = 'PARQUET', external_location = '{loc}/', "
                "partitioned_by = ARRAY['grp', 'tag']) AS SELECT i AS id, CAST(i % 3 AS integer) AS grp, "
                "CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b b' END AS tag FROM UNNEST(sequence(0, 59)) AS t(i)")
    eng.execute(f"CREATE TABLE db.q WITH (format = 'PARQUET', external_location = '{tmp_path}/wh/q/') AS "
                "SELECT i AS id, CAST(i % 4 AS integer) AS grp FROM UNNEST(sequence(0, 19)) AS t(i)")
    yield eng
    eng.close()


# Each query through the engine gives the rows DuckDB gives reading every file of the table. Not
# those DuckDB refuses too (a double for an integer, an ambiguous column) nor a random sample.
NOT_RUN = ("grp = 1.0", "x.id WHERE grp", "db.p, db.q", "TABLESAMPLE")
SAME_ROWS = [sql.replace("SELECT *", "SELECT id, grp, tag") for sql, _ in WANTED
             if not any(n in sql for n in NOT_RUN)] + [
    "SELECT id FROM db.p WHERE tag = 'b b' AND grp = 0",
    "SELECT count(*) FROM db.p WHERE grp = 7",  # no folder matches: 0 rows, not an error
    "SELECT id FROM db.p WHERE grp IN (1, '2')",  # DuckDB coerces the string
]


@pytest.mark.parametrize("sql", SAME_ROWS)
def test_pruned_reads_give_the_rows_of_a_full_read(engine, tmp_path, sql):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA db")
    con.execute(f"CREATE VIEW db.p AS SELECT * FROM read_parquet('{tmp_path}/wh/p/**/*.parquet', "
                "hive_partitioning = true, hive_types = {'grp': 'INTEGER'})")
    con.execute(f"CREATE VIEW db.q AS SELECT * FROM '{tmp_path}/wh/q/*.parquet'")
    duck = parse(sql).duckdb_sql()
    assert sorted(engine.execute(sql).rows) == sorted(con.execute(duck).fetchall())


def _view_files(engine, name):
    body = engine.con.execute(f"SELECT sql FROM duckdb_views() WHERE view_name = '{name}'").fetchone()[0]
    return sorted({p.split("/wh/p/")[1].rsplit("/", 1)[0] for p in body.split("'") if "/wh/p/" in p})


def test_the_view_lists_only_the_wanted_partitions_files(engine):
    engine.execute("SELECT id FROM db.p WHERE grp = 1 AND tag = 'b b'")
    assert _view_files(engine, "p") == ["grp=1/tag=b%20b"]  # DuckDB escapes folder values as Hive does
    engine.execute("SELECT id FROM db.p WHERE grp IN (0, 2)")
    assert _view_files(engine, "p") == ["grp=0/tag=a", "grp=0/tag=b%20b", "grp=2/tag=a", "grp=2/tag=b%20b"]
    # The next statement that wants every partition gets a view over every file again.
    engine.execute("SELECT id FROM db.p")
    assert len(_view_files(engine, "p")) == 6


def test_a_ctas_over_one_partition_writes_its_rows(engine, tmp_path):
    r = engine.execute(f"CREATE TABLE db.one WITH (format = 'PARQUET', external_location = '{tmp_path}/wh/one/', "
                       "partitioned_by = ARRAY['tag']) AS SELECT id, tag FROM db.p WHERE grp = 2")
    assert r.rows_written == 20
    assert engine.execute("SELECT count(*), min(id % 3), max(id % 3) FROM db.one").rows == [(20, 2, 2)]


def _external(engine, name, loc):
    engine.execute(f"CREATE EXTERNAL TABLE db.{name} (id int, extra string) PARTITIONED BY (grp int) "
                   f"STORED AS PARQUET LOCATION '{loc}/'")


def _write(path, select):
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.sql(f"COPY ({select}) TO '{path}' (FORMAT parquet)")


def _full_read(loc, sql):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA db")
    con.execute(f"CREATE VIEW db.t AS SELECT * FROM read_parquet('{loc}/**/*.parquet', hive_partitioning = true, "
                "hive_types = {'grp': 'INTEGER'}, union_by_name = true)")
    return sorted(con.execute(sql).fetchall())


def test_files_of_other_schemas_are_read_as_without_pruning(engine, tmp_path):
    # The one file of grp=1 has no `extra`: read alone, it would bind no such column.
    loc = tmp_path / "evolved"
    _write(loc / "grp=1" / "f.parquet", "SELECT 1 AS id")
    _write(loc / "grp=2" / "f.parquet", "SELECT 2 AS id, 'x' AS extra")
    _external(engine, "t", loc)
    sql = "SELECT id, extra, grp FROM db.t WHERE grp = 1"
    assert sorted(engine.execute(sql).rows) == _full_read(loc, sql) == [(1, None, 1)]


def test_a_root_inside_a_partition_like_folder_is_read_as_without_pruning(engine, tmp_path):
    loc = tmp_path / "grp=1" / "b"  # DuckDB takes grp from the first `grp=` of the path: 1 for both
    _write(loc / "grp=1" / "f.parquet", "SELECT 1 AS id, 'a' AS extra")
    _write(loc / "grp=2" / "f.parquet", "SELECT 2 AS id, 'b' AS extra")
    _external(engine, "t", loc)
    sql = "SELECT id, grp FROM db.t WHERE grp = 1"
    assert sorted(engine.execute(sql).rows) == _full_read(loc, sql) == [(1, 1), (2, 1)]


def test_a_folder_value_duckdb_cannot_read_fails_the_pruned_read_too(engine, tmp_path):
    loc = tmp_path / "odd"
    _write(loc / "grp=1" / "f.parquet", "SELECT 1 AS id, 'a' AS extra")
    _write(loc / "grp=\uff12" / "f.parquet", "SELECT 2 AS id, 'b' AS extra")  # a full-width 2
    _external(engine, "t", loc)
    with pytest.raises(duckdb.Error):
        _full_read(loc, "SELECT id FROM db.t WHERE grp = 1")
    with pytest.raises(QueryError, match="failed in DuckDB"):
        engine.execute("SELECT id FROM db.t WHERE grp = 1")
