"""Every SQL stage of a local run through the embedded engine vs bare DuckDB doing the same writes.

Per repeat, in the run's order, each stage twice (floor first, then the engine, so load from
other processes hits both alike):
- StagingFeatures: the compiled CTAS vs the hand-written DuckDB query of engine_staging.py
  (same dedup plan, same JSON extraction), both partitioned by batch_group.
- EvaluationFeatures: the compiled CTAS + INSERT INTO chunks (Athena writes at most 100
  partitions per statement) vs ONE DuckDB COPY of the same rows to every batch_id partition.
- HumanQA and FinalResults: the compiled CTAS vs one COPY of the same transpiled SELECT over
  glob views (no file listing, no casts, no DESCRIBE, no catalog).
The predictions the workers would write (one small file per batch, written by the same
storage.parquet_writer options) are synthesised once, untimed, and copied into each repeat.

Both sides use the local run's DuckDB settings (threads, memory cap, no insertion order). The
outputs are compared row for row on the first repeat before any figure is printed. Ratios are
of the medians (engine / floor), of wall time and of this process's CPU time.

    .venv/bin/python benchmarks/engine_stages.py [--rows 1000000] [--repeats 3] [--threads 2]
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
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine_staging import ENV, floor_sql, make_source  # noqa: E402

from stepkit import storage  # noqa: E402
from stepkit.ir.context import Context  # noqa: E402
from stepkit.engines.duckdb import DuckDBEngine  # noqa: E402
from stepkit.engines.transpile import parse  # noqa: E402
from stepkit.ml.predict import output_schema  # noqa: E402
from stepkit.compiler.load import load_pipeline  # noqa: E402

SQL_STAGES = ["StagingFeatures", "EvaluationFeatures", "HumanQA", "FinalResults"]
from stepkit.local.runner import ENGINE_MEMORY as MEMORY  # noqa: E402 - the local run's cap


def _glob(location: str) -> str:
    return f"read_parquet('{location}**/*.parquet', hive_partitioning = true)"


def synthesise_predictions(p, eval_location: str, out: Path) -> int:
    """One file per batch as the prediction worker writes it (ids of the batch, made-up values)."""
    schema = output_schema(p)
    rows = 0
    for b in range(p.batching.batches):
        folder = Path(eval_location) / f"batch_id={b}"
        if not folder.is_dir():
            continue
        ids = pq.read_table(folder, columns=["id"]).column(0)
        n = len(ids)
        point = 20 + (np.arange(n) % 50).astype(np.float64)
        with storage.parquet_writer(str(out / f"batch_id={b}" / "part-00000.parquet"), schema,
                                    dictionary=["model_name", "model_version", "run_id"], statistics=["id"]) as w:
            w.write_table(pa.table([ids.cast(schema.field("id").type), point, point - 5, point + 5,
                                    np.full(n, 0.8), pa.array(["xgboost"] * n), pa.array(["v1"] * n),
                                    pa.array(["bench"] * n)], schema=schema))
        rows += n
    return rows


class Bench:
    def __init__(self, work: Path, rows: int, threads: int):
        self.work, self.threads = work, threads
        self.p, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", ENV)
        self.source = work / "source.parquet"
        make_source(self.source, rows)
        self.db = self.p.aws.database
        self.names = self.p.tables.names()
        self.floor_con = self._connect()
        # (wall, CPU) seconds per run. CPU time (every thread of this process, kernel time included:
        # creating folders is kernel work) moves less than wall time when other processes load the box.
        self.times: dict[str, dict[str, list[tuple[float, float]]]] = {s: {"floor": [], "engine": []} for s in SQL_STAGES}
        self.counts: list[float] = []
        self.predictions: Path | None = None

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute(f"SET threads = {self.threads}")
        con.execute(f"SET memory_limit = '{MEMORY}'")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET integer_division = true")
        return con

    def repeat(self, i: int, check: bool) -> None:
        warehouse = self.work / f"warehouse{i}"
        root = str(warehouse) + "/"
        ctx = Context(self.p, root=root)
        run_id = f"bench{i}"
        engine = DuckDBEngine(warehouse, threads=self.threads, memory_limit=MEMORY)
        engine.register_table(self.p.source.database or self.db, self.p.source.table, str(self.source))
        floor_root = self.work / f"floor{i}"
        loc = {k: ctx.names.table_location(k, run_id) for k in ("staging", "evaluation_features", "predictions")}
        stages = {s.name: s for s in self.p.stages}
        try:
            for name in SQL_STAGES:
                if name == "HumanQA":  # the workers' files, then the table over them (untimed)
                    self._predictions(loc, engine, stages["CreatePredictionsTable"], ctx, run_id)
                floor_out = floor_root / name
                self.times[name]["floor"].append(self._floor(name, loc, floor_out, stages[name], ctx, run_id))
                start, cpu = time.perf_counter(), time.process_time()
                rows = 0
                for st in stages[name].sql(ctx):
                    rows += engine.execute(st.text(run_id)).rows_written or 0
                self.times[name]["engine"].append((time.perf_counter() - start, time.process_time() - cpu))
                table = self.names[stages[name].tables_written()[-1]]
                start = time.perf_counter()
                engine.row_count(self.db, table)  # what the run record asks of every table (runner.outputs)
                self.counts.append(time.perf_counter() - start)
                if check:
                    self._same(name, engine.table_location(self.db, table), floor_out, rows)
                shutil.rmtree(floor_out)
        finally:
            engine.close()
            shutil.rmtree(warehouse, ignore_errors=True)
            shutil.rmtree(floor_root, ignore_errors=True)

    def _predictions(self, loc: dict, engine: DuckDBEngine, create, ctx, run_id: str) -> None:
        if self.predictions is None:
            self.predictions = self.work / "predictions"
            synthesise_predictions(self.p, loc["evaluation_features"], self.predictions)
        shutil.copytree(self.predictions, loc["predictions"])
        for st in create.sql(ctx):
            engine.execute(st.text(run_id))

    def _floor(self, name: str, loc: dict, out: Path, stage, ctx, run_id: str) -> tuple[float, float]:
        con = self.floor_con
        options = "FORMAT parquet, COMPRESSION snappy"
        if name == "StagingFeatures":
            sql, options = floor_sql(self.p, str(self.source)), options + ", PARTITION_BY (batch_group)"
        else:
            # The same transpiled SELECT over glob views of the same files.
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.db}")
            for key in ("staging", "predictions") if name != "EvaluationFeatures" else ("staging",):
                con.execute(f"CREATE OR REPLACE VIEW {self.db}.{self.names[key]} AS SELECT * FROM {_glob(loc[key])}")
            st = parse(stage.sql(ctx)[0].text(run_id))
            sql = st.duckdb_sql()
            if name == "EvaluationFeatures":  # every group at once: one COPY to all 898 partitions
                sql = sql.replace("AND batch_group = 0", "")
                options += ", PARTITION_BY (batch_id)"
            else:
                out.mkdir(parents=True)
                out = out / "data.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        start, cpu = time.perf_counter(), time.process_time()
        con.execute(f"COPY ({sql}) TO '{out}' ({options})")
        return time.perf_counter() - start, time.process_time() - cpu

    def _same(self, name: str, mine: str, floor_out: Path, rows: int) -> None:
        theirs = _glob(str(floor_out) + "/")
        diff = self.floor_con.execute(
            f"SELECT count(*) FROM ((FROM {_glob(mine)} EXCEPT ALL FROM {theirs}) UNION ALL "
            f"(FROM {theirs} EXCEPT ALL FROM {_glob(mine)}))").fetchone()[0]
        expected = self.floor_con.execute(f"SELECT count(*) FROM {theirs}").fetchone()[0]
        if diff or rows != expected:
            sys.exit(f"{name}: engine and floor disagree: {diff} differing rows, {rows} vs {expected} rows")

    def report(self, rows: int) -> None:
        print(f"rows: {rows:,} source; threads: {self.threads}; memory cap {MEMORY}; "
              f"{len(self.counts) // len(SQL_STAGES)} repeats (seconds, median)")
        print(f"{'stage':<20} {'floor':>7} {'engine':>7} {'ratio':>6} | {'CPU fl':>7} {'CPU en':>7} {'ratio':>6}"
              f"   wall runs (floor/engine)")
        total = [0.0, 0.0, 0.0, 0.0]
        for name in SQL_STAGES:
            runs = self.times[name]
            med = [statistics.median(x[k] for x in runs[side]) for k in (0, 1) for side in ("floor", "engine")]
            total = [a + b for a, b in zip(total, med)]
            walls = " ".join(f"{f[0]:.2f}/{e[0]:.2f}" for f, e in zip(runs["floor"], runs["engine"]))
            print(f"{name:<20} {med[0]:7.2f} {med[1]:7.2f} {med[1] / med[0]:6.2f} | {med[2]:7.2f} {med[3]:7.2f} "
                  f"{med[3] / med[2]:6.2f}   {walls}")
        print(f"{'all SQL stages':<20} {total[0]:7.2f} {total[1]:7.2f} {total[1] / total[0]:6.2f} | "
              f"{total[2]:7.2f} {total[3]:7.2f} {total[3] / total[2]:6.2f}")
        print(f"row counts of the 4 tables (the run record's, not in the floor): "
              f"{sum(self.counts) / (len(self.counts) // len(SQL_STAGES)):.2f} s per run")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stepkit-bench-"))
    try:
        bench = Bench(work, args.rows, args.threads)
        for i in range(args.repeats):
            bench.repeat(i, check=i == 0)
        bench.report(args.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
