"""Split-conformal calibration of prediction intervals on held-out rows.

Quantile models use conformalized quantile regression (Romano et al. 2019): the score of a row
is how far its true value falls outside [lower, upper] (negative inside); the interval grows
(or shrinks) by the calibrated quantile of those scores. Point models use normalised absolute
residuals |y - ŷ| / scale(x), where scale(x) comes from `ScaleModel`. Either way the coverage
holds on exchangeable rows the calibration did not see, whatever the model got wrong.
"""
from __future__ import annotations

import math

import numpy as np

from stepkit.ml.linear import affine


def quantile_level(n: int, coverage: float) -> float:
    """The finite-sample corrected level ⌈(n+1)·coverage⌉/n (capped at 1)."""
    return min(1.0, math.ceil((n + 1) * coverage) / n)


def calibrate(scores: np.ndarray, coverage: float) -> float:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return 0.0
    return float(np.quantile(scores, quantile_level(scores.size, coverage), method="higher"))


def cqr_scores(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return np.maximum(lower - y, y - upper)


def normalised_scores(y: np.ndarray, pred: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.abs(y - pred) / scale


class ScaleModel:
    """How uncertain a point prediction is, from which features are unknown on the row.

    Squared residuals are fitted linearly on missing-value indicators: when a feature is
    unknown its effect on the target adds its variance to the error. Cheap to apply
    (one matrix-vector product), so point models keep their prediction speed.
    """

    def __init__(self, coef: np.ndarray, floor: float):
        self.coef = np.asarray(coef, dtype=np.float64)
        self.floor = float(floor)

    @classmethod
    def fit(cls, missing: np.ndarray, residuals: np.ndarray) -> "ScaleModel":
        a = np.hstack([np.ones((missing.shape[0], 1)), missing.astype(np.float64)])
        r2 = np.asarray(residuals, dtype=np.float64) ** 2
        coef, *_ = np.linalg.lstsq(a, r2, rcond=None)
        # A floor keeps the score finite where the fit says "no error" (or below zero).
        floor = max(float(np.median(np.abs(residuals))) * 0.25, 1e-6)
        return cls(coef, floor)

    def __call__(self, missing: np.ndarray) -> np.ndarray:
        var = affine(missing, self.coef[1:], self.coef[0])
        return np.sqrt(np.maximum(var, self.floor**2))
