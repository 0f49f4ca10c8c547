"""Athena (Trino) semantics on the local DuckDB engine: expression in, Athena's value out."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from stepkit.engines import Engine, QueryError
from stepkit.engines.duckdb import DuckDBEngine
from stepkit.engines.transpile import parse


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = DuckDBEngine(tmp_path_factory.mktemp("warehouse"), threads=1)
    yield eng
    eng.close()


DOC = '{"a": {"b": 1}, "arr": [1, 2], "s": "x", "n": 4.7, "i": 5, "t": true, "z": null, "brace": "{x", "q": "q\\"uote"}'

CASES = [
    # json_extract_scalar: NULL for objects, arrays, null, absent paths and malformed documents
    (f"json_extract_scalar('{DOC}', '$.a')", None),
    (f"json_extract_scalar('{DOC}', '$.arr')", None),
    (f"json_extract_scalar('{DOC}', '$.z')", None),
    (f"json_extract_scalar('{DOC}', '$.missing')", None),
    (f"json_extract_scalar('{DOC}', '$.a.b')", "1"),
    (f"json_extract_scalar('{DOC}', '$.s')", "x"),
    (f"json_extract_scalar('{DOC}', '$.n')", "4.7"),
    (f"json_extract_scalar('{DOC}', '$.t')", "true"),
    (f"json_extract_scalar('{DOC}', '$.brace')", "{x"),  # a string that looks like an object is a scalar
    (f"json_extract_scalar('{DOC}', '$.q')", 'q"uote'),
    (f"json_extract_scalar('{DOC}', '$.arr[1]')", "2"),
    ("json_extract_scalar('{\"a\": 1', '$.a')", None),  # malformed: NULL, not an error
    ("json_extract_scalar('not json', '$.a')", None),
    # try(json_parse(...)): NULL on malformed
    ("try(json_parse('{bad')) IS NULL", True),
    ("try(json_parse('{\"a\": 1}')) IS NULL", False),
    # try_cast to integer: Integer.parseInt rules, no rounding
    ("try_cast('4.7' AS integer)", None),
    ("try_cast('5' AS integer)", 5),
    ("try_cast('abc' AS integer)", None),
    ("try_cast('-12' AS integer)", -12),
    ("try_cast('+3' AS integer)", 3),
    ("try_cast(' 5' AS integer)", None),
    ("try_cast('1e2' AS integer)", None),
    ("try_cast('99999999999' AS integer)", None),  # overflows int
    ("try_cast('99999999999' AS bigint)", 99999999999),
    ("try_cast('4.7' AS bigint)", None),
    ("try_cast(4.7e0 AS integer)", 5),  # a double is rounded, as Trino does
    ("try_cast(CAST(NULL AS varchar) AS integer)", None),
    # try_cast to boolean: t/f/1/0/true/false, any case; nothing else
    ("try_cast('true' AS boolean)", True),
    ("try_cast('T' AS boolean)", True),
    ("try_cast('1' AS boolean)", True),
    ("try_cast('FALSE' AS boolean)", False),
    ("try_cast('f' AS boolean)", False),
    ("try_cast('yes' AS boolean)", None),
    ("try_cast('y' AS boolean)", None),
    ("try_cast(' true' AS boolean)", None),
    # try_cast to double
    ("try_cast('4.7' AS double)", 4.7),
    ("try_cast('abc' AS double)", None),
    # hash: non-negative after the mask, NULL in -> NULL out
    ("bitwise_and(from_big_endian_64(xxhash64(to_utf8('abc'))), 9223372036854775807) >= 0", True),
    ("from_big_endian_64(xxhash64(to_utf8(CAST(NULL AS varchar))))", None),
    ("from_big_endian_64(xxhash64(to_utf8('abc'))) = from_big_endian_64(xxhash64(to_utf8('abd')))", False),
    # integer arithmetic of Trino: truncating division, remainder with the dividend's sign
    ("7 / 2", 3),
    ("-7 / 2", -3),
    ("CAST(897 AS bigint) % 898 / 100", 8),
    ("7e0 / 2", 3.5),
    ("CAST(7 AS bigint) % 3", 1),
    ("-7 % 3", -1),
    # string functions
    ("concat('a', 'b')", "ab"),
    ("concat('a', CAST(NULL AS varchar))", None),
    ("lower('AbC')", "abc"),
    ("coalesce(NULL, 2)", 2),
]


@pytest.mark.parametrize("expression, expected", CASES, ids=[c[0][:60] for c in CASES])
def test_athena_semantics(engine, expression, expected):
    (value,) = engine.execute(f"SELECT {expression} AS v").rows[0]
    assert value == expected


def test_engine_satisfies_the_interface(engine):
    assert isinstance(engine, Engine)


ROWS = [
    ("r1", '{"p": {"age": 41, "h": true}, "c": "Ios"}', 41, True, "ios"),
    ("r2", '{"p": {"age": "42"}, "c": null}', 42, None, None),
    ("r3", '{"p": {"age": 4.7, "h": "yes"}, "c": {"x": 1}}', None, None, None),
    ("r4", '{"p": {"age": 43', None, None, None),  # truncated document
    ("r5", '[1, 2]', None, None, None),
]


@pytest.mark.parametrize("join", [False, True], ids=["one-source", "with-join"])
def test_many_paths_over_one_document_read_it_once(engine, join):
    values = ", ".join(f"('{i}', '{d}')" for i, d, *_ in ROWS)
    source = f"(VALUES {values}) AS t(id, doc)"
    if join:
        source += " JOIN (VALUES ('r1'), ('r2'), ('r3'), ('r4'), ('r5')) AS k(id2) ON k.id2 = t.id"
    sql = (
        "SELECT id, try_cast(json_extract_scalar(doc, '$.p.age') AS integer) AS age, "
        "try_cast(json_extract_scalar(doc, '$.p.h') AS boolean) AS h, "
        f"lower(json_extract_scalar(doc, '$.c')) AS c FROM {source} ORDER BY id"
    )
    # One list extraction serves the three paths (DuckDB parses a document once per call). With a
    # join the identical list call stays inline, and DuckDB's common-subexpression pass runs it once.
    calls = re.findall(r"json_extract\([^\]]*\]\)", parse(sql).duckdb_sql().lower())
    assert len(set(calls)) == 1 and (join or len(calls) == 1)
    assert "'$.p.age', '$.p.h', '$.c'" in calls[0]
    assert engine.execute(sql).rows == [r[:1] + r[2:] for r in ROWS]


def test_hash_spreads_ids_evenly(engine):
    sql = (
        "SELECT count(*) FROM (SELECT bitwise_and(from_big_endian_64(xxhash64(to_utf8(concat('id', "
        "CAST(i AS varchar))))), 9223372036854775807) % 10 AS b FROM UNNEST(sequence(1, 20000)) AS t(i)) "
        "GROUP BY b"
    )
    counts = [r[0] for r in engine.execute(sql).rows]
    assert len(counts) == 10 and min(counts) > 1800 and max(counts) < 2200


@pytest.mark.parametrize("sql, message", [
    ("SELEC 1", "does not parse as Athena SQL"),
    ("SELECT 1; SELECT 2", "holds 2 statements"),
    ("SELECT * FROM nowhere.t", "nowhere.t: TABLE_NOT_FOUND"),
    ("SELECT no_such_function(1)", "SELECT failed in DuckDB"),
    ("SELECT 'unterminated", "does not parse as Athena SQL"),
    ("VACUUM db.t", "the local engine runs CREATE TABLE AS"),
])
def test_bad_statements_are_one_clear_error(engine, sql, message):
    with pytest.raises(QueryError) as e:
        engine.execute(sql)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_hash_is_the_same_in_another_process(engine, tmp_path):
    # Sample and batch membership must not change between runs: no per-process seed.
    sql = "SELECT from_big_endian_64(xxhash64(to_utf8('p000000001batch'))) AS h"
    code = ("import sys; from stepkit.engines.duckdb import DuckDBEngine; "
            f"print(DuckDBEngine(sys.argv[1]).execute({sql!r}).rows[0][0])")
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert int(other.stdout) == engine.execute(sql).rows[0][0]


@pytest.mark.parametrize("sql, expected", [
    ("SELECT json_extract_scalar(doc, '$.c') AS c, count(*) FROM {src} "
     "GROUP BY json_extract_scalar(doc, '$.c') ORDER BY 1 NULLS LAST", [("Ios", 1), (None, 4)]),
    ("SELECT id FROM {src} WHERE try_cast(json_extract_scalar(doc, '$.p.age') AS integer) > 41", [("r2",)]),
    ("SELECT count(*) FROM {src} WHERE try(json_parse(doc)) IS NULL", [(1,)]),
    ("SELECT max(json_extract_scalar(s.doc, '$.p.age')) FROM (SELECT * FROM {src}) AS s", [("42",)]),
], ids=["group-by", "where", "parse-filter", "aggregate-over-aliased-subquery"])
def test_json_extraction_in_other_clauses(engine, sql, expected):
    values = ", ".join(f"('{i}', '{d}')" for i, d, *_ in ROWS)
    assert engine.execute(sql.format(src=f"(VALUES {values}) AS t(id, doc)")).rows == expected
