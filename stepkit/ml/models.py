"""Models of every kind: fit on encoded rows, predict point and quantiles.

What differs by kind lives in one class per kind (stepkit/ml/kinds/); this module dispatches to
them by the spec's (or the artifact's) kind name, and holds what kinds share: the thread count
and the xgboost training call.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from stepkit.ml import kinds
from stepkit.ml.kinds.ridge import Ridge  # noqa: F401 - artifacts pickle the ridge model by this name

# OpenMP threads spin while waiting by default; where cores are shared (a local run's worker
# processes, a busy CI box) that spinning made training 6-18x slower here. Set before xgboost loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_XGB_DEFAULTS = {"tree_method": "hist", "seed": 0, "max_bin": 256}
# Spec names (scikit-learn style) -> xgboost.train names.
_ALIASES = {"learning_rate": "eta", "reg_lambda": "lambda", "reg_alpha": "alpha", "random_state": "seed"}


def threads() -> int:
    return int(os.environ.get("STEPKIT_THREADS", "0")) or os.cpu_count() or 1


def _xgb_params(params: dict[str, Any], nthread: int | None = None) -> tuple[dict[str, Any], int]:
    p = {**_XGB_DEFAULTS, "nthread": nthread or threads()}
    rounds = 100
    for k, v in params.items():
        if k in ("n_estimators", "num_boost_round"):
            rounds = int(v)
        else:
            p[_ALIASES.get(k, k)] = v
    return p, rounds


# The cores an xgboost fit may use now, where fits share the machine (fitting.fit_all): per fit thread.
_SHARE = threading.local()


@contextmanager
def sharing(share: Callable[[], int]) -> Iterator[None]:
    """xgboost fits made in this block ask `share()` after each round how many threads to use: a fit
    left alone when the others end takes the cores they leave. xgboost's hist trees do not depend on
    the thread count (tests/test_ml_kinds.py checks the bytes), so neither does the model."""
    _SHARE.share = share
    try:
        yield
    finally:
        _SHARE.share = None


def _rethread(share: Callable[[], int], nthread: int) -> Any:
    import xgboost as xgb

    class Rethread(xgb.callback.TrainingCallback):
        def __init__(self) -> None:
            super().__init__()
            self.nthread = nthread

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            n = share()
            if n != self.nthread:
                model.set_param({"nthread": n})
                self.nthread = n
            return False  # go on

    return Rethread()


def fit_xgboost(x: np.ndarray, y: np.ndarray, params: dict[str, Any], quantiles: list[float] | None = None,
                nthread: int | None = None, feature_types: list[str] | None = None):
    """A Booster. `feature_types`: xgboost's per column ("c": a category code, split on as a category)."""
    import xgboost as xgb

    p, rounds = _xgb_params(params, nthread)
    if quantiles:
        p.update({"objective": "reg:quantileerror", "quantile_alpha": np.asarray(quantiles)})
    else:
        p.setdefault("objective", "reg:squarederror")
    # QuantileDMatrix bins once, in place of a float copy of the data (less memory at 14M rows).
    categorical = bool(feature_types) and "c" in feature_types
    dtrain = xgb.QuantileDMatrix(x, label=y, max_bin=p["max_bin"], nthread=p["nthread"],
                                 feature_types=feature_types if categorical else None,
                                 enable_categorical=categorical)
    share = getattr(_SHARE, "share", None)
    if share is None:
        return xgb.train(p, dtrain, num_boost_round=rounds)
    booster = xgb.train(p, dtrain, num_boost_round=rounds, callbacks=[_rethread(share, p["nthread"])])
    # A pickled Booster carries its nthread: back to the one it started with, which depends on the
    # core count and the spec only, so the artifact's bytes (its version) do not depend on timing.
    booster.set_param({"nthread": p["nthread"]})
    return booster


@dataclass
class Fitted:
    """A trained model of one kind, able to score encoded rows."""

    name: str
    kind: str  # a name in stepkit.ml.kinds
    model: Any
    quantiles: list[float] | None = None
    # What `raw` must be: "onehot" (Encoder.raw) or "codes" (Encoder.codes). Artifacts from before
    # there were codes have no such entry: one-hot.
    encoding: str = "onehot"

    def predict(self, raw: np.ndarray, filled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(point, quantiles or None). `raw` (in this model's `encoding`) has NaN for missing values;
        `filled` is the linear input."""
        return kinds.get(self.kind).predict(self.model, self.quantiles, raw, filled)

    def logits(self, raw: np.ndarray, filled: np.ndarray | None = None) -> np.ndarray:
        """Classification: one score per class (rows x classes)."""
        return np.asarray(kinds.get(self.kind).logits(self.model, raw, filled), dtype=np.float64)

    @property
    def needs_filled(self) -> bool:
        return kinds.get(self.kind).needs_filled


def encoding(kind: str) -> str:
    """The matrix a kind's models read: "codes" when it asks for category codes, else "onehot"."""
    return "codes" if getattr(kinds.get(kind), "category_codes", False) else "onehot"


def fits(spec: Any, raw: np.ndarray, filled: np.ndarray, y: np.ndarray, nthread: int | None = None,
         classes: int | None = None, feature_types: list[str] | None = None) -> list[Callable[[], Any]]:
    """The model's fits, each a callable that may run in its own thread (xgboost releases the GIL);
    `assemble` makes their results one Fitted. `raw`: the matrix in the kind's `encoding`;
    `nthread`: xgboost's threads per fit; `classes`: how many classes a classifier's codes `y`
    range over; `feature_types`: the codes matrix's, for a kind that reads codes."""
    kind = kinds.get(spec.kind)
    extra: dict[str, Any] = {}
    if getattr(kind, "task", "regression") == "classification":
        extra["classes"] = classes
    if encoding(spec.kind) == "codes":
        extra["feature_types"] = feature_types
    return kind.fits(spec, raw, filled, y, nthread, **extra)


def fit_count(spec: Any) -> int:
    """How many fits `fits` gives for the model."""
    return kinds.get(spec.kind).fit_count(spec)


def rank(spec: Any) -> int:
    """Where the model's fits start in training's queue: lowest first (the longest fits)."""
    return kinds.get(spec.kind).rank


def assemble(spec: Any, parts: list[Any]) -> Fitted:
    model, quantiles = kinds.get(spec.kind).assemble(spec, parts)
    return Fitted(spec.name, spec.kind, model, quantiles, encoding(spec.kind))
