"""Prediction worker vs bare model prediction of the same rows, side by side.

    .venv/bin/python benchmarks/predict_throughput.py [--rows 1000000] [--repeat 5]
    .venv/bin/python benchmarks/predict_throughput.py --rows 1100 --batches 200 [--repeat 5]
    .venv/bin/python benchmarks/predict_throughput.py ... --code /tmp/before   # another checkout

For each model kind of the spec: train it alone on a small demo warehouse, then score rows two
ways, interleaved, best of REPEAT:
  worker: stepkit.workers.prediction.run (one batch: config, Parquet read, encoding, prediction,
          interval, Parquet write), as a local run's worker process calls it;
  bare:   the model's own prediction on the already-encoded float32 matrix (inplace_predict for
          xgboost, a matrix product for ridge): no I/O, no encoding.

One batch of ROWS rows (default): the best rows/s of both and the median of the paired ratios
bare/worker time (each pair back to back, so a busy machine slows both alike). Target >= 0.70
for the xgboost kinds (ridge's bare product is too fast for the ratio to mean anything).

BATCHES > 1: BATCHES batch folders of ROWS rows each, scored one after the other, as a fan-out
worker process does (STEPKIT_THREADS=1 unless set): per-batch ms of the worker and of bare
prediction, their difference (the worker's fixed cost per batch) and the worker's CPU ms per
batch (other processes' load moves wall time far more than CPU time on a shared box).

--code DIR measures the stepkit/workers of another checkout with this same script (for
before/after figures: `git worktree add /tmp/before HEAD~1`, run both, alternate).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUN = "bench"


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per batch")
    ap.add_argument("--batches", type=int, default=1, help="batches scored one after the other")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--train-rows", type=int, default=30_000, help="demo rows behind the model")
    ap.add_argument("--models", default="", help="comma-separated model names (default: all of the spec)")
    ap.add_argument("--code", default=str(ROOT), help="checkout whose stepkit and workers are measured")
    return ap.parse_args()


ARGS = _args()
if ARGS.batches > 1:
    os.environ.setdefault("STEPKIT_THREADS", "1")  # a fan-out worker process's setting
sys.path.insert(0, str(Path(ARGS.code).resolve()))

import pyarrow as pa  # noqa: E402

from stepkit import storage  # noqa: E402
from stepkit.cli import _variables  # noqa: E402
from stepkit.ml import artifacts, fixtures, predict, train  # noqa: E402
from stepkit.compiler.load import load_pipeline  # noqa: E402

# A checkout from before pyproject.toml mapped workers/ into the package has a top-level `workers`.
if '"stepkit.workers"' in (Path(ARGS.code) / "pyproject.toml").read_text():
    from stepkit.workers import prediction as worker  # noqa: E402
else:
    from workers import prediction as worker  # noqa: E402


def _batches(names, rows: int, batches: int) -> list[pa.Table]:
    """Replace the demo's evaluation batches with `batches` folders of `rows` rows, one file each
    (as one Athena partition of a batch holds); demo rows tiled, each batch its own slice."""
    src0, _ = predict.batch_paths(names, RUN, 0)
    demo = storage.read_table(src0)
    total = rows * batches
    big = pa.concat_tables([demo] * -(-total // demo.num_rows)).slice(0, total)
    shutil.rmtree(names.table_location("evaluation_features", RUN))
    out = []
    for b in range(batches):
        part = big.slice(b * rows, rows)
        storage.write_table(predict.batch_paths(names, RUN, b)[0] + "part-0.parquet", part)
        out.append(part)
    return out


def _measure(config_uri: str, names, tables: list[pa.Table]) -> tuple[list[float], list[float], list[float]]:
    """(worker seconds, bare seconds, worker CPU seconds) per repeat, each over all batches, interleaved."""
    scorer = predict.Scorer(artifacts.load(names.models_location(RUN)))
    inputs = []
    for t in tables:
        inputs.append(scorer.inputs(t, None))  # the model's matrix (its encoding) and the filled one
    predictions = names.table_location("predictions", RUN)
    worker.run(config_uri, RUN, 0)  # the first call of a process: model load
    worker_s, bare_s, worker_cpu = [], [], []
    for _ in range(ARGS.repeat):
        shutil.rmtree(predictions, ignore_errors=True)  # each batch writes a new file, as in a run
        t, cpu = time.perf_counter(), time.process_time()
        for b, table in enumerate(tables):
            out = worker.run(config_uri, RUN, b)
            assert out["rows"] == table.num_rows
        worker_s.append(time.perf_counter() - t)
        worker_cpu.append(time.process_time() - cpu)
        t = time.perf_counter()
        for x, filled in inputs:
            scorer.fitted.predict(x, filled)
        bare_s.append(time.perf_counter() - t)
    return worker_s, bare_s, worker_cpu


def main() -> None:
    base, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml",
                            _variables((), str(ROOT / "pipelines" / "example.env")))
    wanted = [m for m in ARGS.models.split(",") if m]
    small = ARGS.batches > 1
    print(f"code: {ARGS.code}; STEPKIT_THREADS={os.environ.get('STEPKIT_THREADS', '(all cores)')}")
    if small:
        print(f"{ARGS.batches} batches of {ARGS.rows:,} rows, best of {ARGS.repeat}")
        print(f"{'model':18} {'worker ms/batch':>16} {'bare ms/batch':>14} {'fixed ms/batch':>15} "
              f"{'worker CPU ms/batch':>20}")
    else:
        print(f"batch of {ARGS.rows:,} rows, best of {ARGS.repeat}; model params from pipelines/predict_age.yaml")
        print(f"{'model':18} {'worker rows/s':>14} {'bare rows/s':>12} {'bare/worker time (median of pairs)':>36}")
    for spec in base.training.models:
        if wanted and spec.name not in wanted:
            continue
        p = fixtures.variant(base, sample={"percent": 100}, batching={"batches": 1},
                             training={"models": [spec.model_dump(mode="json")], "quality_gate": {}})
        with tempfile.TemporaryDirectory() as tmp:
            names, config_uri, _ = fixtures.warehouse(p, f"{tmp}/", RUN, rows=ARGS.train_rows, seed=11, files=1)
            train.run(p, names, RUN, log=lambda line: None)
            tables = _batches(names, ARGS.rows, ARGS.batches)
            worker_s, bare_s, worker_cpu = _measure(config_uri, names, tables)
        if small:
            w, b = min(worker_s) / ARGS.batches * 1e3, min(bare_s) / ARGS.batches * 1e3
            print(f"{spec.name:18} {w:16.2f} {b:14.2f} {w - b:15.2f} {min(worker_cpu) / ARGS.batches * 1e3:20.2f}")
        else:
            w, b = ARGS.rows / min(worker_s), ARGS.rows / min(bare_s)
            ratio = float(np.median(np.array(bare_s) / np.array(worker_s)))
            print(f"{spec.name:18} {w:14,.0f} {b:12,.0f} {ratio:36.2f}")


if __name__ == "__main__":
    main()
