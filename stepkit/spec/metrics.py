"""The two kinds of target and the metrics training reports for each (the spec names them in
`selection_metric` and `quality_gate`; stepkit/ml/metrics.py computes them)."""
from __future__ import annotations

# A regression target is a number; a classification target is a class (true/false, or one of its categories).
REGRESSION, CLASSIFICATION = "regression", "classification"

# Every metric training reports, per task, and whether higher is better.
METRICS = {
    REGRESSION: {"mae": False, "rmse": False, "r2": True},
    CLASSIFICATION: {"accuracy": True, "balanced_accuracy": True, "macro_f1": True, "log_loss": False,
                     "roc_auc": True, "ece": False},
}
DEFAULT_SELECTION = {REGRESSION: "mae", CLASSIFICATION: "log_loss"}
