"""Prediction worker throughput vs bare `inplace_predict` of the same model, side by side.

    .venv/bin/python benchmarks/predict_throughput.py [--rows 1000000] [--repeat 3]

For each XGBoost model kind of the spec: train it alone on a small demo warehouse, then score one
batch of ROWS rows (demo feature rows tiled) two ways, interleaved, best of REPEAT:
  worker: stepkit.ml.predict.run — Parquet read, encoding, prediction, interval, Parquet write;
  bare:   Booster.inplace_predict on the already-encoded float32 matrix (no I/O, no encoding).
Prints the best rows/s of both and the median of the paired ratios worker/bare (each pair
measured back to back, so a busy machine slows both alike). Target >= 0.70. Same threads for both.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepkit import storage  # noqa: E402
from stepkit.cli import _variables  # noqa: E402
from stepkit.ml import artifacts, fixtures, predict, train  # noqa: E402
from stepkit.spec.loader import load_pipeline  # noqa: E402

RUN = "bench"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--train-rows", type=int, default=30_000, help="demo rows behind the model")
    args = ap.parse_args()
    base, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml",
                            _variables((), str(ROOT / "pipelines" / "example.env")))
    print(f"batch of {args.rows:,} rows, best of {args.repeat}; model params from pipelines/predict_age.yaml")
    print(f"{'model':18} {'worker rows/s':>14} {'bare rows/s':>12} {'worker/bare (median of pairs)':>30}")
    for spec in base.training.models:
        p = fixtures.variant(base, sample={"percent": 100}, batching={"batches": 1},
                             training={"models": [spec.model_dump(mode="json")], "quality_gate": {}})
        with tempfile.TemporaryDirectory() as tmp:
            root = f"{tmp}/"
            names, _, _ = fixtures.warehouse(p, root, RUN, rows=args.train_rows, seed=11, files=1)
            train.run(p, names, RUN, log=lambda line: None)
            src, _ = predict.batch_paths(names, RUN, 0)
            rows = storage.read_table(src)
            reps = -(-args.rows // rows.num_rows)
            big = pa.concat_tables([rows] * reps).slice(0, args.rows)
            # One file, as one Athena partition of a batch holds; the worker reads the folder.
            for f in storage.list_parquet(src):
                Path(f).unlink()
            storage.write_table(src + "part-0.parquet", big)
            scorer = predict.Scorer(artifacts.load(names.models_location(RUN)))
            x = scorer.encoder.raw(big)
            filled = scorer.encoder.fill(x.copy()) if scorer.fitted.needs_filled else None
            worker_s, bare_s = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                out = predict.run(p, names, RUN, 0)
                worker_s.append(time.perf_counter() - t)
                assert out["rows"] == args.rows
                t = time.perf_counter()
                scorer.fitted.predict(x, filled)  # inplace_predict (xgboost), a matrix product (ridge)
                bare_s.append(time.perf_counter() - t)
            w, b = args.rows / min(worker_s), args.rows / min(bare_s)
            ratio = float(np.median(np.array(bare_s) / np.array(worker_s)))
            print(f"{spec.name:18} {w:14,.0f} {b:12,.0f} {ratio:30.2f}")


if __name__ == "__main__":
    main()
