"""Demo data's numeric targets: how each is drawn from the features, and the floor it states (see
stepkit/demo_data.py for the model and why the floor is exact)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

NOISE_SHARE = 0.22  # noise sd as a share of the target's sd


@dataclass
class NumberPlan:
    """How a numeric target is drawn: target = clip(round(mean + sum_j weights_j shape_j(x_j) + e))."""

    name: str
    path: list[str]
    target: Any
    weights: np.ndarray
    mean: float
    noise_sd: float
    contribution_var: dict[str, float]


def number(t: Any, path: list[str], plans: list[Any], weights: np.ndarray, probe: np.random.Generator) -> NumberPlan:
    """Weights scaled so the effects' variances add up to the target's signal variance."""
    sd = (t.max - t.min) / 6.5
    var = np.array([(w * p.shape(p.draw(probe, 100_000))).var() if w else 0.0 for p, w in zip(plans, weights)])
    total = float(var.sum()) or 1.0
    signal = sd**2 * (1 - NOISE_SHARE**2)
    return NumberPlan(t.name, path, t, weights * math.sqrt(signal / total),
                      t.min + 0.37 * (t.max - t.min), sd * NOISE_SHARE,
                      {p.name: float(v * signal / total) for p, v in zip(plans, var)})


@dataclass
class Floor:
    """Running sums of the oracle's error on rows the pipeline can use."""

    rows: int = 0
    abs_err: float = 0.0
    sq_err: float = 0.0
    gauss: float = 0.0  # sum of sigma_row * sqrt(2/pi): the Gaussian approximation
    y_sum: float = 0.0
    y_sq: float = 0.0

    def add(self, y: np.ndarray, pred: np.ndarray, sigma: np.ndarray) -> None:
        self.rows += int(y.size)
        self.abs_err += float(np.abs(y - pred).sum())
        self.sq_err += float(((y - pred) ** 2).sum())
        self.gauss += float(sigma.sum() * math.sqrt(2 / math.pi))
        self.y_sum += float(y.sum())
        self.y_sq += float((y**2).sum())

    def merge(self, other: "Floor") -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def summary(self) -> dict[str, float]:
        n = max(self.rows, 1)
        var_y = self.y_sq / n - (self.y_sum / n) ** 2
        return {"bayes_floor_mae": self.abs_err / n, "bayes_floor_rmse": math.sqrt(self.sq_err / n),
                "bayes_floor_r2": 1 - (self.sq_err / n) / var_y if var_y > 0 else 0.0,
                "bayes_floor_mae_gaussian": self.gauss / n}
