"""Calibrated class probabilities: Platt scaling, and its multiclass form, fitted on held-out rows.

A classifier's scores (logits: log-odds, or one margin per class) are turned into probabilities
by softmax(a * z + b), with one slope `a` for every class and one bias per class (the first
class's fixed at 0). For two classes that is Platt's sigmoid(a * logit + b); for more it is
temperature scaling (1 / a) with a bias per class ("bias-corrected temperature scaling").

Why this and not isotonic regression or conformal sets: the pipeline reports a class and its
probability, so a probability is what must be calibrated (a conformal set answers another
question: which classes, at a coverage). Isotonic regression fits a step function per class;
with a few thousand calibration rows its steps overfit, and its multiclass form (one per class,
renormalised) is no longer calibrated. These K parameters are fitted by Newton's method on the
log loss, which is convex in them: the fit is exact, fast, and needs no SciPy in the images.
"""
from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 50
# A small ridge on the biases: a class absent from the calibration rows keeps a finite bias.
RIDGE = 1e-3


def softmax(u: np.ndarray) -> np.ndarray:
    u = u - u.max(axis=1, keepdims=True)
    e = np.exp(u)
    return e / e.sum(axis=1, keepdims=True)


def apply(z: np.ndarray, params: dict) -> np.ndarray:
    """Calibrated probabilities (rows x classes, float64) of logits `z`."""
    z = np.asarray(z, dtype=np.float64)
    return softmax(params["a"] * z + np.asarray(params["b"], dtype=np.float64))


def fit(z: np.ndarray, y: np.ndarray) -> dict:
    """{a, b} minimising the log loss of softmax(a * z + b) on rows with logits `z` and classes `y`."""
    z = np.asarray(z, dtype=np.float64)
    n, k = z.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), np.asarray(y, dtype=np.int64)] = 1.0
    theta = np.zeros(k)  # [a, b_1 .. b_{k-1}]
    theta[0] = 1.0

    def loss(t: np.ndarray) -> float:
        u = t[0] * z
        u[:, 1:] += t[1:]
        m = u.max(axis=1, keepdims=True)
        lse = (m[:, 0] + np.log(np.exp(u - m).sum(axis=1)))
        return float((lse - (u * onehot).sum(axis=1)).sum() + 0.5 * RIDGE * (t[1:] ** 2).sum())

    current = loss(theta)
    for _ in range(MAX_ITERATIONS):
        u = theta[0] * z
        u[:, 1:] += theta[1:]
        p = softmax(u)
        # Gradient and Hessian of the loss in theta: d u_ik / d a = z_ik, d u_ik / d b_k = 1 (k >= 1).
        r = p - onehot
        pz = p * z
        s = pz.sum(axis=1)  # E_p[z] per row
        grad = np.empty(k)
        grad[0] = float((r * z).sum())
        grad[1:] = r[:, 1:].sum(axis=0) + RIDGE * theta[1:]
        hess = np.empty((k, k))
        hess[0, 0] = float((pz * z).sum() - (s * s).sum())
        hess[0, 1:] = hess[1:, 0] = pz[:, 1:].sum(axis=0) - (s[:, None] * p[:, 1:]).sum(axis=0)
        hess[1:, 1:] = np.diag(p[:, 1:].sum(axis=0)) - p[:, 1:].T @ p[:, 1:] + RIDGE * np.eye(k - 1)
        hess += 1e-9 * np.eye(k)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:  # halve the step until the loss falls
            candidate = theta - scale * step
            value = loss(candidate)
            if value <= current:
                break
            scale /= 2
        else:
            break
        done = current - value < 1e-10 * max(1.0, abs(current))
        theta, current = candidate, value
        if done:
            break
    # A slope at or below 0 would reverse the model's ranking: keep the model's order of classes.
    a = max(float(theta[0]), 1e-3)
    return {"method": "platt" if k == 2 else "temperature", "a": a, "b": [0.0, *map(float, theta[1:])]}
