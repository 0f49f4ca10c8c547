"""Training: every model of the spec on the training sample, conformal intervals, the quality gate.

Rows are split by `sample_bucket` (a hash of the id, 0..9999), so the split is the same every run:
    held out:      bucket % 100 <  sample.holdout_percent
      calibration: held out and (bucket // 100) is even  -> interval calibration, model selection
      test:        held out and (bucket // 100) is odd   -> the metrics reported and gated
    training:      the rest
The coverage reported is measured on test rows, which the calibration never saw.
"""
from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stepkit import storage
from stepkit.errors import DataError, QualityGateError
from stepkit.ml import artifacts, conformal, metrics, models
from stepkit.ml.encoding import Encoder

MIN_ROWS = 20  # per split: fewer cannot calibrate an interval or measure anything


def load_rows(pipeline: Any, names: Any, run_id: str) -> pa.Table:
    """Training features joined with their targets on id, sorted by id (file order varies)."""
    target = pipeline.target.name
    feats_at = names.table_location("training_features", run_id)
    targets_at = names.table_location("training_targets", run_id)
    cols = ["id", *[f.name for f in pipeline.features], "sample_bucket"]
    feats = storage.read_table(feats_at, columns=cols)
    targets = storage.read_table(targets_at, columns=["id", target])
    targets = targets.filter(pc.is_valid(targets.column(target)))
    rows = feats.join(targets, "id", join_type="inner")
    if rows.num_rows == 0:
        raise DataError(f"{pipeline.tables.training_features}: 0 rows with a known {target} "
                        f"({feats.num_rows:,} feature rows at {feats_at}, {targets.num_rows:,} target rows at {targets_at})")
    return rows.sort_by("id")


def split(buckets: np.ndarray, holdout_percent: float) -> dict[str, np.ndarray]:
    held = (buckets % 100) < holdout_percent
    odd = (buckets // 100) % 2 == 1
    return {"train": ~held, "calibration": held & ~odd, "test": held & odd}


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


def train_models(pipeline: Any, rows: pa.Table, log=print) -> dict[str, Any]:
    """Fit, calibrate and evaluate every model. Returns the chosen model's artifact and all metrics."""
    t = pipeline.target
    spec = pipeline.training
    y = rows.column(t.name).to_numpy().astype(np.float64)
    parts = split(rows.column("sample_bucket").to_numpy(), pipeline.sample.holdout_percent)
    for name, mask in parts.items():
        if mask.sum() < MIN_ROWS:
            raise DataError(f"{pipeline.tables.training_features}: {int(mask.sum()):,} {name} rows of "
                            f"{rows.num_rows:,} (need {MIN_ROWS}; raise sample.percent or holdout_percent)")
    encoder = Encoder.from_spec(pipeline.features).fit(rows.filter(pa.array(parts["train"])))
    raw = encoder.raw(rows)
    filled = encoder.fill(raw.copy())
    missing = encoder.missing_indicators(raw)
    tr, cal, te = parts["train"], parts["calibration"], parts["test"]
    lo_t, hi_t = t.min, t.max

    def evaluate(m: Any, fitted: models.Fitted) -> tuple[dict[str, Any], tuple[models.Fitted, dict[str, Any]]]:
        point, q3 = fitted.predict(raw, filled)
        point = np.clip(point, lo_t, hi_t)
        interval: dict[str, Any]
        if q3 is not None:
            qlo, qhi = q3[:, 0], q3[:, 2]
            scores = conformal.cqr_scores(y[cal], qlo[cal], qhi[cal])
            q = conformal.calibrate(scores, spec.interval.coverage) if spec.interval.calibration == "conformal" else 0.0
            lower, upper = qlo - q, qhi + q
            interval = {"method": "cqr", "q": q}
        else:
            scale_model = conformal.ScaleModel.fit(missing[tr], y[tr] - point[tr])
            scale = scale_model(missing)
            scores = conformal.normalised_scores(y[cal], point[cal], scale[cal])
            q = conformal.calibrate(scores, spec.interval.coverage)
            lower, upper = point - q * scale, point + q * scale
            interval = {"method": "normalised", "q": q, "scale_coef": scale_model.coef.tolist(),
                        "scale_floor": scale_model.floor}
        lower, upper = np.clip(lower, lo_t, hi_t), np.clip(upper, lo_t, hi_t)
        test = metrics.regression(y[te], point[te], lower[te], upper[te])
        calib = metrics.regression(y[cal], point[cal], lower[cal], upper[cal])
        result = {"kind": m.kind, **test, "calibration": {k: calib[k] for k in ("mae", "rmse", "r2")}}
        return result, (fitted, interval)

    def timed(fit: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        return fit(), time.perf_counter() - started

    # Every fit (a quantile model has one per quantile) runs in a pool of min(cores, fits) threads,
    # with the cores shared out as xgboost threads (at least one each): on two cores, two fits of
    # one thread each (most of a quantile fit is serial, its leaf update; xgboost's own threads
    # scaled 1.25x there where side-by-side fits scale 2x; more fits than cores at once cost 10%
    # more CPU for no wall time at 10M rows); on the 16-vCPU training task, 5 fits x 3 threads.
    # Longest first (each kind's rank: quantile boosters, then xgboost, then ridge). nthread
    # depends only on the core count and the spec, so a model's bytes (and version) do not depend
    # on the thread timing.
    cores = models.threads()
    count = sum(models.fit_count(m) for m in spec.models)
    x_tr, filled_tr, y_tr = raw[tr], filled[tr], y[tr]  # copies, made once for every fit
    jobs = [(m, models.fits(m, x_tr, filled_tr, y_tr, max(1, cores // count))) for m in spec.models]
    queue = sorted((models.rank(m), i, k) for i, (m, fits) in enumerate(jobs) for k in range(len(fits)))
    results, fitted_all = {}, {}
    with ThreadPoolExecutor(max(1, min(cores, count))) as pool:
        futures = {(i, k): pool.submit(timed, jobs[i][1][k]) for _, i, k in queue}
        for i, (m, fits) in enumerate(jobs):  # each model evaluated once its fits are done, while others fit
            done = [futures[i, k].result() for k in range(len(fits))]
            started = time.perf_counter()
            result, fitted = evaluate(m, models.assemble(m, [part for part, _ in done]))
            result["seconds"] = round(sum(s for _, s in done) + time.perf_counter() - started, 3)
            results[m.name], fitted_all[m.name] = result, fitted
    for m in spec.models:
        result = results[m.name]
        log(f"{m.name}: mae {result['mae']:.3f} rmse {result['rmse']:.3f} r2 {result['r2']:.4f} "
            f"coverage {result['coverage']:.3f} width {result['interval_width']:.2f} ({result['seconds']}s)")
    metric = spec.selection_metric
    chosen = None
    for name in results:  # selection on calibration rows; the reported test figures stay unbiased
        if chosen is None or metrics.better(metric, results[name]["calibration"][metric],
                                            results[chosen]["calibration"][metric]):
            chosen = name
    fitted, interval = fitted_all[chosen]
    cov = spec.interval.coverage
    ref = np.quantile(y[tr], [(1 - cov) / 2, (1 + cov) / 2])
    artifact = {
        "format": artifacts.FORMAT,
        "name": chosen,
        "kind": fitted.kind,
        "model": fitted.model,
        "quantiles": fitted.quantiles,
        "interval": interval,
        "coverage": cov,
        "encoder": encoder.to_dict(),
        "target": {"name": t.name, "min": t.min, "max": t.max, "type": t.type},
        # confidence_score = 1 - interval width / this width (the central interval of the targets themselves).
        "reference_width": float(max(ref[1] - ref[0], 1e-9)),
    }
    return {"artifact": artifact, "chosen": chosen, "models": results,
            "rows": {k: int(v.sum()) for k, v in parts.items()} | {"total": rows.num_rows}}


def gate(pipeline: Any, chosen: str, result: dict[str, Any]) -> dict[str, Any]:
    g = pipeline.training.quality_gate
    checks = []
    if g.max_mae is not None:
        checks.append(("mae", result["mae"], ">", "max_mae", g.max_mae, result["mae"] > g.max_mae))
    if g.min_r2 is not None:
        checks.append(("r2", result["r2"], "<", "min_r2", g.min_r2, result["r2"] < g.min_r2))
    failed = [c for c in checks if c[5]]
    return {"passed": not failed, "model": chosen, "rows": result["rows"],
            "failures": [f"{m} {v:.4g} {op} {name} {th:g}" for m, v, op, name, th, _ in failed]}


def run(pipeline: Any, names: Any, run_id: str, log=print) -> dict[str, Any]:
    started = time.perf_counter()
    rows = load_rows(pipeline, names, run_id)
    out = train_models(pipeline, rows, log)
    chosen, result = out["chosen"], out["models"][out["chosen"]]
    gate_result = gate(pipeline, chosen, result)
    summary = {
        "run_id": run_id,
        "chosen_model": chosen,
        "selection_metric": pipeline.training.selection_metric,
        "models": out["models"],
        "gate": gate_result,
        "rows": out["rows"],
        "data_fingerprint": fingerprint(rows),
        "features": out["artifact"]["encoder"]["features"],
        "encoded_columns": out["artifact"]["encoder"]["columns"],
        "library_versions": artifacts.library_versions(),
        "confidence_score": "1 - (upper_bound - lower_bound) / reference_width, clipped to [0, 1]; reference_width "
                            "is the central interval of the training targets at the same coverage",
        "seconds": round(time.perf_counter() - started, 3),
    }
    # No timings in the artifact: the same data and settings give the same bytes, hence the same version.
    timeless = {m: {k: v for k, v in r.items() if k != "seconds"} for m, r in out["models"].items()}
    artifact = {**out["artifact"], "metadata": {"models": timeless, **{k: summary[k] for k in (
        "run_id", "rows", "data_fingerprint", "features", "encoded_columns", "library_versions")}}}
    summary["model_version"] = artifacts.save(names.models_location(run_id), artifact, summary)
    if not gate_result["passed"]:
        raise QualityGateError(f"quality gate: {'; '.join(gate_result['failures'])} "
                               f"(model {chosen}, {result['rows']:,} held-out rows)")
    return summary
