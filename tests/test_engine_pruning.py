"""Partition pruning in the local engine (stepkit/engines/pruning.py): a statement that wants some
partitions of a table binds the table's view over their files only, and gets the same rows."""
from __future__ import annotations

import duckdb
import pytest

from stepkit.engines import pruning
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
]


@pytest.mark.parametrize("sql, expected", WANTED, ids=[w[0] for w in WANTED])
def test_what_a_statement_wants_of_the_partitions(sql, expected):
    assert pruning.wanted(parse(sql).query, P, ["grp", "tag"]) == expected


@pytest.mark.parametrize("path, values, types, kept", [
    ("/t/grp=1/f.parquet", {"grp": {1}}, {"grp": "INTEGER"}, True),
    ("/t/grp=2/f.parquet", {"grp": {1}}, {"grp": "INTEGER"}, False),
    ("/t/grp=01/f.parquet", {"grp": {1}}, {"grp": "BIGINT"}, True),  # read as the column's type
    ("/t/grp=2/tag=b/f.parquet", {"grp": {2}, "tag": {"a"}}, {"grp": "INTEGER", "tag": "VARCHAR"}, False),
    ("/t/tag=a%20b/f.parquet", {"tag": {"a b"}}, {"tag": "VARCHAR"}, True),  # Hive escapes folder values
    ("/t/tag=a%20b/f.parquet", {"tag": {"a%20b"}}, {"tag": "VARCHAR"}, True),  # or a writer did not
    ("/t/tag=a%20b/f.parquet", {"tag": {"a"}}, {"tag": "VARCHAR"}, False),
    ("/t/GRP=2/f.parquet", {"grp": {1}}, {"grp": "INTEGER"}, False),
    ("/t/grp=__HIVE_DEFAULT_PARTITION__/f.parquet", {"grp": {1}}, {"grp": "INTEGER"}, True),  # cannot tell
    ("/t/grp=2/f.parquet", {"grp": {"2"}}, {"grp": "INTEGER"}, True),  # a string for an integer: no pruning
    ("/t/day=2/f.parquet", {"day": {2}}, {"day": "DATE"}, True),  # a type pruning does not read
    ("/t/f.parquet", {"grp": {1}}, {"grp": "INTEGER"}, True),  # no partition folder
])
def test_which_files_are_kept(path, values, types, kept):
    assert pruning.keeps(path, "/t", values, types) is kept


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
