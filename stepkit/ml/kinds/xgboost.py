"""`xgboost`: gradient-boosted trees on squared error, kept as a raw Booster and scored with
`inplace_predict` (no DMatrix copy). Missing values stay NaN: the trees route them."""
from __future__ import annotations

from typing import Any

from stepkit.ml import models
from stepkit.ml.kinds.base import ModelKind


def boosters(model: Any) -> list[Any]:
    """The model's Boosters, each set to this process's thread count (a model keeps the count it
    was trained with, which need not be this machine's)."""
    out = model if isinstance(model, list) else [model]
    for b in out:
        b.set_param({"nthread": models.threads()})
    return out


class XGBoostKind(ModelKind):
    name = "xgboost"
    rank = 1
    category_codes = True  # categorical splits: 21 columns at the demo's features, not 40 one-hot

    def fits(self, spec, raw, filled, y, nthread, feature_types=None):
        # models.fit_xgboost, looked up when called: the xgboost training both xgboost kinds share.
        return [lambda: models.fit_xgboost(raw, y, dict(spec.params), nthread=nthread, feature_types=feature_types)]

    def predict(self, model, quantiles, raw, filled):
        return boosters(model)[0].inplace_predict(raw), None
