"""Statements sqlglot and DuckDB accept but Athena refuses: `validate` (compiler/sqlcheck.py) and the
local engine (engines/transpile.py) refuse them alike, with the same words."""
from __future__ import annotations

import pytest

from stepkit.compiler.sqlcheck import check
from stepkit.engines import QueryError
from stepkit.engines.duckdb import DuckDBEngine
from stepkit.spec.reserved import DDL, QUERY, reserved

LOC = "{wh}/t/"

# (statement, None when Athena runs it, else words of the refusal)
CASES = [
    # Queries and CTAS: Trino's grammar; reserved words need double quotes.
    ("SELECT 1 AS id, 2 AS order", "'order' is a reserved word in Athena queries; quote it as \"order\""),
    ("SELECT 1 AS id, 2 AS \"order\"", None),
    ("SELECT 1 AS \"group\", 2 AS table", "'table' is a reserved word in Athena queries"),
    ("SELECT 1 AS date, 2 AS user, 3 AS range", None),  # reserved in DDL only
    ("SELECT x.skip FROM (SELECT 1 AS skip) AS x", "'skip' is a reserved word"),  # Trino's list
    ("SELECT 1 AS id FROM (SELECT 1) AS values", "'values' is a reserved word"),
    ("CREATE TABLE db.t WITH (external_location = '{wh}/t/') AS SELECT 1 AS id, 2 AS cube", "'cube' is a reserved"),
    # DDL: Hive's grammar; its own, longer list, escaped in backticks.
    ("CREATE EXTERNAL TABLE db.t (id string, date string) STORED AS PARQUET LOCATION '{wh}/t/'",
     "'date' is a reserved word in Athena DDL; quote it as `date`"),
    ("CREATE EXTERNAL TABLE db.t (id string, `date` string) STORED AS PARQUET LOCATION '{wh}/t/'", None),
    ("CREATE EXTERNAL TABLE db.t (id string) PARTITIONED BY (partition int) STORED AS PARQUET LOCATION '{wh}/t/'",
     "'partition' is a reserved word in Athena DDL"),
    # CTAS partition columns: the SELECT's last, in the table properties' order.
    ("CREATE TABLE db.t WITH (external_location = '{wh}/t/', partitioned_by = ARRAY['p']) AS SELECT 1 AS p, 2 AS id",
     "HIVE_COLUMN_ORDER_MISMATCH: partition columns p must be the last columns of the SELECT list, in that order "
     "(it ends with id)"),
    ("CREATE TABLE db.t WITH (external_location = '{wh}/t/', partitioned_by = ARRAY['p', 'q']) AS "
     "SELECT 1 AS id, 2 AS q, 3 AS p", "partition columns p, q must be the last columns"),
    ("CREATE TABLE db.t WITH (external_location = '{wh}/t/', partitioned_by = ARRAY['p', 'q']) AS "
     "SELECT 1 AS id, 3 AS p, 2 AS q", None),
    ("CREATE TABLE db.t WITH (external_location = '{wh}/t/', partitioned_by = ARRAY['p']) AS "
     "SELECT 1 AS p, 2 AS id UNION ALL SELECT 3, 4", "partition columns p must be the last columns"),
    ("CREATE TABLE db.t WITH (external_location = '{wh}/t/', partitioned_by = ARRAY['nope']) AS SELECT 1 AS id",
     "column nope of the table properties is not in the SELECT list (id); partitioned_by names it"),
    ("CREATE TABLE db.t WITH (external_location = '{wh}/t/', bucketed_by = ARRAY['nope'], bucket_count = 2) AS "
     "SELECT 1 AS id", "column nope of the table properties is not in the SELECT list (id); bucketed_by names it"),
]


@pytest.mark.parametrize("sql, words", CASES)
def test_validate_and_the_local_engine_refuse_alike(tmp_path, sql, words):
    sql = sql.replace("{wh}", str(tmp_path / "wh"))
    verdict = check(sql)
    engine = DuckDBEngine(tmp_path / "wh", threads=1)
    try:
        if words is None:
            assert verdict is None
            engine.execute(sql)
            return
        assert verdict is not None and verdict.startswith("does not run on Athena: ") and words in verdict
        with pytest.raises(QueryError) as e:
            engine.execute(sql)
        assert str(e.value).endswith(verdict)
    finally:
        engine.close()


@pytest.mark.parametrize("word, kind", [
    ("order", "DDL and queries"), ("date", "DDL"), ("user", "DDL"), ("first", "queries"), ("json_table", "queries"),
    ("age", None), ("batch_id", None),
])
def test_reserved_words(word, kind):
    assert reserved(word) == reserved(word.upper()) == kind


def test_lists_are_upper_case_words():
    assert all(w.isupper() and w.replace("_", "").isalpha() for w in DDL | QUERY)
