"""The ML building parts: encoding, ridge, conformal calibration, metrics, quantile ordering."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from stepkit.ml import conformal, metrics, models
from stepkit.ml.encoding import Encoder
from stepkit.ml.models import Fitted, Ridge, fit_xgboost
from stepkit.spec.models import ModelSpec


def _feature(name, type_, categories=None, missing="median"):
    return SimpleNamespace(name=name, type=type_, categories=categories, missing=missing)


ENCODER = Encoder.from_spec([
    _feature("n", "double"),
    _feature("k", "integer", missing="zero"),
    _feature("b", "boolean", missing="keep"),
    _feature("c", "category", categories=["Red", "blue"]),
])
ROWS = pa.table({
    "n": pa.array([1.5, None, 3.5, 2.0], pa.float64()),
    "k": pa.array([4, 5, None, 7], pa.int32()),
    "b": pa.array([True, None, False, True]),
    "c": pa.array(["red", "other", None, "blue"]),
})
NAN = np.nan


def test_columns_one_hot_over_known_categories_and_other():
    assert ENCODER.columns == ["n", "k", "b", "c=red", "c=blue", "c=other"]


@pytest.mark.parametrize("row, raw", [
    (0, [1.5, 4, 1, 1, 0, 0]),
    (1, [NAN, 5, NAN, 0, 0, 1]),
    (2, [3.5, NAN, 0, 0, 0, 0]),  # a missing category: all zeros
    (3, [2.0, 7, 1, 0, 1, 0]),
])
def test_raw_matrix_keeps_missing_as_nan(row, raw):
    x = ENCODER.raw(ROWS)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x[row], np.array(raw, dtype=np.float32))


@pytest.mark.parametrize("row, filled", [
    (1, [2.0, 5, 1, 0, 0, 1]),  # n: median of training rows (1.5, 2.0, 3.5 -> 2.0); b (keep): median too
    (2, [3.5, 0, 0, 0, 0, 0]),  # k: missing -> zero by policy
])
def test_linear_matrix_fills_per_policy_with_learned_medians(row, filled):
    enc = Encoder.from_dict(Encoder.from_spec(ENCODER_SPEC).fit(ROWS).to_dict())  # survives the artifact
    np.testing.assert_array_equal(enc.fill(enc.raw(ROWS))[row], np.array(filled, dtype=np.float32))


ENCODER_SPEC = [
    _feature("n", "double"), _feature("k", "integer", missing="zero"), _feature("b", "boolean", missing="keep"),
    _feature("c", "category", categories=["Red", "blue"]),
]


def test_missing_indicators_per_input_feature():
    np.testing.assert_array_equal(ENCODER.missing_indicators(ENCODER.raw(ROWS)),
                                  [[0, 0, 0, 0], [1, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]])


def test_ridge_matches_scikit_learn():
    from sklearn.linear_model import Ridge as SkRidge

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    y = x @ np.arange(6) + 3 + rng.normal(size=500)
    ours, theirs = Ridge(alpha=2.5).fit(x, y), SkRidge(alpha=2.5).fit(x.astype(np.float64), y)
    np.testing.assert_allclose(ours.coef, theirs.coef_, rtol=1e-6)
    assert ours.intercept == pytest.approx(theirs.intercept_, rel=1e-6)


@pytest.mark.parametrize("n, coverage, level", [(4, 0.8, 1.0), (9, 0.8, 8 / 9), (99, 0.8, 0.8080808), (999, 0.9, 0.9009009)])
def test_conformal_level_has_the_finite_sample_correction(n, coverage, level):
    assert conformal.quantile_level(n, coverage) == pytest.approx(level)


def _heteroscedastic(rng, n):
    x = rng.random((n, 1)).astype(np.float32)
    missing = (rng.random((n, 1)) < 0.3).astype(np.float32)
    y = 3 * x[:, 0] + rng.normal(size=n) * (0.5 + 2 * missing[:, 0])
    return x, missing, y


@pytest.mark.parametrize("method", ["cqr", "normalised", "absolute"])
def test_calibrated_interval_covers_the_target_share_on_unseen_rows(method):
    rng = np.random.default_rng(1)
    x, missing, y = _heteroscedastic(rng, 60_000)
    fit_, cal, test = slice(0, 20_000), slice(20_000, 40_000), slice(40_000, None)
    point = 3 * x[:, 0]
    if method == "cqr":  # a deliberately too-narrow quantile band: calibration must widen it
        lower, upper = point - 0.3, point + 0.3
        q = conformal.calibrate(conformal.cqr_scores(y[cal], lower[cal], upper[cal]), 0.8)
        lower, upper = lower - q, upper + q
    else:
        scale = (conformal.ScaleModel.fit(missing[fit_], y[fit_] - point[fit_])(missing)
                 if method == "normalised" else np.ones_like(y))
        q = conformal.calibrate(conformal.normalised_scores(y[cal], point[cal], scale[cal]), 0.8)
        lower, upper = point - q * scale, point + q * scale
    m = metrics.regression(y[test], point[test], lower[test], upper[test])
    assert 0.78 <= m["coverage"] <= 0.82
    if method == "normalised":  # adaptive: narrower where the row is easy
        easy = missing[test, 0] == 0
        assert (upper - lower)[test][easy].mean() < 0.5 * (upper - lower)[test][~easy].mean()


def test_metrics_table():
    m = metrics.regression(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 3.0, 2.0]),
                           np.array([0.0, 0.0, 3.5, 1.0]), np.array([2.0, 2.5, 4.0, 5.0]))
    assert m == {"mae": 0.75, "rmse": pytest.approx(np.sqrt(5 / 4)), "r2": pytest.approx(1 - 5 / 5),
                 "coverage": 0.75, "interval_width": pytest.approx((2 + 2.5 + 0.5 + 4) / 4), "rows": 4}


@pytest.mark.parametrize("metric, a, b, better", [("mae", 1.0, 2.0, True), ("rmse", 2.0, 1.0, False),
                                                   ("r2", 0.9, 0.8, True), ("r2", 0.7, 0.8, False)])
def test_selection_direction(metric, a, b, better):
    assert metrics.better(metric, a, b) is better


def test_quantile_model_is_one_booster_per_quantile_with_the_multi_quantile_predictions():
    """Fitted per quantile (side by side in training), it predicts what one multi-quantile booster does."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    y = x[:, 0] * 3 + rng.normal(size=3000)
    params = {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.3}
    spec = ModelSpec(name="q", kind="xgboost_quantile", quantiles=[0.1, 0.5, 0.9], params=params)
    fitted = models.assemble(spec, [fit() for fit in models.fits(spec, x, x, y, nthread=1)])
    assert isinstance(fitted.model, list) and len(fitted.model) == 3
    multi = np.sort(fit_xgboost(x, y, params, [0.1, 0.5, 0.9], nthread=1).inplace_predict(x), axis=1)
    _, q = fitted.predict(x)
    np.testing.assert_allclose(q, multi, atol=1e-4)


def test_quantile_model_output_is_ordered():
    """Separately fitted quantiles cross on some rows; prediction sorts them."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 3)).astype(np.float32)
    y = x[:, 0] + rng.normal(size=2000)
    booster = fit_xgboost(x, y, {"n_estimators": 5, "max_depth": 2, "learning_rate": 0.9}, [0.45, 0.5, 0.55])
    crossed = np.diff(booster.inplace_predict(x), axis=1)
    assert (crossed < 0).any()  # the raw model does cross here
    point, q = Fitted("q", "xgboost_quantile", booster, [0.45, 0.5, 0.55]).predict(x)
    assert (np.diff(q, axis=1) >= 0).all() and np.array_equal(point, q[:, 1])


@pytest.mark.parametrize("model", ["ridge", "scale", "logistic"])
def test_a_linear_prediction_does_not_depend_on_the_row_s_place_in_its_batch(model):
    """A batch's row order is not fixed (Parquet written by several threads): each row gets the same
    bits wherever it sits. numpy's `@` (BLAS) rounded a block's edge rows differently from its inner
    rows: ridge and the interval's scale failed this before stepkit/ml/linear.py."""
    from stepkit.ml.kinds.logistic import Logistic

    rng = np.random.default_rng(7)
    x = np.asfortranarray(rng.normal(size=(10_007, 40)).astype(np.float32) * 50)
    coef = rng.normal(size=40)
    predict = {
        "ridge": Ridge(coef=coef, intercept=38.5).predict,
        "scale": conformal.ScaleModel(np.r_[4.0, np.abs(coef)], 0.5),
        "logistic": Logistic(coef=rng.normal(size=(41, 3)), mean=np.zeros(40), scale=np.ones(40)).logits,
    }[model]
    whole = predict(x)
    order = np.random.default_rng(9).permutation(len(x))
    assert np.array_equal(predict(np.asfortranarray(x[order])), whole[order])
    assert np.array_equal(predict(np.asfortranarray(x[order[:997]])), whole[order[:997]])  # another tail
