"""`logistic`: multinomial logistic regression with an L2 penalty, on the imputed, standardised input.

Fitted here in numpy by L-BFGS on the summed log loss plus `alpha`/2 times the squared weights
(no penalty on the intercepts: scikit-learn's LogisticRegression with C = 1 / alpha), so the
worker images need neither scikit-learn nor SciPy. Two classes are the same model with two
outputs: the softmax of two linear scores is the sigmoid of their difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stepkit.ml.kinds.base import ModelKind
from stepkit.ml.linear import affine

MAX_ITERATIONS = 300
MEMORY = 10  # L-BFGS: the last 10 steps shape the next


@dataclass
class Logistic:
    alpha: float = 1.0
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None  # (features + 1) x classes, the intercept in the last row

    def fit(self, x: np.ndarray, y: np.ndarray, classes: int) -> "Logistic":
        x64 = np.asarray(x, dtype=np.float64)
        self.mean = x64.mean(axis=0)
        sd = x64.std(axis=0)
        self.scale = np.where(sd > 1e-12, sd, 1.0)
        xs = np.hstack([(x64 - self.mean) / self.scale, np.ones((x.shape[0], 1))])
        onehot = np.zeros((x.shape[0], classes))
        onehot[np.arange(x.shape[0]), np.asarray(y, dtype=np.int64)] = 1.0
        penalty = np.ones((xs.shape[1], classes))
        penalty[-1] = 0.0  # intercepts

        def value_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
            w = w.reshape(xs.shape[1], classes)
            u = xs @ w
            m = u.max(axis=1, keepdims=True)
            e = np.exp(u - m)
            total = e.sum(axis=1, keepdims=True)
            loss = float((m[:, 0] + np.log(total[:, 0]) - (u * onehot).sum(axis=1)).sum())
            grad = xs.T @ (e / total - onehot) + self.alpha * penalty * w
            return loss + 0.5 * self.alpha * float((penalty * w * w).sum()), grad.ravel()

        self.coef = _lbfgs(value_and_grad, np.zeros(xs.shape[1] * classes)).reshape(xs.shape[1], classes)
        return self

    def logits(self, x: np.ndarray) -> np.ndarray:
        assert self.coef is not None and self.mean is not None and self.scale is not None
        w = self.coef[:-1] / self.scale[:, None]
        b = self.coef[-1] - (self.mean / self.scale) @ self.coef[:-1]
        return affine(x, w, b)


def _lbfgs(f: Any, w: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """Minimise f (value and gradient) from w: L-BFGS with a backtracking (Armijo) line search."""
    value, grad = f(w)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    scale0 = max(1.0, float(np.abs(grad).max()))
    for _ in range(MAX_ITERATIONS):
        if float(np.abs(grad).max()) <= tolerance * scale0:
            break
        q = grad.copy()
        alphas = []
        for s, yv, rho in reversed(steps):
            a = rho * float(s @ q)
            alphas.append(a)
            q -= a * yv
        if steps:
            s, yv, _ = steps[-1]
            q *= float(s @ yv) / float(yv @ yv)
        else:
            q /= scale0
        for (s, yv, rho), a in zip(steps, reversed(alphas)):
            q += s * (a - rho * float(yv @ q))
        direction = -q
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction: start over from the gradient
            steps.clear()
            direction, slope = -grad / scale0, -float(grad @ grad) / scale0
        t = 1.0
        while True:
            candidate = w + t * direction
            new_value, new_grad = f(candidate)
            if new_value <= value + 1e-4 * t * slope or t < 1e-10:
                break
            t /= 2
        if t < 1e-10:
            break
        s, yv = candidate - w, new_grad - grad
        sy = float(s @ yv)
        if sy > 1e-12:
            steps.append((s, yv, 1.0 / sy))
            del steps[:-MEMORY]
        done = value - new_value <= 1e-12 * max(1.0, abs(value))
        w, value, grad = candidate, new_value, new_grad
        if done:
            break
    return w


class LogisticKind(ModelKind):
    name = "logistic"
    task = "classification"
    needs_filled = True
    rank = 2

    def fits(self, spec, raw, filled, y, nthread, classes=None):
        return [lambda: Logistic(alpha=float(spec.params.get("alpha", 1.0))).fit(filled, y, int(classes or 2))]

    def logits(self, model: Any, raw, filled):
        return model.logits(filled if filled is not None else raw)
