"""`xgboost_classifier`: gradient-boosted trees on the log loss (binary:logistic for two classes,
multi:softprob for more), kept as a raw Booster and scored with `inplace_predict` as margins
(the logits calibration reads). Missing values stay NaN: the trees route them."""
from __future__ import annotations

import numpy as np

from stepkit.ml import models
from stepkit.ml.kinds.base import ModelKind
from stepkit.ml.kinds.xgboost import boosters


class XGBoostClassifierKind(ModelKind):
    name = "xgboost_classifier"
    task = "classification"
    rank = 1
    category_codes = True

    def fits(self, spec, raw, filled, y, nthread, classes=None, feature_types=None):
        k = int(classes or 2)
        objective = {"objective": "binary:logistic"} if k == 2 else {"objective": "multi:softprob", "num_class": k}
        return [lambda: models.fit_xgboost(raw, y, {**objective, **spec.params}, nthread=nthread,
                                           feature_types=feature_types)]

    def logits(self, model, raw, filled):
        margin = boosters(model)[0].inplace_predict(raw, predict_type="margin")
        if margin.ndim == 1:  # binary: the log-odds of the second class
            return np.column_stack([np.zeros_like(margin), margin])
        return margin
