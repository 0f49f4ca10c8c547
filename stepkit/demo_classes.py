"""Demo data's class targets (boolean, category), and the floor they state: the best accuracy and
log loss any model can reach on what survives the mess.

How a class is drawn (a multinomial logit model over the same features as the numeric targets):
    score_k(x) = bias_k + sum_j shape_j(x_j) * W_jk,   class ~ softmax(score)
`shape_j` is the feature's position in its range, squared (keeping its sign) for the non-linear
ones (demo_data.FeaturePlan.shape). Given the features the pipeline can read (a value missing,
null, wrongly typed, out of range or an unknown category is unknown to it, as the SQL makes it),
the Bayes-optimal probabilities are the mean of softmax(score) over the unknown features'
distribution. The generator knows that distribution, so it estimates them by Monte Carlo
(`DRAWS` draws of every unknown value per row, on up to `FLOOR_ROWS` usable rows of each chunk).
The floor it states:
    bayes_floor_accuracy   mean over rows of max_k P(k | known)    (what the best model is right on)
    bayes_floor_log_loss   mean over rows of -sum_k P log P         (the best expected log loss)
both expectations given the known features (the realised figures on the drawn labels are stated
beside them). A class's ECE is 0 for these probabilities by construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DRAWS = 256
FLOOR_ROWS = 5_000  # per chunk: the Monte Carlo costs DRAWS x classes per unknown value
SCORE_SD = 1.6  # the spread of a class's score: the classes are neither coin flips nor certain
TARGET_MESS = {"wrong_type": 0.01, "out_of_range": 0.005, "null": 0.005, "upper_case": 0.02}


@dataclass
class ClassPlan:
    """How one class target is drawn."""

    name: str
    path: list[str]
    type: str  # boolean or category
    classes: list[str]
    weights: np.ndarray  # features x classes
    bias: np.ndarray  # classes

    def scores(self, shapes: list[np.ndarray]) -> np.ndarray:
        out = np.tile(self.bias, (shapes[0].size if shapes else 0, 1))
        for j, s in enumerate(shapes):
            out += s[:, None] * self.weights[j]
        return out


def plan(target: Any, path: list[str], features: list[Any], index: int, seed: int) -> ClassPlan:
    """Weights and biases of a class target: each feature's effect decays with a random rank, as the
    numeric targets' do; the biases give the classes unequal, not vanishing, shares."""
    classes = target.classes
    k = len(classes)
    rng = np.random.default_rng([seed, 0xC1A55, index])
    order = rng.permutation(len(features))
    weights = np.stack([(1 + rank) ** -0.8 * rng.normal(size=k) for rank in order]) if features else np.zeros((0, k))
    weights -= weights.mean(axis=1, keepdims=True)  # only differences between classes matter
    probe = np.random.default_rng([seed, 0x5CA1E, index])
    shapes = [f.shape(f.draw(probe, 50_000)) for f in features]
    spread = ClassPlan("", [], "", classes, weights, np.zeros(k)).scores(shapes).std(axis=0).mean() if features else 0.0
    if spread > 0:
        weights *= SCORE_SD / spread
    bias = rng.normal(scale=0.5, size=k)
    return ClassPlan(target.name, path, target.type, classes, weights, bias - bias.mean())


@dataclass
class ClassFloor:
    """Running sums of the Bayes posterior's figures on the usable labelled rows it was measured on."""

    rows: int = 0
    expected_accuracy: float = 0.0
    realised_accuracy: float = 0.0
    expected_log_loss: float = 0.0
    realised_log_loss: float = 0.0
    counts: list[int] = field(default_factory=list)

    def add(self, posterior: np.ndarray, y: np.ndarray) -> None:
        p = np.clip(posterior, 1e-15, 1.0)
        self.rows += int(y.size)
        self.expected_accuracy += float(posterior.max(axis=1).sum())
        self.realised_accuracy += float((posterior.argmax(axis=1) == y).sum())
        self.expected_log_loss += float(-(posterior * np.log(p)).sum())
        self.realised_log_loss += float(-np.log(p[np.arange(y.size), y]).sum())

    def merge(self, other: "ClassFloor") -> None:
        for k in ("rows", "expected_accuracy", "realised_accuracy", "expected_log_loss", "realised_log_loss"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.counts = [a + b for a, b in zip(self.counts or [0] * len(other.counts), other.counts)]

    def summary(self) -> dict[str, float]:
        n = max(self.rows, 1)
        shares = np.asarray(self.counts, dtype=float) / max(sum(self.counts), 1)
        return {"bayes_floor_accuracy": self.expected_accuracy / n,
                "bayes_floor_log_loss": self.expected_log_loss / n,
                "bayes_realised_accuracy": self.realised_accuracy / n,
                "bayes_realised_log_loss": self.realised_log_loss / n,
                "majority_class_accuracy": float(shares.max()) if shares.size else 0.0,
                "floor_rows": self.rows}


def draw(cp: ClassPlan, shapes: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Class codes of n rows, from the full scores (every feature, known or not)."""
    scores = cp.scores(shapes)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # Inverse CDF on one uniform a row: deterministic for a seed, vectorised.
    return (rng.random(p.shape[0])[:, None] > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)


def posterior(cp: ClassPlan, features: list[Any], shapes: list[np.ndarray], usable: list[np.ndarray],
              rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """P(class | the features the pipeline can read) of `rows`, by Monte Carlo over the unknown ones."""
    known = [np.where(u[rows], s[rows], 0.0) for s, u in zip(shapes, usable)]
    base = cp.scores(known)  # rows x classes
    total = np.repeat(base[:, None, :], DRAWS, axis=1)  # rows x draws x classes
    for j, (f, u) in enumerate(zip(features, usable)):
        unknown = np.flatnonzero(~u[rows])
        if unknown.size and np.any(cp.weights[j]):
            alt = f.shape(f.draw(rng, unknown.size * DRAWS)).reshape(unknown.size, DRAWS)
            total[unknown] += alt[:, :, None] * cp.weights[j]
    total -= total.max(axis=2, keepdims=True)
    e = np.exp(total)
    return (e / e.sum(axis=2, keepdims=True)).mean(axis=1)


def text(cp: ClassPlan, y: np.ndarray, labelled: np.ndarray, rng: np.random.Generator) -> tuple[pa.Array, np.ndarray]:
    """(JSON value text, null where the field is absent; the rows whose label the pipeline can read)."""
    n = y.size
    edges = np.cumsum(list(TARGET_MESS.values()))
    mess = np.searchsorted(edges, rng.random(n), side="right")
    kinds = list(TARGET_MESS)
    if cp.type == "boolean":
        words = ["false", "true"]
        value = pa.array(words).take(pa.array(y))
        upper = value  # JSON's literals are lower case: no upper-case mess for a boolean
        out_of_range = pa.scalar("2")
    else:
        value = pc.binary_join_element_wise('"', pa.array(cp.classes).take(pa.array(y)), '"', "")
        upper = pc.binary_join_element_wise('"', pa.array([c.upper() for c in cp.classes]).take(pa.array(y)), '"', "")
        out_of_range = pa.scalar('"not_a_class"')
    out = pc.if_else(pa.array(mess == kinds.index("wrong_type")), pa.scalar('"unknown"' if cp.type == "boolean"
                                                                            else "7"), value)
    out = pc.if_else(pa.array(mess == kinds.index("out_of_range")), out_of_range, out)
    out = pc.if_else(pa.array(mess == kinds.index("null")), pa.scalar("null"), out)
    out = pc.if_else(pa.array(mess == kinds.index("upper_case")), upper, out)
    out = pc.if_else(pa.array(labelled), out, pa.scalar(None, pa.string()))
    # An upper-case class survives the SQL's lower().
    readable = (mess == len(kinds)) | (mess == kinds.index("upper_case"))
    return out, labelled & readable


def meta(cp: ClassPlan, floor: ClassFloor) -> dict[str, Any]:
    return {"type": cp.type, "classes": cp.classes, "class_shares": [round(c / max(sum(floor.counts), 1), 4)
                                                                    for c in floor.counts],
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in floor.summary().items()},
            "floor_note": f"Bayes-optimal class probabilities given the features that survive the mess (Monte Carlo, "
                          f"{DRAWS} draws of each unknown value, on up to {FLOOR_ROWS:,} usable labelled rows a chunk): "
                          "their expected accuracy and log loss", "score_sd": SCORE_SD,
            "effect_sd": round(math.sqrt(float((cp.weights ** 2).sum(axis=1).mean())), 4) if cp.weights.size else 0.0}
