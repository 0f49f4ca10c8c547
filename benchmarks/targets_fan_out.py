"""Several targets: one fan-out that scores every target per batch, or one fan-out per target?

    .venv/bin/python benchmarks/targets_fan_out.py [--rows 1100] [--batches 100] [--repeat 3]

pipelines/predict_profile.yaml (age and homeowner) trained on a small demo warehouse; then BATCHES
batch folders of ROWS rows are scored, as a fan-out worker process does (STEPKIT_THREADS=1), two ways,
alternated, best of REPEAT:
  one:      the prediction worker scoring both targets per batch (one read, one encoding, one file);
  per task: the same worker code scoring each target alone (the one-target pipelines' batches), both.
Prints CPU and wall ms per batch of each, and what a second target adds to a batch. On AWS every
batch is also a Fargate task, with what `stepkit plan` prices per task (provisioning, image pull,
start, the one-minute billing minimum): the figures the README's choice rests on.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("STEPKIT_THREADS", "1")  # a fan-out worker process's setting
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepkit import storage  # noqa: E402
from stepkit.cli import _variables  # noqa: E402
from stepkit.compiler.load import load_pipeline  # noqa: E402
from stepkit.ml import fixtures, predict, train  # noqa: E402

RUN = "bench"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1100, help="rows per batch (1M demo rows: ~1,100)")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    p, _ = load_pipeline(ROOT / "pipelines" / "predict_profile.yaml", _variables((), str(ROOT / "pipelines" / "example.env")))
    p = fixtures.variant(p, batching={"batches": args.batches, "max_concurrency": 1}, training={"quality_gate": {}})
    singles = [fixtures.variant(p, targets=[t.model_dump(mode="json")], training={"selection_metric": None})
               for t in p.target_list]
    with tempfile.TemporaryDirectory() as tmp:
        root = f"{tmp}/"
        names, _, _ = fixtures.warehouse(p, root, RUN, rows=args.rows * args.batches, seed=1, training_only=False)
        keys = fixtures.roles(p)
        train.run(p, names, RUN, log=lambda line: None, roles=keys)
        present = sorted(int(d.split("=")[1]) for d in storage.list_folders(
            names.table_location(keys["evaluation_features"], RUN)))

        def one() -> None:
            for b in present:
                predict.run(p, names, RUN, b, roles=keys)

        def per_task() -> None:
            for single in singles:
                for b in present:
                    predict.run(single, names, RUN, b, roles=keys)

        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):
            for name, fn in (("one", one), ("per task", per_task)):
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                took = (time.perf_counter() - wall, time.process_time() - cpu)
                best[name] = min(best.get(name, took), took)
    n = len(present)
    print(f"{n} batches of ~{args.rows:,} rows, {len(p.target_list)} targets ({', '.join(t.name for t in p.target_list)})")
    for name, (wall, cpu) in best.items():
        print(f"  {name:9} {cpu / n * 1000:7.2f} ms CPU a batch, {wall / n * 1000:7.2f} ms wall")
    one_cpu, per_cpu = best["one"][1] / n, best["per task"][1] / n
    print(f"  one fan-out for both: {one_cpu / per_cpu:.2f}x the CPU of one per target; the second target adds "
          f"{(one_cpu - per_cpu / 2) * 1000:.2f} ms a batch to one fan-out, a second fan-out adds "
          f"{per_cpu / 2 * 1000:.2f} ms of worker time plus a Fargate task per batch")


if __name__ == "__main__":
    main()
