"""The min() dedup plan (stepkit/engines/dedup.py): which queries it rewrites, and the same rows either way."""
from __future__ import annotations

import duckdb
import pytest

from stepkit.engines.duckdb import DuckDBEngine
from stepkit.engines.shims import rewrite
from stepkit.engines.transpile import parse

# Ids: 'a' once, 'b' twice (one NULL doc), 'c' three times, 'd' once with a NULL doc, two NULL ids.
ROWS = [("a", "7", 1), ("b", None, 2), ("b", "5", 3), ("c", "9", 4), ("c", "2", 5), ("c", "4", 6),
        ("d", None, 7), (None, "0", 8), (None, "1", 9)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    wh = tmp_path_factory.mktemp("warehouse")
    values = ", ".join(f"({_v(k)}, {_v(d)}, {n})" for k, d, n in ROWS)
    duckdb.sql(f"COPY (SELECT * FROM (VALUES {values}) AS t(k, doc, n)) TO '{wh}/src.parquet' (FORMAT parquet)")
    eng = DuckDBEngine(wh / "w", threads=1)
    eng.register_table("raw", "t", str(wh / "src.parquet"))
    yield eng
    eng.close()


def _v(x):
    return "NULL" if x is None else f"'{x}'"


def _wrap(select: str) -> str:
    return f"WITH d AS ({select}) SELECT * FROM d ORDER BY 1 NULLS LAST, 2 NULLS LAST"


CASES = [
    # (inner SELECT, rewritten?, rows of the whole query)
    ("SELECT k AS id, min(doc) AS doc FROM raw.t WHERE k IS NOT NULL GROUP BY k", True,
     [("a", "7"), ("b", "5"), ("c", "2"), ("d", None)]),
    ("SELECT k, min(doc) AS doc, min(n) AS n FROM raw.t WHERE n > 1 AND k IS NOT NULL GROUP BY k", True,
     [("b", "5", 2), ("c", "2", 4), ("d", None, 7)]),
    ("SELECT t.k, min(t.doc) AS doc FROM raw.t AS t WHERE t.k IS NOT NULL GROUP BY t.k", True,
     [("a", "7"), ("b", "5"), ("c", "2"), ("d", None)]),
    # NULL keys kept: no NOT NULL guard, so the plan stays (NULL keys match neither join).
    ("SELECT k, min(doc) AS doc FROM raw.t GROUP BY k", False,
     [("a", "7"), ("b", "5"), ("c", "2"), ("d", None), (None, "0")]),
    ("SELECT k, max(doc) AS doc FROM raw.t WHERE k IS NOT NULL GROUP BY k", False,
     [("a", "7"), ("b", "5"), ("c", "9"), ("d", None)]),
    ("SELECT k, min(doc) AS doc FROM raw.t WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1", False,
     [("b", "5"), ("c", "2")]),
    ("SELECT k, min(doc) AS doc, count(*) AS c FROM raw.t WHERE k IS NOT NULL GROUP BY k", False,
     [("a", "7", 1), ("b", "5", 2), ("c", "2", 3), ("d", None, 1)]),
    ("SELECT k, min(lower(doc)) AS doc FROM raw.t WHERE k IS NOT NULL GROUP BY k", False,
     [("a", "7"), ("b", "5"), ("c", "2"), ("d", None)]),
    # Preferring some copies (StagingFeatures prefers those that parse): the filtered min, else the min.
    ("SELECT k, coalesce(min(doc) FILTER (WHERE doc > '3'), min(doc)) AS doc FROM raw.t WHERE k IS NOT NULL "
     "GROUP BY k", True, [("a", "7"), ("b", "5"), ("c", "4"), ("d", None)]),
    ("SELECT k, coalesce(min(doc) FILTER (WHERE doc > '8'), min(doc)) AS doc FROM raw.t WHERE k IS NOT NULL "
     "GROUP BY k", True, [("a", "7"), ("b", "5"), ("c", "9"), ("d", None)]),
    ("SELECT k, coalesce(min(doc) FILTER (WHERE doc > '3'), min(n)) AS doc FROM raw.t WHERE k IS NOT NULL "
     "GROUP BY k", False, None),  # not one column: a key seen once may not give its doc
    ("SELECT k, coalesce(min(doc), min(doc) FILTER (WHERE doc > '3')) AS doc FROM raw.t WHERE k IS NOT NULL "
     "GROUP BY k", False, [("a", "7"), ("b", "5"), ("c", "2"), ("d", None)]),
    ("SELECT k, min(doc) FILTER (WHERE doc > '3') AS doc FROM raw.t WHERE k IS NOT NULL GROUP BY k", False,
     [("a", "7"), ("b", "5"), ("c", "4"), ("d", None)]),
]


@pytest.mark.parametrize("select, rewritten, rows", CASES)
def test_min_dedup_plan(engine, select, rewritten, rows):
    sql = _wrap(select)
    duck = rewrite(parse(sql).query).sql(dialect="duckdb")
    assert ("ANTI JOIN" in duck) == rewritten
    if rows is not None:
        assert engine.execute(sql).rows == rows


DEDUP = "SELECT k, min(doc) AS doc FROM {src} WHERE k IS NOT NULL GROUP BY k"
STATEMENTS = [
    # (whole statement, repeated keys found once in a MATERIALIZED CTE (how many), rows)
    (f"SELECT * FROM ({DEDUP.format(src='raw.t')}) AS d ORDER BY 1", 0,  # a subquery: inlined twice
     [("a", "7"), ("b", "5"), ("c", "2"), ("d", None)]),
    (f"WITH s AS (SELECT * FROM raw.t WHERE n > 2), d AS ({DEDUP.format(src='s')}) SELECT * FROM d ORDER BY 1", 1,
     [("b", "5"), ("c", "2"), ("d", None)]),
    (f"WITH a AS ({DEDUP.format(src='raw.t')}), b AS (SELECT k, min(n) AS n FROM raw.t WHERE k IS NOT NULL "
     "GROUP BY k) SELECT a.k, a.doc, b.n FROM a JOIN b ON a.k = b.k ORDER BY 1", 2,
     [("a", "7", 1), ("b", "5", 2), ("c", "2", 4), ("d", None, 7)]),
    (f"WITH __sk_dups AS (SELECT 'c' AS k), d AS ({DEDUP.format(src='raw.t')}) "
     "SELECT d.* FROM d JOIN __sk_dups USING (k)", 1, [("c", "2")]),
]


@pytest.mark.parametrize("sql, shared, rows", STATEMENTS)
def test_repeated_keys_found_once_per_statement_cte(engine, sql, shared, rows):
    duck = rewrite(parse(sql).query).sql(dialect="duckdb")
    assert "ANTI JOIN" in duck and duck.count("AS MATERIALIZED") == shared
    assert engine.execute(sql).rows == rows
