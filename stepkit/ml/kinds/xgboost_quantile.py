"""`xgboost_quantile`: one xgboost Booster per quantile (lower, median, upper), on quantile loss.

One booster per quantile, not one booster with a column per quantile: the same trees (xgboost
grows one tree per quantile per round either way, from that quantile's gradients only;
predictions equal to 1e-4 in tests/test_ml_parts.py), but its leaf update sorts the rows of
every leaf on one core, which made the multi-quantile fit the longest serial piece of a run;
three boosters spread that over the cores (benchmarks/e2e_local.py). Each fit bins the data
itself: xgboost does not document training from one DMatrix in several threads at once as safe.
"""
from __future__ import annotations

import numpy as np

from stepkit.ml import models
from stepkit.ml.kinds.base import ModelKind
from stepkit.ml.kinds.xgboost import boosters


class XGBoostQuantileKind(ModelKind):
    name = "xgboost_quantile"
    rank = 0  # the longest fits: first
    category_codes = True

    def fit_count(self, spec):
        return len(spec.quantiles)

    def fits(self, spec, raw, filled, y, nthread, feature_types=None):
        return [lambda a=a: models.fit_xgboost(raw, y, dict(spec.params), [a], nthread, feature_types)
                for a in spec.quantiles]

    def assemble(self, spec, parts):
        return list(parts), list(spec.quantiles)

    def predict(self, model, quantiles, raw, filled):
        # One booster per quantile (older artifacts: one booster with a column per quantile).
        out = np.column_stack([b.inplace_predict(raw) for b in boosters(model)])
        # Quantiles fitted separately may cross; ordering them is the cheap repair (Chernozhukov
        # et al. 2010: the sorted curve is never worse).
        q = np.sort(out, axis=1)
        return q[:, 1], q
