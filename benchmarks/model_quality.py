"""Model quality on demo data against the generator's Bayes floor, and training time.

    .venv/bin/python benchmarks/model_quality.py [--rows 1000000] [--seeds 0 1]

Per seed: demo source of ROWS rows -> the training sample (pipelines/predict_age.yaml: 10% of the
labelled rows) -> stepkit.ml.train with the spec's three models. Prints, per model, test-row MAE
as a ratio to the floor (target <= 1.10), R², interval coverage (target 0.80 +- 0.02) and width,
and the training seconds (target: a few seconds, 10-20 s at most at 1M rows).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepkit.cli import _variables  # noqa: E402
from stepkit.ml import fixtures, train  # noqa: E402
from stepkit.compiler.load import load_pipeline  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    p, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _variables((), str(ROOT / "pipelines" / "example.env")))
    print(f"{'seed':>4} {'model':18} {'MAE':>6} {'floor':>6} {'MAE/floor':>9} {'R2':>6} {'coverage':>8} "
          f"{'width':>6} {'fit s':>6} {'test rows':>9}")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            names, _, meta = fixtures.warehouse(p, f"{tmp}/", "q", rows=args.rows, seed=seed, training_only=True)
            started = time.perf_counter()
            out = train.run(p, names, "q", log=lambda line: None)
            total = time.perf_counter() - started
        floor = meta["bayes_floor_mae"]
        for name, r in out["models"].items():
            mark = "*" if name == out["chosen_model"] else " "
            print(f"{seed:>4} {name + mark:18} {r['mae']:6.3f} {floor:6.3f} {r['mae'] / floor:9.3f} {r['r2']:6.3f} "
                  f"{r['coverage']:8.3f} {r['interval_width']:6.2f} {r['seconds']:6.1f} {r['rows']:9,}")
        print(f"{seed:>4} training total {total:.1f} s on {out['rows']['total']:,} rows (* = chosen)")


if __name__ == "__main__":
    main()
