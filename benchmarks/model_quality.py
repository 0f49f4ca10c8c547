"""Model quality on demo data against the generator's Bayes floor, and training time.

    .venv/bin/python benchmarks/model_quality.py [--rows 1000000] [--seeds 0 1]            # numeric target
    .venv/bin/python benchmarks/model_quality.py --classes [--rows 1000000] [--seeds 0 1]  # class targets

Numbers, per seed: demo source of ROWS rows -> the training sample (pipelines/predict_age.yaml: 10% of
the labelled rows) -> stepkit.ml.train with the spec's three models. Prints, per model, test-row MAE
as a ratio to the floor (target <= 1.10), R², interval coverage (target 0.80 +- 0.02) and width,
and the training seconds (target: a few seconds, 10-20 s at most at 1M rows).

Classes, per seed and example (pipelines/classify_homeowner.yaml: true/false; classify_seniority.yaml:
six classes), with `sample.percent: 50` so the held-out test rows number tens of thousands (ECE's
own sampling noise is ~0.02 at 2,000 rows): per model, test-row accuracy against the floor's (the
Bayes classifier's expected accuracy given the features that survive the mess; target: within 0.02
absolute), log loss against the floor's (target: within 5% relative), ECE (target <= 0.02), the
majority class's accuracy for scale, and the training seconds.
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

ENV = str(ROOT / "pipelines" / "example.env")
CLASS_EXAMPLES = ["classify_homeowner", "classify_seniority"]


def numbers(args: argparse.Namespace) -> None:
    p, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _variables((), ENV))
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


def classes(args: argparse.Namespace) -> None:
    print(f"{'example':18} {'seed':>4} {'model':19} {'accuracy':>8} {'floor':>6} {'gap':>7} {'log loss':>8} "
          f"{'floor':>6} {'rel':>6} {'ECE':>6} {'majority':>8} {'fit s':>6} {'test rows':>9}")
    for example in CLASS_EXAMPLES:
        p, _ = load_pipeline(ROOT / "pipelines" / f"{example}.yaml", _variables((), ENV))
        p = fixtures.variant(p, sample={"percent": 50})
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                names, _, meta = fixtures.warehouse(p, f"{tmp}/", "q", rows=args.rows, seed=seed, training_only=True)
                started = time.perf_counter()
                out = train.run(p, names, "q", log=lambda line: None)
                total = time.perf_counter() - started
            floor = meta["targets"][p.target.name]
            acc, ll = floor["bayes_floor_accuracy"], floor["bayes_floor_log_loss"]
            for name, r in out["models"].items():
                mark = "*" if name == out["chosen_model"] else " "
                print(f"{example:18} {seed:>4} {name + mark:19} {r['accuracy']:8.4f} {acc:6.4f} "
                      f"{r['accuracy'] - acc:+7.4f} {r['log_loss']:8.4f} {ll:6.4f} {r['log_loss'] / ll - 1:+6.1%} "
                      f"{r['ece']:6.4f} {floor['majority_class_accuracy']:8.4f} {r['seconds']:6.1f} {r['rows']:9,}")
            print(f"{example:18} {seed:>4} training total {total:.1f} s on {out['rows']['total']:,} rows (* = chosen); "
                  f"floor on {floor['floor_rows']:,} rows, realised {floor['bayes_realised_accuracy']:.4f} / "
                  f"{floor['bayes_realised_log_loss']:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--classes", action="store_true", help="The class-target examples, not predict-age.")
    args = ap.parse_args()
    (classes if args.classes else numbers)(args)


if __name__ == "__main__":
    main()
