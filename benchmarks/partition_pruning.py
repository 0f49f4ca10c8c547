"""EvaluationFeatures' group statements through the local engine, with and without partition pruning.

EvaluationFeatures reads staging one batch group at a time (`WHERE batch_group = k`): a CTAS for
group 0, then an INSERT INTO per further group, each writing that group's batch_id partitions.
stepkit/engines/pruning.py binds staging's view, for each statement, over that group's files only;
this script runs the same statements with pruning switched off (pruning.wanted -> {}) and on,
alternated, and reports wall and CPU time of each and the ratio. Rows written are compared.

The staging table is the Parquet e2e_local.py's floor writes (the same as StagingFeatures, checked
row for row there): run `benchmarks/e2e_local.py --rows N` first, or give --staging.
Threads: 1 by default, as the statements run beside Training in a local run (services.py).

    .venv/bin/python benchmarks/partition_pruning.py [--staging .work/bench/floor_staging] [--repeats 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepkit.engines import pruning  # noqa: E402
from stepkit.engines.duckdb import DuckDBEngine  # noqa: E402

FEATURES = ("years_since_first_job, job_tenure_years, num_jobs, seniority_level, education_level, graduation_year, "
            "degree_count, num_children, marital_status, homeowner, household_size, income_usd, num_credit_cards, "
            "credit_history_years, has_retirement_account, account_age_years, posts_per_week, night_activity_share, "
            "emoji_rate, device_type, email_domain_age_years")


def once(staging: Path, work: Path, prune: bool, threads: int) -> tuple[float, float, int]:
    real = pruning.wanted
    if not prune:
        pruning.wanted = lambda *a, **k: {}
    shutil.rmtree(work, ignore_errors=True)
    engine = DuckDBEngine(work, threads=threads)
    try:
        files = sorted(staging.rglob("*.parquet"))
        cols = engine.con.execute(f"DESCRIBE SELECT * FROM read_parquet({[str(f) for f in files]}, "
                                  "hive_partitioning = true)").fetchall()
        engine.register_table("db", "staging", f"{staging}/",
                              [(c[0], "INTEGER" if c[0] == "batch_group" else c[1]) for c in cols],
                              partitioned_by=["batch_group"])
        groups = sorted(int(f.parent.name.split("=", 1)[1]) for f in files)
        select = f"SELECT id, {FEATURES}, batch_id FROM db.staging WHERE parse_ok AND batch_group = {{}}"
        wall, cpu = time.perf_counter(), os.times()
        engine.execute(f"CREATE TABLE db.ev WITH (format = 'PARQUET', write_compression = 'SNAPPY', "
                       f"external_location = '{work}/ev/', partitioned_by = ARRAY['batch_id']) AS "
                       + select.format(groups[0]))
        for g in groups[1:]:
            engine.execute("INSERT INTO db.ev " + select.format(g))
        end = os.times()
        wall = time.perf_counter() - wall
        return wall, end.user + end.system - cpu.user - cpu.system, engine.row_count("db", "ev")
    finally:
        engine.close()
        pruning.wanted = real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--staging", type=Path, default=ROOT / ".work" / "bench" / "floor_staging")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not any(args.staging.rglob("*.parquet")):
        raise SystemExit(f"{args.staging}: no staging Parquet; run benchmarks/e2e_local.py --rows N first")
    runs: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for prune in (False, True):  # alternated, so load from other processes hits both alike
                runs[prune].append(once(args.staging, Path(tmp) / "wh", prune, args.threads))
                w, c, n = runs[prune][-1]
                print(f"  repeat {i + 1}, pruning {'on ' if prune else 'off'}: wall {w:.2f} s, CPU {c:.2f} s, "
                      f"{n:,} rows", flush=True)
    rows = {n for r in runs.values() for _, _, n in r}
    if len(rows) != 1:
        raise SystemExit(f"rows written differ with and without pruning: {sorted(rows)}")
    med = {p: (statistics.median(w for w, _, _ in r), statistics.median(c for _, c, _ in r)) for p, r in runs.items()}
    print(f"median: off {med[False][0]:.2f} s wall / {med[False][1]:.2f} s CPU; on {med[True][0]:.2f} s / "
          f"{med[True][1]:.2f} s; on/off {med[True][0] / med[False][0]:.2f}x wall, "
          f"{med[True][1] / med[False][1]:.2f}x CPU ({duckdb.__version__}, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
