"""`stepkit run --local` end to end, against the floor of the same work measured in the same run.

For each source size (default 1M and 10M rows of demo data, generated once into .work/bench/):
  1. the whole pipeline: `stepkit run pipelines/predict_age.yaml --local` in a child process;
     wall time, per-stage seconds and rows/s (from run.json), and peak memory of the process
     tree (the runner, DuckDB, the forkserver and every worker), sampled from /proc;
  2. the floor: only the engines doing the same work, no orchestration, no files in between:
     DuckDB parsing the same source into the same Parquet as the StagingFeatures stage (the
     hand-written query of engine_staging.py, checked row for row against the stage there),
     training the same models with the same parameters on a sample of the same size, and
     xgboost predicting every parseable row (mean and quantile models);
  3. the ratio end-to-end / floor (target <= 1.3) and the peak RSS (target <= 4 GB at 10M).
Pipeline and floor runs alternate (--repeat pairs per size); the median paired ratio is reported.

    .venv/bin/python benchmarks/e2e_local.py [--rows 1000000 10000000] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
BENCH = ROOT / ".work" / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine_staging import floor_sql, run_floor  # noqa: E402
# The floor's xgboost gets the same OpenMP setting the run's workers get (stepkit/local/pool.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _pipeline():
    from stepkit.local.source import PLACEHOLDERS
    from stepkit.compiler.load import load_pipeline

    return load_pipeline(PIPELINE, dict(PLACEHOLDERS))[0]


def source(rows: int) -> Path:
    from stepkit import demo_data

    # The same file `make demo` caches (same generator, same seed).
    path = ROOT / ".work" / "demo" / f"predict_age-{rows}.parquet"
    if not path.exists():
        t = time.perf_counter()
        demo_data.write(str(path), _pipeline(), rows=rows)
        print(f"  generated {rows:,} demo rows in {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
    return path


# --- memory of a process tree, from /proc (no psutil needed)
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def _rss(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def _name(pid: int) -> str:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    return "worker" if "forkserver" in cmd or "multiprocessing" in cmd else "runner" if " run " in cmd else cmd[:40]


class TreeMemory(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants, sampled every 0.1 s.

    The tree (which processes descend from the run) is read from all of /proc once a second, the RSS
    of its processes every 0.1 s: scanning /proc every 0.1 s cost the sampler ~2 CPU-ms a sample,
    ~2.5 CPU-s over a 10M run, taken from the two cores the pipeline runs on (the floor has no sampler).
    Its own CPU time is reported (`cpu`). Each process's own peak is its VmHWM, so a process that
    lives less than a second is still counted in peak_single."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_total, self.peak_single, self.stop = pid, 0, 0, threading.Event()
        self.peak_who = ""
        self.cpu = 0.0

    def _tree(self) -> list[int]:
        kids, todo, out = _children(), [self.pid], []
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(p, [])
        return out

    def run(self) -> None:
        tree, read_at = [], 0.0
        while not self.stop.is_set():
            if time.monotonic() - read_at >= 1.0:
                tree, read_at = self._tree(), time.monotonic()
            total = 0
            for p in tree:
                rss, hwm = _rss(p)
                total += rss
                if hwm > self.peak_single:
                    self.peak_single, self.peak_who = hwm, _name(p)
            self.peak_total = max(self.peak_total, total)
            self.cpu = time.thread_time()
            self.stop.wait(0.1)


def end_to_end(rows: int, src: Path) -> dict:
    work = BENCH / f"work-{rows}"
    env = {k: v for k, v in os.environ.items() if k != "STEPKIT_THREADS"}
    cmd = [sys.executable, "-m", "stepkit", "run", str(PIPELINE), "--local", "--source", str(src),
           "--workdir", str(work)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    mem = TreeMemory(proc.pid)
    mem.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t
    mem.stop.set()
    mem.join()
    if proc.returncode != 0:
        raise SystemExit(f"stepkit run failed ({proc.returncode}):\n{out}")
    run_json = next(line.split(":", 1)[1].strip() for line in out.splitlines() if "run record:" in line)
    record = json.loads(Path(run_json).read_text())
    return {"wall": wall, "record": record, "peak_tree_rss": mem.peak_total, "peak_process_rss": mem.peak_single,
            "peak_process": mem.peak_who, "sampler_cpu": mem.cpu}


def floor(src: Path, sample_rows: int, tmp: Path) -> dict:
    """The engines alone on the same work: parse, train, predict."""
    import duckdb
    import numpy as np
    import xgboost as xgb

    p = _pipeline()
    # The same Parquet the StagingFeatures stage writes (same columns, typing, range rules, id
    # hashes, batch_group partitions, snappy), by a hand-written DuckDB query that
    # engine_staging.py checks row for row against the stage.
    parsed = tmp / "floor_staging"
    shutil.rmtree(parsed, ignore_errors=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")  # as the local engine
    t_parse = run_floor(con, floor_sql(p, str(src)), parsed)
    # The earlier floor's parse, for comparison only (not in the total): a simpler table (no range
    # rules, no hashes, categories as numbers, one zstd file), cheaper than the stage's work.
    t_simple = _simple_parse(con, p, src, tmp / "floor_simple.parquet")

    names = [f.name for f in p.features]
    t = time.perf_counter()
    numeric = []
    for f in p.features:
        if f.type == "category":
            cats = ", ".join(f"'{c.lower()}'" for c in f.categories)
            numeric.append(f"CAST(list_position([{cats}], {f.name}) AS DOUBLE) AS {f.name}")
        else:
            numeric.append(f"CAST({f.name} AS DOUBLE) AS {f.name}")
    data = con.execute(f"SELECT {', '.join(numeric)}, CAST({p.target.name} AS DOUBLE) AS {p.target.name} "
                       f"FROM read_parquet('{parsed}/**/*.parquet', hive_partitioning = true) "
                       "WHERE parse_ok").fetchnumpy()
    x_all = np.column_stack([np.asarray(data[n], dtype=np.float32) for n in names])
    y_all = np.asarray(data[p.target.name], dtype=np.float32)
    labelled = np.flatnonzero(~np.isnan(y_all))[:sample_rows]
    x, y = x_all[labelled], y_all[labelled]
    t_read = time.perf_counter() - t

    threads = os.cpu_count() or 1
    t = time.perf_counter()
    boosters = []
    for m in p.training.models:
        params = {"tree_method": "hist", "seed": 0, "max_bin": 256, "nthread": threads}
        rounds = int(m.params.get("n_estimators", 100))
        params.update({("eta" if k == "learning_rate" else k): v for k, v in m.params.items()
                       if k not in ("n_estimators", "alpha")})
        if m.kind == "ridge":
            xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
            xc = np.nan_to_num(xc)
            np.linalg.solve(xc.T @ xc + float(m.params.get("alpha", 1.0)) * np.eye(x.shape[1]), xc.T @ (y - y.mean()))
            continue
        dm = xgb.QuantileDMatrix(x, y, max_bin=256, nthread=threads)
        if m.kind == "xgboost_quantile":
            # The same model as the run's: one booster per quantile (stepkit/ml/kinds/xgboost_quantile.py),
            # each with every core, one after the other (a multi-quantile booster costs the same here).
            for a in m.quantiles:
                q = {**params, "objective": "reg:quantileerror", "quantile_alpha": a}
                boosters.append(xgb.train(q, dm, num_boost_round=rounds))
            continue
        boosters.append(xgb.train(params, dm, num_boost_round=rounds))
    t_train = time.perf_counter() - t

    t = time.perf_counter()
    for b in boosters:
        b.inplace_predict(x_all)
    t_predict = time.perf_counter() - t
    con.close()
    return {"parse": t_parse, "parse_simplified": t_simple, "read_sample": t_read, "train": t_train, "predict": t_predict,
            "total": t_parse + t_train + t_predict, "rows_parsed": int(len(y_all)), "sample_rows": int(len(y))}


def _simple_parse(con, p, src: Path, out: Path) -> float:
    """The parse this benchmark's floor used before: every JSON field, categories as numbers."""
    fields = [*p.features, p.target]
    paths = ", ".join("'" + f.json_path + "'" for f in fields)
    cols = []
    for i, f in enumerate(fields, 1):
        v = f"v[{i}]"
        if f.type == "category":
            cats = ", ".join(f"'{c}'" for c in f.categories)
            cols.append(f"CAST(list_position([{cats}], lower({v})) AS DOUBLE) AS {f.name}")
        elif f.type == "boolean":
            cols.append(f"CAST(TRY_CAST({v} AS BOOLEAN) AS DOUBLE) AS {f.name}")
        else:
            cols.append(f"TRY_CAST({v} AS DOUBLE) AS {f.name}")
    t = time.perf_counter()
    con.execute(f"""
        COPY (
          WITH d AS (SELECT {p.source.id_column} AS id, min({p.source.document_column}) AS doc
                     FROM read_parquet('{src}') GROUP BY 1),
          e AS (SELECT id, json_extract_string(CASE WHEN json_valid(doc) THEN doc END, [{paths}]) AS v FROM d)
          SELECT id, {', '.join(cols)} FROM e
        ) TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")
    return time.perf_counter() - t


def _epoch(stamp: str | float) -> float:
    from datetime import datetime

    return stamp if isinstance(stamp, (int, float)) else datetime.fromisoformat(stamp).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeat", type=int, default=2,
                    help="pipeline/floor pairs per size, run alternately; the median paired ratio is reported")
    args = ap.parse_args()
    BENCH.mkdir(parents=True, exist_ok=True)
    results = []
    for rows in args.rows:
        print(f"== {rows:,} source rows (load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
              flush=True)
        src = source(rows)
        pairs = []
        for i in range(args.repeat):
            # Alternate, so a noisy neighbour slows a pipeline run and its floor alike.
            e2e = end_to_end(rows, src)
            stages = {s["name"]: s for s in e2e["record"]["stages"]}
            fl = floor(src, stages["TrainingFeatures"]["rows_out"] or 0, BENCH)
            pairs.append((e2e, fl))
            print(f"  pair {i + 1}: end to end {e2e['wall']:.1f} s, floor {fl['total']:.1f} s, "
                  f"ratio {e2e['wall'] / fl['total']:.2f}x", flush=True)
        pairs.sort(key=lambda p: p[0]["wall"] / p[1]["total"])
        e2e, fl = pairs[(len(pairs) - 1) // 2]  # the median pair (the lower one of an even count)
        ratio = e2e["wall"] / fl["total"]
        # Not rounded here: a ratio rounded to 3 places, then printed to 2, can print unlike its pair's line.
        ratios = [p[0]["wall"] / p[1]["total"] for p in pairs]
        print(f"  median pair: end to end {e2e['wall']:.1f} s  ({rows / e2e['wall']:,.0f} source rows/s)")
        for s in e2e["record"]["stages"]:
            # A statement queued behind a Parallel sibling's: its rate is over the time it ran.
            queued = (s.get("detail") or {}).get("queued_seconds") or 0.0
            own = (s["seconds"] or 0.0) - queued
            rate = f"{s['rows_out'] / own:>12,.0f} rows/s" if s["rows_out"] and own > 0 else ""
            rows_out = f"{s['rows_out']:>12,}" if s["rows_out"] is not None else " " * 12
            wait = f"  ({queued:.2f} s of it queued behind other SQL)" if queued else ""
            print(f"    {s['name']:<24} {s['seconds']:>7.2f} s {rows_out} {rate}{wait}")
        ran = [s for s in e2e["record"]["stages"] if s.get("start") and s.get("end")]
        span = (max(_epoch(s["end"]) for s in ran) - min(_epoch(s["start"]) for s in ran)) if ran else 0.0
        print(f"    {'(first start to last end)':<24} {span:>7.2f} s   (stages may overlap)")
        print(f"    {'(outside stages)':<24} {e2e['wall'] - span:>7.2f} s   start-up, report, exit")
        print(f"  floor: parse {fl['parse']:.1f} s + train {fl['train']:.1f} s ({fl['sample_rows']:,} rows) "
              f"+ predict {fl['predict']:.1f} s ({fl['rows_parsed']:,} rows) = {fl['total']:.1f} s")
        print(f"  ratio end-to-end / floor: {ratio:.2f}x (all pairs: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"target <= 1.3x)")
        simple = fl["total"] - fl["parse"] + fl["parse_simplified"]
        print(f"  (with the earlier floor's simpler parse, {fl['parse_simplified']:.1f} s: floor {simple:.1f} s, "
              f"ratio {e2e['wall'] / simple:.2f}x)")
        print(f"  peak RSS: process tree {e2e['peak_tree_rss'] / 2**30:.2f} GiB, largest process "
              f"{e2e['peak_process_rss'] / 2**30:.2f} GiB ({e2e['peak_process']}) (target <= 4 GB at 10M); "
              f"the sampler's own CPU {e2e['sampler_cpu']:.2f} s", flush=True)
        results.append({"rows": rows, "load_average_after": os.getloadavg()[0], "wall": e2e["wall"], "floor": fl,
                        "ratio": ratio, "ratios": ratios,
                        "peak_tree_rss": max(p[0]["peak_tree_rss"] for p in pairs),
                        "peak_process_rss": max(p[0]["peak_process_rss"] for p in pairs),
                        "peak_process": e2e["peak_process"], "sampler_cpu": e2e["sampler_cpu"],
                        "stages": [{k: s[k] for k in ("name", "seconds", "rows_out")} for s in e2e["record"]["stages"]]})
    out = BENCH / "e2e_local.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
