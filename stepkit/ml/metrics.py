"""Quality figures of a model on held-out rows."""
from __future__ import annotations

import numpy as np

from stepkit.spec.metrics import METRICS

# Expected calibration error: the predicted class's probability in this many equal-width bins
# (Guo et al. 2017's figure; the report's calibration curve uses the same bins).
ECE_BINS = 15
_EPS = 1e-15


def regression(y: np.ndarray, pred: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R², interval coverage and mean width; float64 sums (float32 drifts at 10M rows)."""
    y = np.asarray(y, dtype=np.float64)
    err = np.asarray(pred, dtype=np.float64) - y
    ss_tot = float(((y - y.mean()) ** 2).sum()) if y.size else 0.0
    ss_res = float((err**2).sum())
    inside = (y >= lower) & (y <= upper)
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        "coverage": float(inside.mean()),
        "interval_width": float((np.asarray(upper, dtype=np.float64) - lower).mean()),
        "rows": int(y.size),
    }


def classification(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1, log loss, ROC AUC (one-vs-rest, macro) and ECE of
    class probabilities `proba` (rows x classes) against class codes `y`."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)  # rows: true, columns: predicted
    true, predicted, hits = confusion.sum(axis=1), confusion.sum(axis=0), np.diag(confusion)
    present = true > 0
    recall = np.divide(hits, true, out=np.zeros(k), where=true > 0)
    precision = np.divide(hits, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0)
    labelled = present | (predicted > 0)  # the classes in the truth or the predictions, as scikit-learn averages
    picked = proba[np.arange(y.size), y]
    return {
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[labelled].mean()) if labelled.any() else 0.0,
        "log_loss": float(-np.log(np.clip(picked, _EPS, 1.0)).mean()),
        "roc_auc": roc_auc(y, proba),
        "ece": ece(y, proba),
        "rows": int(y.size),
    }


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: the AUC of the second class's probability. Multiclass: the mean of each class's
    one-vs-rest AUC, over the classes that have both positives and negatives (NaN if none has)."""
    k = proba.shape[1]
    classes = [1] if k == 2 else range(k)
    aucs = [_auc(y == c, proba[:, c]) for c in classes]
    aucs = [a for a in aucs if a is not None]
    return float(np.mean(aucs)) if aucs else float("nan")


def _auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if not n_pos or not n_neg:
        return None
    ranks = _ranks(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (the Mann-Whitney U statistic's ranks)."""
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def calibration_bins(y: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, rows) per equal-width bin of the predicted class's probability,
    for the bins that hold rows."""
    conf = proba.max(axis=1)
    right = proba.argmax(axis=1) == y
    which = np.clip((conf * bins).astype(np.int64), 0, bins - 1)
    rows = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    right_sum = np.bincount(which, weights=right, minlength=bins)
    return [(float(conf_sum[b] / rows[b]), float(right_sum[b] / rows[b]), int(rows[b]))
            for b in range(bins) if rows[b]]


def ece(y: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the row-weighted mean gap between confidence and accuracy per bin."""
    n = max(int(y.size), 1)
    return float(sum(rows / n * abs(acc - conf) for conf, acc, rows in calibration_bins(y, proba, bins)))


def better(metric: str, a: float, b: float) -> bool:
    """Is `a` better than `b` for this selection metric? (NaN is never better.)"""
    higher = next(m[metric] for m in METRICS.values() if metric in m)
    if np.isnan(a):
        return False
    if np.isnan(b):
        return True
    return a > b if higher else a < b
