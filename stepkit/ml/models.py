"""The three model kinds of the spec: fit on encoded rows, predict point and quantiles.

Ridge is solved here in numpy (the same closed form as scikit-learn's Ridge with an
unpenalised intercept) so the worker images need neither scikit-learn nor SciPy.
XGBoost models are kept as raw Boosters and scored with `inplace_predict` (no DMatrix copy).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# OpenMP threads spin while waiting by default; where cores are shared (a local run's worker
# processes, a busy CI box) that spinning made training 6-18x slower here. Set before xgboost loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_XGB_DEFAULTS = {"tree_method": "hist", "seed": 0, "max_bin": 256}
# Spec names (scikit-learn style) -> xgboost.train names.
_ALIASES = {"learning_rate": "eta", "reg_lambda": "lambda", "reg_alpha": "alpha", "random_state": "seed"}


@dataclass
class Ridge:
    alpha: float = 1.0
    coef: np.ndarray | None = None
    intercept: float = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Ridge":
        # float64 normal equations on centred data: exact, and faster than float32 solvers (tooling.md).
        x64 = x.astype(np.float64)
        mean_x, mean_y = x64.mean(axis=0), float(np.mean(y))
        xc = x64 - mean_x
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self.coef = np.linalg.solve(gram, xc.T @ (np.asarray(y, dtype=np.float64) - mean_y))
        self.intercept = mean_y - float(mean_x @ self.coef)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.coef is not None
        return x @ self.coef.astype(np.float32) + np.float32(self.intercept)


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


def fit_xgboost(x: np.ndarray, y: np.ndarray, params: dict[str, Any], quantiles: list[float] | None = None,
                nthread: int | None = None):
    import xgboost as xgb

    p, rounds = _xgb_params(params, nthread)
    if quantiles:
        p.update({"objective": "reg:quantileerror", "quantile_alpha": np.asarray(quantiles)})
    else:
        p.setdefault("objective", "reg:squarederror")
    # QuantileDMatrix bins once, in place of a float copy of the data (less memory at 14M rows).
    dtrain = xgb.QuantileDMatrix(x, label=y, max_bin=p["max_bin"], nthread=p["nthread"])
    return xgb.train(p, dtrain, num_boost_round=rounds)


@dataclass
class Fitted:
    """A trained model of one kind, able to score encoded rows."""

    name: str
    kind: str  # ridge | xgboost | xgboost_quantile
    model: Any
    quantiles: list[float] | None = None

    def predict(self, raw: np.ndarray, filled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(point, quantiles or None). `raw` has NaN for missing values; `filled` is the linear input."""
        if self.kind == "ridge":
            return self.model.predict(filled if filled is not None else raw), None
        boosters = self.model if isinstance(self.model, list) else [self.model]
        for b in boosters:
            b.set_param({"nthread": threads()})
        if self.kind == "xgboost_quantile":
            # One booster per quantile (older artifacts: one booster with a column per quantile).
            out = np.column_stack([b.inplace_predict(raw) for b in boosters])
            # Quantiles fitted separately may cross; ordering them is the cheap repair (Chernozhukov
            # et al. 2010: the sorted curve is never worse).
            q = np.sort(out, axis=1)
            return q[:, 1], q
        return boosters[0].inplace_predict(raw), None

    @property
    def needs_filled(self) -> bool:
        return self.kind == "ridge"


def fits(spec: Any, raw: np.ndarray, filled: np.ndarray, y: np.ndarray, nthread: int | None = None
         ) -> list[Callable[[], Any]]:
    """The model's fits, each a callable that may run in its own thread (xgboost releases the GIL);
    `assemble` makes their results one Fitted. `nthread`: xgboost's threads per fit.

    A quantile model is one booster per quantile, not one booster with a column per quantile: the
    same trees (xgboost grows one tree per quantile per round either way, from that quantile's
    gradients only; predictions equal to 1e-4 in tests/test_ml_parts.py), but its leaf update
    sorts the rows of every leaf on one core, which made the multi-quantile fit the longest serial
    piece of a run; three boosters spread that over the cores (benchmarks/e2e_local.py).
    Each fit bins the data itself: xgboost does not document training from one DMatrix in
    several threads at once as safe."""
    if spec.kind == "ridge":
        return [lambda: Ridge(alpha=float(spec.params.get("alpha", 1.0))).fit(filled, y)]
    if spec.kind == "xgboost":
        return [lambda: fit_xgboost(raw, y, dict(spec.params), nthread=nthread)]
    return [lambda a=a: fit_xgboost(raw, y, dict(spec.params), [a], nthread) for a in spec.quantiles]


def fit_count(spec: Any) -> int:
    """How many fits `fits` gives for the model."""
    return len(spec.quantiles) if spec.kind == "xgboost_quantile" else 1


def assemble(spec: Any, parts: list[Any]) -> Fitted:
    if spec.kind == "xgboost_quantile":
        return Fitted(spec.name, spec.kind, list(parts), list(spec.quantiles))
    return Fitted(spec.name, spec.kind, parts[0])

