"""A class target's models: logits per class, probabilities calibrated on held-out rows
(stepkit/ml/calibration.py), classification metrics."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stepkit.ml import artifacts, calibration, kinds, metrics, models
from stepkit.ml.encoding import Encoder
from stepkit.ml.fitting import Encoded, checked_split, choose, fit_all


def codes(column: pa.ChunkedArray | pa.Array, classes: list[str]) -> np.ndarray:
    """Class codes 0..k-1 of known target values (booleans: false 0, true 1; categories: their place
    in `classes`, compared lower-cased; the SQL made anything else NULL)."""
    if pa.types.is_boolean(column.type):
        return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    found = pc.index_in(pc.utf8_lower(column), value_set=pa.array(classes))
    out = np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.float64)
    if np.isnan(out).any():
        raise ValueError(f"target values outside its classes {classes}")
    return out.astype(np.int64)


def train(pipeline: Any, rows: pa.Table, t: Any, log: Callable[[str], None], table: str) -> dict[str, Any]:
    """Fit each classification model, calibrate its probabilities on calibration rows, measure it on
    test rows, and pick one by the selection metric (on calibration rows)."""
    spec = pipeline.training
    classes = t.classes
    k = len(classes)
    y = codes(rows.column(t.name), classes)
    parts = checked_split(pipeline, rows, table)
    encoder = Encoder.from_spec(pipeline.feature_list).fit(rows.filter(pa.array(parts["train"])))
    specs = [m for m in spec.models if kinds.task(m.kind) == "classification"]
    x = Encoded.of(encoder, rows, specs)
    tr, cal, te = parts["train"], parts["calibration"], parts["test"]
    fitted_all: dict[str, tuple[models.Fitted, dict[str, Any]]] = {}
    held = cal | te
    ys, cal_, te_ = y[held], cal[held], te[held]  # calibration and the figures read held-out rows only

    def evaluate(m: Any, fitted: models.Fitted) -> dict[str, Any]:
        z = fitted.logits(x.input(fitted.encoding)[held], x.filled[held] if fitted.needs_filled else None)
        params = calibration.fit(z[cal_], ys[cal_])
        proba = calibration.apply(z, params)
        test = metrics.classification(ys[te_], proba[te_])
        calib = metrics.classification(ys[cal_], proba[cal_])
        fitted_all[m.name] = (fitted, params)
        return {"kind": m.kind, **test, "calibration": {k: v for k, v in calib.items() if k != "rows"},
                "class_counts": np.bincount(y[te], minlength=k).tolist()}

    results = fit_all(specs, x.take(tr), y[tr], evaluate, classes=k)
    for m in specs:
        r = results[m.name]
        log(f"{t.name}: {m.name}: accuracy {r['accuracy']:.4f} balanced {r['balanced_accuracy']:.4f} "
            f"macro_f1 {r['macro_f1']:.4f} log_loss {r['log_loss']:.4f} roc_auc {r['roc_auc']:.4f} "
            f"ece {r['ece']:.4f} ({r['seconds']}s)")
    chosen = choose(results, spec.metric_for("classification"))
    fitted, params = fitted_all[chosen]
    artifact = {
        "format": artifacts.FORMAT,
        "task": "classification",
        "name": chosen,
        "kind": fitted.kind,
        "model": fitted.model,
        "encoding": fitted.encoding,
        "quantiles": None,
        "classes": classes,
        "calibration": params,
        "encoder": encoder.to_dict(),
        "target": {"name": t.name, "type": t.type, "classes": classes},
    }
    return {"artifact": artifact, "chosen": chosen, "models": results,
            "rows": {k: int(v.sum()) for k, v in parts.items()} | {"total": rows.num_rows}}
