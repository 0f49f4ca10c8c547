"""`ridge`: linear least squares with an L2 penalty, on the imputed input.

Solved here in numpy (the same closed form as scikit-learn's Ridge with an unpenalised
intercept), so the worker images need neither scikit-learn nor SciPy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stepkit.ml.kinds.base import ModelKind
from stepkit.ml.linear import affine


@dataclass
class Ridge:
    alpha: float = 1.0
    coef: np.ndarray | None = None
    intercept: float = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Ridge":
        # float64 normal equations on centred data: exact, and faster than float32 solvers.
        x64 = x.astype(np.float64)
        mean_x, mean_y = x64.mean(axis=0), float(np.mean(y))
        xc = x64 - mean_x
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self.coef = np.linalg.solve(gram, xc.T @ (np.asarray(y, dtype=np.float64) - mean_y))
        self.intercept = mean_y - float(mean_x @ self.coef)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.coef is not None
        return affine(x, self.coef, self.intercept)


# Artifacts pickle the model by its class's name, and this class was stepkit.ml.models.Ridge when
# artifacts began: kept (stepkit.ml.models imports it), so older artifacts load and a model's
# bytes, hence its version, do not depend on where the class lives.
Ridge.__module__ = "stepkit.ml.models"


class RidgeKind(ModelKind):
    name = "ridge"
    needs_filled = True
    rank = 2  # milliseconds: last

    def fits(self, spec, raw, filled, y, nthread):
        return [lambda: Ridge(alpha=float(spec.params.get("alpha", 1.0))).fit(filled, y)]

    def predict(self, model: Any, quantiles, raw, filled):
        return model.predict(filled if filled is not None else raw), None
