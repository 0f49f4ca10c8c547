"""StagingFeatures through the local engine vs the engine-only floor, measured in the same run.

- engine: the compiled Athena CTAS (pipelines/predict_age.yaml, local root) given to
  DuckDBEngine.execute: parse, transpile + shims, CTAS properties, Parquet written under the
  table's location (9 batch-group partitions, snappy), catalog updated.
- floor: bare DuckDB running a hand-written query that does the same work on the same Parquet
  source into the same partitioned Parquet: dedupe by id, validate each document once, extract
  all 22 paths with one list call, the same typing/range rules and id hashes. Its dedup is the
  engine's plan (dedup.py: of an id's copies, one that parses, then the smallest text), so the
  ratio measures the engine's overhead, not the plan.

Both outputs are compared row for row before any figure is printed. Runs alternate
(floor, engine, floor, engine, ...) so load from other processes hits both alike; the ratio is
of the medians (target <= 1.3).

    .venv/bin/python benchmarks/engine_staging.py [--rows 1000000] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepkit.ir.context import Context  # noqa: E402
from stepkit.engines.duckdb import DuckDBEngine  # noqa: E402
from stepkit.compiler.load import load_pipeline  # noqa: E402

from stepkit.local.source import PLACEHOLDERS  # noqa: E402

# The placeholders a local run compiles with (valid ids: the spec checks their shape).
ENV = {**PLACEHOLDERS, "S3_BUCKET": "bench-bucket"}


def make_source(path: Path, rows: int) -> None:
    """rows JSON documents (~600 bytes) with the mess real data has: 1% duplicated ids, 0.5%
    malformed, 1% age as text, 1% age as a decimal, 1% an object where a number belongs."""
    rng = np.random.default_rng(7)
    n = rows
    cols = {
        "i": np.arange(n), "kind": rng.integers(0, 100, n), "dup": rng.integers(0, n, n),
        "age": rng.integers(13, 90, n), "yfj": rng.uniform(0, 50, n).round(2), "ten": rng.uniform(0, 30, n).round(2),
        "nj": rng.integers(0, 15, n), "sen": rng.integers(0, 7, n), "edu": rng.integers(0, 6, n),
        "gy": rng.integers(1950, 2025, n), "deg": rng.integers(0, 4, n), "ch": rng.integers(0, 6, n),
        "ms": rng.integers(0, 4, n), "ho": rng.integers(0, 2, n), "hs": rng.integers(1, 8, n),
        "inc": rng.uniform(0, 300000, n).round(0), "cc": rng.integers(0, 10, n), "chy": rng.uniform(0, 40, n).round(1),
        "ra": rng.integers(0, 2, n), "aa": rng.uniform(0, 20, n).round(1), "ppw": rng.uniform(0, 50, n).round(1),
        "ns": rng.uniform(0, 1, n).round(3), "er": rng.uniform(0, 1, n).round(3), "dev": rng.integers(0, 4, n),
        "eda": rng.uniform(0, 25, n).round(1),
    }
    con = duckdb.connect()
    con.register("src", pa.table(cols))
    doc = """'{"person": {"age": ' || CASE WHEN kind = 1 THEN '"' || age || '"' WHEN kind = 2 THEN age || '.7'
               WHEN kind < 50 THEN age::VARCHAR ELSE 'null' END ||
     '}, "employment": {"years_since_first_job": ' || yfj || ', "tenure_years": ' || ten || ', "num_jobs": ' || nj ||
     ', "seniority": "' || ['intern','junior','mid','Senior','lead','executive','ceo'][sen + 1] ||
     '"}, "education": {"level": "' || ['none','high_school','bachelor','master','phd','unknown'][edu + 1] ||
     '", "graduation_year": ' || gy || ', "degrees": ' || deg || '}, "family": {"children": ' || ch ||
     ', "marital_status": "' || ['single','married','divorced','widowed'][ms + 1] ||
     '"}, "household": {"homeowner": ' || CASE WHEN ho = 1 THEN 'true' ELSE 'false' END || ', "size": ' || hs ||
     '}, "finance": {"income_usd": ' || inc || ', "credit_cards": ' || cc || ', "credit_history_years": ' || chy ||
     ', "retirement_account": ' || CASE WHEN ra = 1 THEN 'true' ELSE 'false' END || '}, "account": {"age_years": ' || aa ||
     '}, "activity": {"posts_per_week": ' || ppw || ', "night_share": ' || ns || ', "emoji_rate": ' || er ||
     '}, "device": {"type": "' || ['ios','android','desktop','tablet'][dev + 1] ||
     '"}, "contact": {"email_domain_age_years": ' || CASE WHEN kind = 3 THEN '{"v": 1}' ELSE eda::VARCHAR END || '}}'"""
    doc = f"CASE WHEN kind = 4 AND i % 2 = 0 THEN '{{\"person\": {{\"age\": ' || age ELSE {doc} END"
    ids = "'p' || lpad(CASE WHEN kind = 5 THEN dup ELSE i END::VARCHAR, 9, '0')"
    con.execute(f"COPY (SELECT {ids} AS person_id, {doc} AS profile_json FROM src) TO '{path}' (FORMAT parquet)")


def _clean(f, col: str) -> str:
    if f.type == "category":
        cats = ", ".join(f"'{c.lower()}'" for c in f.categories)
        return f"CASE WHEN {col} IN ({cats}) OR {col} IS NULL THEN {col} ELSE 'other' END"
    if f.type != "boolean" and f.min is not None and f.max is not None:
        return f"CASE WHEN {col} BETWEEN {f.min:g} AND {f.max:g} THEN {col} END"
    return col


def floor_sql(p, source: str) -> str:
    """The staging work written by hand for DuckDB."""
    fields = list(p.features) + [p.target]
    paths = ", ".join(f"'{f.json_path}'" for f in fields)
    typed = []
    for k, f in enumerate(fields, start=1):
        v = f"v[{k}]"
        # Athena's json_extract_scalar: strings unquoted, NULL for null, objects and arrays.
        text = (f"CASE WHEN left({v}::VARCHAR, 1) = '\"' THEN json_extract_string({v}, '$') "
                f"WHEN left({v}::VARCHAR, 1) IN ('{{', '[') OR {v}::VARCHAR = 'null' THEN NULL ELSE {v}::VARCHAR END")
        if f.type == "category":
            typed.append(f"lower({text}) AS {f.name}")
        elif f.type == "boolean":
            typed.append(f"CASE WHEN lower({text}) IN ('true','t','1') THEN true "
                         f"WHEN lower({text}) IN ('false','f','0') THEN false END AS {f.name}")
        elif f.type == "integer":
            typed.append(f"CASE WHEN regexp_full_match({text}, '[+-]?[0-9]+') THEN TRY_CAST({text} AS INTEGER) END AS {f.name}")
        else:
            typed.append(f"TRY_CAST({text} AS DOUBLE) AS {f.name}")
    hash_ = "(CAST(hash(id || '{salt}') AS HUGEINT) - 9223372036854775808)::BIGINT & 9223372036854775807"
    batches = p.batching.batches
    clean = ",\n  ".join(f"{_clean(f, f.name)} AS {f.name}" for f in fields)
    return f"""
WITH dups AS (
  SELECT person_id AS k FROM read_parquet('{source}') WHERE person_id IS NOT NULL GROUP BY person_id HAVING count(*) > 1
), deduped AS (
  -- The engine's plan (stepkit/engines/dedup.py): unique ids streamed, only repeated ids aggregated.
  SELECT person_id AS id, profile_json AS doc FROM read_parquet('{source}') ANTI JOIN dups ON person_id = dups.k
  WHERE person_id IS NOT NULL
  UNION ALL
  SELECT person_id AS id, coalesce(min(profile_json) FILTER (WHERE json_valid(profile_json)), min(profile_json)) AS doc
  FROM read_parquet('{source}') SEMI JOIN dups ON person_id = dups.k WHERE person_id IS NOT NULL GROUP BY person_id
), parsed AS (
  SELECT id, CASE WHEN json_valid(doc) THEN doc END AS j FROM deduped
), lists AS (
  SELECT id, j, json_extract(j, [{paths}]) AS v FROM parsed
), extracted AS (
  SELECT id, j IS NOT NULL AS parse_ok,
  {", ".join(typed)},
  {hash_.format(salt=f"sample:{p.sample.seed}")} AS sample_hash,
  {hash_.format(salt="batch")} AS batch_hash
  FROM lists
)
SELECT id, parse_ok,
  {clean},
  CAST(sample_hash % 10000 AS INTEGER) AS sample_bucket,
  CAST(batch_hash % {batches} AS INTEGER) AS batch_id,
  CAST(batch_hash % {batches} // 100 AS INTEGER) AS batch_group
FROM extracted"""


def run_floor(con, sql: str, out: Path) -> float:
    start = time.perf_counter()
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (batch_group))")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    pipeline, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", ENV)
    work = Path(tempfile.mkdtemp(prefix="stepkit-bench-"))
    try:
        source = work / "source.parquet"
        make_source(source, args.rows)
        warehouse = work / "warehouse"
        engine = DuckDBEngine(warehouse, threads=args.threads)
        engine.register_table(pipeline.source.database, pipeline.source.table, str(source))
        ctx = Context(pipeline, root=str(warehouse) + "/")
        stage = next(s for s in pipeline.stages if s.name == "StagingFeatures")
        (statement,) = stage.sql(ctx)
        db, name = pipeline.aws.database, pipeline.tables.names()["staging"]
        floor_con = duckdb.connect()
        floor_con.execute(f"SET threads = {args.threads}")
        floor_con.execute("SET preserve_insertion_order = false")
        sql = floor_sql(pipeline, str(source))
        floors, engines = [], []
        for i in range(args.repeats):
            out = work / f"floor{i}"
            floors.append(run_floor(floor_con, sql, out))
            engine.drop_table(db, name)
            result = engine.execute(statement.text(f"bench_{i}"))
            engines.append(result.seconds)
            if i == 0:  # same rows, same values, before any figure counts
                mine = f"read_parquet('{engine.table_location(db, name)}**/*.parquet', hive_partitioning = true)"
                theirs = f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
                diff = floor_con.execute(
                    f"SELECT count(*) FROM ((FROM {mine} EXCEPT ALL FROM {theirs}) UNION ALL "
                    f"(FROM {theirs} EXCEPT ALL FROM {mine}))").fetchone()[0]
                rows = floor_con.execute(f"SELECT count(*) FROM {theirs}").fetchone()[0]
                if diff or rows != result.rows_written:
                    sys.exit(f"engine and floor disagree: {diff} differing rows, {result.rows_written} vs {rows}")
            shutil.rmtree(out)
        engine.close()
        f, e = statistics.median(floors), statistics.median(engines)
        print(f"rows: {args.rows:,} source, {result.rows_written:,} staged; threads: {args.threads}")
        print("floor  (bare DuckDB): " + ", ".join(f"{x:.2f}" for x in floors) + f" s; median {f:.2f} s "
              f"({args.rows / f / 1e6:.2f} M rows/s)")
        print("engine (Athena SQL):  " + ", ".join(f"{x:.2f}" for x in engines) + f" s; median {e:.2f} s "
              f"({args.rows / e / 1e6:.2f} M rows/s)")
        print(f"ratio engine / floor: {e / f:.2f} (target <= 1.3); best-of ratio {min(engines) / min(floors):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
