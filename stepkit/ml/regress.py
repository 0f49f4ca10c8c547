"""A numeric target's models: point or quantile predictions, conformal intervals, regression metrics."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa

from stepkit.ml import artifacts, conformal, kinds, metrics, models
from stepkit.ml.encoding import Encoder
from stepkit.ml.fitting import Encoded, checked_split, choose, fit_all


def train(pipeline: Any, rows: pa.Table, t: Any, log: Callable[[str], None], table: str) -> dict[str, Any]:
    """Fit, calibrate and evaluate the target's models on its known rows (of the table `table`)."""
    spec = pipeline.training
    y = rows.column(t.name).to_numpy().astype(np.float64)
    parts = checked_split(pipeline, rows, table)
    encoder = Encoder.from_spec(pipeline.feature_list).fit(rows.filter(pa.array(parts["train"])))
    specs = [m for m in spec.models if kinds.task(m.kind) == "regression"]
    x = Encoded.of(encoder, rows, specs)
    missing = encoder.missing_indicators(x.raw)
    tr, cal, te = parts["train"], parts["calibration"], parts["test"]
    lo_t, hi_t = t.min, t.max
    fitted_all: dict[str, tuple[models.Fitted, dict[str, Any]]] = {}
    held = cal | te

    def evaluate(m: Any, fitted: models.Fitted) -> dict[str, Any]:
        # Only held-out rows are measured; a point model's interval is also fitted to its residuals on
        # training rows. The quantile model, evaluated last (when nothing else is left to run beside
        # it), so predicts a fifth of the rows.
        rows = held if fitted.quantiles else slice(None)
        ys, cal_, te_ = y[rows], cal[rows], te[rows]
        point, q3 = fitted.predict(x.input(fitted.encoding)[rows], x.filled[rows] if fitted.needs_filled else None)
        point = np.clip(point, lo_t, hi_t)
        interval: dict[str, Any]
        if q3 is not None:
            qlo, qhi = q3[:, 0], q3[:, 2]
            scores = conformal.cqr_scores(ys[cal_], qlo[cal_], qhi[cal_])
            q = conformal.calibrate(scores, spec.interval.coverage) if spec.interval.calibration == "conformal" else 0.0
            lower, upper = qlo - q, qhi + q
            interval = {"method": "cqr", "q": q}
        else:
            scale_model = conformal.ScaleModel.fit(missing[tr], y[tr] - point[tr])
            scale = scale_model(missing[rows])
            scores = conformal.normalised_scores(ys[cal_], point[cal_], scale[cal_])
            q = conformal.calibrate(scores, spec.interval.coverage)
            lower, upper = point - q * scale, point + q * scale
            interval = {"method": "normalised", "q": q, "scale_coef": scale_model.coef.tolist(),
                        "scale_floor": scale_model.floor}
        lower, upper = np.clip(lower, lo_t, hi_t), np.clip(upper, lo_t, hi_t)
        test = metrics.regression(ys[te_], point[te_], lower[te_], upper[te_])
        calib = metrics.regression(ys[cal_], point[cal_], lower[cal_], upper[cal_])
        fitted_all[m.name] = (fitted, interval)
        return {"kind": m.kind, **test, "calibration": {k: calib[k] for k in ("mae", "rmse", "r2")}}

    results = fit_all(specs, x.take(tr), y[tr], evaluate)
    for m in specs:
        r = results[m.name]
        log(f"{t.name}: {m.name}: mae {r['mae']:.3f} rmse {r['rmse']:.3f} r2 {r['r2']:.4f} "
            f"coverage {r['coverage']:.3f} width {r['interval_width']:.2f} ({r['seconds']}s)")
    chosen = choose(results, spec.metric_for("regression"))
    fitted, interval = fitted_all[chosen]
    cov = spec.interval.coverage
    ref = np.quantile(y[tr], [(1 - cov) / 2, (1 + cov) / 2])
    artifact = {
        "format": artifacts.FORMAT,
        "task": "regression",
        "name": chosen,
        "kind": fitted.kind,
        "model": fitted.model,
        "encoding": fitted.encoding,
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
