"""Training: every target's models on the training sample, calibration, the quality gate.

Rows are split by `sample_bucket` (a hash of the id, 0..9999), so the split is the same every run:
    held out:      bucket % 100 <  sample.holdout_percent
      calibration: held out and (bucket // 100) is even  -> interval / probability calibration, selection
      test:        held out and (bucket // 100) is odd   -> the metrics reported and gated
    training:      the rest
The figures reported are measured on test rows, which the calibration never saw.

Each target trains the models of its kind (numeric targets: stepkit/ml/regress.py; classes:
stepkit/ml/classify.py) on the rows where it is known; one read of the training tables serves
every target. Each target's model goes to `models/<target>/`, the run's summary to
`models/metrics.json`.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stepkit import storage
from stepkit.errors import DataError, QualityGateError
from stepkit.ml import artifacts, classify, regress
from stepkit.ml.fitting import MIN_ROWS, split  # noqa: F401 - part of this module's interface

FEATURES, TARGETS = "training_features", "training_targets"  # the training worker's table roles


def load_rows(pipeline: Any, names: Any, run_id: str, roles: dict[str, str] | None = None) -> pa.Table:
    """Training features joined with their targets on id (rows where some target is known), sorted by
    id (file order varies). `roles`: the stage's role -> table key map."""
    roles = roles or {}
    feats_key, targets_key = roles.get(FEATURES, FEATURES), roles.get(TARGETS, TARGETS)
    targets = [t.name for t in pipeline.target_list]
    feats_at = names.table_location(feats_key, run_id)
    targets_at = names.table_location(targets_key, run_id)
    cols = ["id", *[f.name for f in pipeline.feature_list], "sample_bucket"]
    feats = storage.read_table(feats_at, columns=cols)
    known = storage.read_table(targets_at, columns=["id", *targets])
    any_known = pc.is_valid(known.column(targets[0]))
    for name in targets[1:]:
        any_known = pc.or_(any_known, pc.is_valid(known.column(name)))
    known = known.filter(any_known)
    rows = feats.join(known, "id", join_type="inner")
    if rows.num_rows == 0:
        raise DataError(f"{pipeline.tables[feats_key]}: 0 rows with a known {' or '.join(targets)} "
                        f"({feats.num_rows:,} feature rows at {feats_at}, {known.num_rows:,} target rows at {targets_at})")
    return rows.sort_by("id")


def fingerprint(rows: pa.Table) -> str:
    """A hash of the training rows' content (rows sorted by id first, so file order does not matter)."""
    h = hashlib.sha256()
    h.update(str(rows.schema).encode())
    for col in rows.itercolumns():
        for chunk in col.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(buf)
    return h.hexdigest()[:16]


def gate(pipeline: Any, chosen: str, result: dict[str, Any], target: str | None = None) -> dict[str, Any]:
    """The quality gate's bounds that apply to the result's metrics, checked."""
    checks = []
    for metric, bound, threshold in pipeline.training.quality_gate.checks():
        if metric not in result:
            continue
        value = result[metric]
        failed = bool(np.isnan(value)) or (value > threshold if bound == "max" else value < threshold)
        checks.append((metric, value, ">" if bound == "max" else "<", f"{bound}_{metric}", threshold, failed))
    failed = [c for c in checks if c[5]]
    prefix = f"{target}: " if target else ""
    return {"passed": not failed, "model": chosen, "rows": result["rows"],
            "failures": [f"{prefix}{m} {v:.4g} {op} {name} {th:g}" for m, v, op, name, th, _ in failed]}


def train_target(pipeline: Any, rows: pa.Table, target: Any, log: Callable[[str], None], table: str
                 ) -> dict[str, Any]:
    """One target's models on its known rows: {"artifact", "chosen", "models", "rows"}. `table`
    names the training table in errors."""
    sub = rows.filter(pc.is_valid(rows.column(target.name)))
    module = classify if target.task == "classification" else regress
    return module.train(pipeline, sub, target, log, table)


def run(pipeline: Any, names: Any, run_id: str, log=print, roles: dict[str, str] | None = None) -> dict[str, Any]:
    """Train every target; write each model and the run's summary. Returns the summary (one target:
    that target's summary, as the worker has always returned; several: by target under `targets`)."""
    started = time.perf_counter()
    rows = load_rows(pipeline, names, run_id, roles)
    data_fingerprint = fingerprint(rows)
    several = len(pipeline.target_list) > 1
    summaries, failures = {}, []
    for t in pipeline.target_list:
        t_started = time.perf_counter()
        out = train_target(pipeline, rows, t, log, pipeline.tables[(roles or {}).get(FEATURES, FEATURES)])
        chosen, result = out["chosen"], out["models"][out["chosen"]]
        gate_result = gate(pipeline, chosen, result, t.name if several else None)
        summary = {
            "run_id": run_id,
            "target": t.name,
            "task": t.task,
            "chosen_model": chosen,
            "selection_metric": pipeline.training.metric_for(t.task),
            "models": out["models"],
            "gate": gate_result,
            "rows": out["rows"],
            "data_fingerprint": data_fingerprint,
            "features": out["artifact"]["encoder"]["features"],
            "encoded_columns": out["artifact"]["encoder"]["columns"],
            "library_versions": artifacts.library_versions(),
            **({"confidence_score": "1 - (upper_bound - lower_bound) / reference_width, clipped to [0, 1]; "
                "reference_width is the central interval of the training targets at the same coverage"}
               if t.task == "regression" else
               {"probability": "the predicted class's probability, calibrated on held-out rows "
                f"({out['artifact']['calibration']['method']} scaling: stepkit/ml/calibration.py)"}),
            "seconds": round(time.perf_counter() - t_started, 3),
        }
        # No timings in the artifact: the same data and settings give the same bytes, hence the same version.
        timeless = {m: {k: v for k, v in r.items() if k != "seconds"} for m, r in out["models"].items()}
        artifact = {**out["artifact"], "metadata": {"models": timeless, **{k: summary[k] for k in (
            "run_id", "rows", "data_fingerprint", "features", "encoded_columns", "library_versions")}}}
        summary["model_version"] = artifacts.save(names.model_location(t.name, run_id), artifact, summary)
        summaries[t.name] = summary
        if not gate_result["passed"]:
            failures.append(f"{'; '.join(gate_result['failures'])} (model {chosen}, {result['rows']:,} held-out rows)")
    run_summary = {
        "run_id": run_id,
        "targets": summaries,
        "gate": {"passed": not failures, "failures": failures},
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    storage.write_json(storage.join(names.models_location(run_id), artifacts.METRICS_FILE), run_summary)
    if failures:
        raise QualityGateError(f"quality gate: {'; '.join(failures)}")
    if not several:
        return {**next(iter(summaries.values())), "seconds": run_summary["seconds"]}
    return run_summary
