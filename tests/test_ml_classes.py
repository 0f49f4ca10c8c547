"""Class targets in the ML parts: the metrics (hand-computed cases), the calibration (it recovers the
parameters that made the data), the two classifier kinds, training and scoring a boolean and a
six-class target on a small demo warehouse, several targets from one read, the quality gate."""
from __future__ import annotations

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest

from stepkit import storage
from stepkit.errors import QualityGateError
from stepkit.ml import artifacts, calibration, classify, fixtures, kinds, metrics, predict, train
from stepkit.ml.kinds.logistic import Logistic
from tests.test_ml_train import RUN, small

CLASSIFIERS = [{"name": "logistic", "kind": "logistic", "params": {"alpha": 1.0}},
               {"name": "xgboost_classifier", "kind": "xgboost_classifier",
                "params": {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.2}}]
BOOLEAN = {"name": "homeowner", "json_path": "$.household.homeowner", "type": "boolean", "default": False}
CATEGORY = {"name": "seniority_level", "json_path": "$.employment.seniority", "type": "category",
            "categories": ["intern", "junior", "mid", "senior", "lead", "executive"], "default": "mid",
            "probabilities": "all"}


# --- metrics ------------------------------------------------------------------------------

# y, proba -> the figures worked out by hand.
BINARY_Y = [0, 1, 1, 0]
BINARY_P = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]


@pytest.mark.parametrize("metric, expected", [
    ("accuracy", 0.5),  # predicted 0, 1, 0, 1
    ("balanced_accuracy", 0.5),  # recall 1/2 for each class
    ("macro_f1", 0.5),
    ("log_loss", -np.mean(np.log([0.9, 0.8, 0.4, 0.3]))),
    ("roc_auc", 0.75),  # positives 0.8, 0.4 over negatives 0.1, 0.7: 3 of 4 pairs ordered
    ("ece", (0.1 + 0.2 + 0.6 + 0.7) / 4),  # each row alone in its bin
])
def test_classification_metrics_match_hand_computed_figures(metric, expected):
    assert metrics.classification(np.array(BINARY_Y), np.array(BINARY_P))[metric] == pytest.approx(expected)


def _pairs_auc(positive: np.ndarray, score: np.ndarray) -> float:
    pos, neg = score[positive], score[~positive]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("k, ties", [(2, False), (3, False), (4, True)])
def test_roc_auc_is_the_mean_one_vs_rest_pair_ordering(k, ties):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 120)
    raw = rng.random((120, k))
    if ties:
        raw = np.round(raw, 1)  # many equal scores: each tie counts half
    proba = raw / raw.sum(axis=1, keepdims=True)
    want = _pairs_auc(y == 1, proba[:, 1]) if k == 2 else np.mean([_pairs_auc(y == c, proba[:, c]) for c in range(k)])
    assert metrics.roc_auc(y, proba) == pytest.approx(want)


def test_metrics_with_an_absent_class():
    """A class no held-out row has: recall and AUC average over the classes there are."""
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    m = metrics.classification(y, proba)
    assert m["balanced_accuracy"] == pytest.approx(0.75) and m["accuracy"] == pytest.approx(0.75)
    assert 0 <= m["roc_auc"] <= 1


# --- calibration --------------------------------------------------------------------------

@pytest.mark.parametrize("k, a, b", [(2, 2.0, [0.0, -0.5]), (2, 0.4, [0.0, 0.8]), (4, 0.5, [0.0, 0.3, -0.2, 0.1])])
def test_calibration_recovers_the_slope_and_biases_that_made_the_labels(k, a, b):
    rng = np.random.default_rng(11)
    z = rng.normal(scale=2.0, size=(40_000, k))
    if k == 2:
        z[:, 0] = 0.0  # a binary model's logits: [0, log-odds]
    true = calibration.softmax(a * z + np.array(b))
    y = (rng.random(len(z))[:, None] > np.cumsum(true, axis=1)[:, :-1]).sum(axis=1)
    fitted = calibration.fit(z, y)
    assert fitted["method"] == ("platt" if k == 2 else "temperature")
    assert fitted["a"] == pytest.approx(a, rel=0.05)
    assert fitted["b"] == pytest.approx(b, abs=0.05)
    p = calibration.apply(z, fitted)
    assert np.allclose(p.sum(axis=1), 1.0) and p.min() >= 0


def test_calibration_of_an_overconfident_model_lowers_its_ece():
    rng = np.random.default_rng(3)
    z = rng.normal(scale=1.5, size=(20_000, 3))
    truth = calibration.softmax(z)
    y = (rng.random(len(z))[:, None] > np.cumsum(truth, axis=1)[:, :-1]).sum(axis=1)
    overconfident = 3.0 * z
    before = metrics.ece(y, calibration.softmax(overconfident))
    after = metrics.ece(y, calibration.apply(overconfident, calibration.fit(overconfident, y)))
    assert before > 0.1 and after < 0.02


# --- kinds --------------------------------------------------------------------------------

def test_logistic_regression_reaches_the_newton_solution():
    """Two classes: L-BFGS's answer is the penalised maximum likelihood that Newton's method finds."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(x @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.3)))).astype(int)
    model = Logistic(alpha=1.0).fit(x, y, 2)
    z = model.logits(x)
    # Newton on the same objective, in the standardised space, for the log-odds (second minus first).
    xs = np.hstack([(x - x.mean(0)) / x.std(0), np.ones((3000, 1))])
    w = np.zeros(5)
    for _ in range(30):
        p = 1 / (1 + np.exp(-xs @ w))
        grad = xs.T @ (p - y) + 0.5 * np.r_[w[:4], 0]  # the softmax's two weight columns halve the penalty
        hess = xs.T @ (xs * (p * (1 - p))[:, None]) + 0.5 * np.diag([1, 1, 1, 1, 0])
        w -= np.linalg.solve(hess, grad)
    assert np.allclose(z[:, 1] - z[:, 0], xs @ w, atol=2e-3)


@pytest.mark.parametrize("k", [2, 4])
def test_classifier_kinds_give_one_logit_per_class(k):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(500, 3)).astype(np.float32)
    y = rng.integers(0, k, 500)
    spec = type("Spec", (), {"params": {"n_estimators": 5}, "name": "m", "kind": "xgboost_classifier"})
    for name in ("logistic", "xgboost_classifier"):
        kind = kinds.get(name)
        assert kind.task == "classification" and kinds.task(name) == "classification"
        model = kind.fits(spec, x, x, y, 1, classes=k)[0]()
        z = kind.logits(model, x, x)
        assert z.shape == (500, k)
    assert kinds.task("ridge") == "regression"


# --- training and scoring on a demo warehouse ---------------------------------------------

def replaced(p, **sections):
    """`p` with whole sections replaced (fixtures.variant merges them)."""
    from stepkit.spec.pipeline import WorkerPipeline

    return WorkerPipeline.model_validate({**p.model_dump(mode="json", by_alias=True), **sections})


def _class_pipeline(target: dict):
    p = small()
    features = [f.model_dump(mode="json") for f in p.features if f.name != target["name"]]
    return replaced(p, target=target, features=features, batching={"batches": 3, "max_concurrency": 2},
                    training={"models": CLASSIFIERS})


@pytest.fixture(scope="module", params=["boolean", "category"])
def classified(request, tmp_path_factory):
    p = _class_pipeline(BOOLEAN if request.param == "boolean" else CATEGORY)
    names, _, meta = fixtures.warehouse(p, f"{tmp_path_factory.mktemp('wh')}/", RUN, rows=8000, seed=2)
    summary = train.run(p, names, RUN, log=lambda line: None)
    return p, names, summary, meta


def test_training_reports_every_classification_metric_and_picks_by_log_loss(classified):
    p, names, summary, meta = classified
    assert summary["task"] == "classification" and summary["selection_metric"] == "log_loss"
    for r in summary["models"].values():
        assert set(r) >= {"accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc", "ece", "rows"}
    best = min(summary["models"], key=lambda m: summary["models"][m]["calibration"]["log_loss"])
    assert summary["chosen_model"] == best
    chosen = summary["models"][best]
    floor = meta["targets"][p.target.name]
    # A few thousand rows: well above the majority class, within reach of the floor (the benchmark measures it).
    assert floor["majority_class_accuracy"] < chosen["accuracy"] <= floor["bayes_floor_accuracy"] + 0.05
    artifact = artifacts.load_target(names.models_location(RUN), p.target.name).artifact
    assert artifact["task"] == "classification" and artifact["classes"] == p.target.classes
    assert artifact["calibration"]["method"] == ("platt" if p.target.type == "boolean" else "temperature")


def test_reported_test_metrics_are_those_of_the_stored_model(classified):
    """Training scores only held-out rows; the figures it reports are what the stored artifact gives on
    the test rows among them."""
    from stepkit.ml import fitting

    p, names, summary, _ = classified
    rows = train.load_rows(p, names, RUN)
    rows = rows.filter(rows.column(p.target.name).is_valid())
    test = fitting.split(rows.column("sample_bucket").to_numpy(), p.sample.holdout_percent)["test"]
    scorer = predict.ClassScorer(artifacts.load_target(names.models_location(RUN), p.target.name))
    proba = scorer.probabilities(rows.filter(test))
    y = classify.codes(rows.filter(test).column(p.target.name), p.target.classes)
    again, reported = metrics.classification(y, proba), summary["models"][summary["chosen_model"]]
    assert again["rows"] == reported["rows"] == int(test.sum())
    for name in ("accuracy", "log_loss", "roc_auc", "ece"):
        assert again[name] == pytest.approx(reported[name], rel=1e-6), name


def test_scored_batches_hold_a_class_and_its_probability(classified):
    p, names, _, _ = classified
    out = predict.run(p, names, RUN, 1)
    table = pq.read_table(out["path"])
    t = p.target
    predicted, probability = table.column(f"predicted_{t.name}"), table.column("probability").to_numpy()
    assert out["rows"] == table.num_rows > 0
    assert ((probability >= 1 / len(t.classes) - 1e-9) & (probability <= 1)).all()  # the most probable class's
    if t.type == "boolean":
        assert str(predicted.type) == "bool" and "class_probabilities" not in table.column_names
        return
    assert set(predicted.to_pylist()) <= set(t.classes)
    maps = table.column("class_probabilities").to_pylist()
    for row, cls, prob in zip(maps, predicted.to_pylist(), probability):
        values = dict(row)
        assert sorted(values) == sorted(t.classes) and all(0 <= v <= 1 for v in values.values())
        assert sum(values.values()) == pytest.approx(1.0)
        assert max(values, key=values.get) == cls and values[cls] == pytest.approx(prob)


@pytest.mark.parametrize("gate, message", [
    ({"min_accuracy": 0.99}, r"quality gate: accuracy 0\.\d+ < min_accuracy 0\.99 \(model \w+, [\d,]+ held-out rows\)"),
    ({"max_log_loss": 0.01}, r"quality gate: log_loss \d\.\d+ > max_log_loss 0\.01 \(model \w+"),
    ({"max_ece": 0.0001}, r"quality gate: ece 0\.\d+ > max_ece 0\.0001 \(model \w+"),
    ({"min_roc_auc": 0.9999}, r"quality gate: roc_auc 0\.\d+ < min_roc_auc 0\.9999"),
])
def test_the_quality_gate_on_any_classification_metric_names_value_and_threshold(classified, gate, message):
    p, names, _, _ = classified
    strict = fixtures.variant(p, training={"quality_gate": gate})
    with pytest.raises(QualityGateError, match=message):
        train.run(strict, names, RUN, log=lambda line: None)


def test_two_targets_train_from_one_read_and_score_into_one_file(tmp_path):
    base = small()
    p = replaced(base, target=None, targets=[base.target.model_dump(mode="json"), BOOLEAN],
                 features=[f.model_dump(mode="json") for f in base.features if f.name != "homeowner"],
                 batching={"batches": 2, "max_concurrency": 2},
                 training={"models": [*[m.model_dump(mode="json") for m in base.training.models], *CLASSIFIERS]})
    names, _, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=6000, seed=8)
    summary = train.run(p, names, RUN, log=lambda line: None)
    assert set(summary["targets"]) == {"age", "homeowner"} and summary["gate"]["passed"]
    assert set(summary["targets"]["age"]["models"]) == {"ridge", "xgboost", "xgboost_quantile"}
    assert set(summary["targets"]["homeowner"]["models"]) == {"logistic", "xgboost_classifier"}
    for t in ("age", "homeowner"):
        assert storage.exists(names.model_location(t, RUN) + artifacts.MODEL_FILE)
    out = predict.run(p, names, RUN, 0)
    table = pq.read_table(out["path"])
    assert table.column_names == [
        "id", "predicted_age", "lower_bound_age", "upper_bound_age", "confidence_score_age", "model_name_age",
        "model_version_age", "predicted_homeowner", "probability_homeowner", "model_name_homeowner",
        "model_version_homeowner", "run_id"]
    assert set(out["models"]) == {"age", "homeowner"}
    # A gate one target misses names that target.
    strict = fixtures.variant(p, training={"quality_gate": {"min_accuracy": 0.999}})
    with pytest.raises(QualityGateError, match=r"quality gate: homeowner: accuracy 0\.\d+ < min_accuracy 0\.999"):
        train.run(strict, names, RUN, log=lambda line: None)


def test_targets_whose_models_read_different_encodings_share_one_batch(tmp_path):
    """Ridge reads one-hot columns, the xgboost classifier category codes: one prediction task
    encodes the batch both ways once, and each target scores what it would alone."""
    base = small()
    p = replaced(base, target=None, targets=[base.target.model_dump(mode="json"), BOOLEAN],
                 features=[f.model_dump(mode="json") for f in base.features if f.name != "homeowner"],
                 batching={"batches": 2, "max_concurrency": 2},
                 training={"models": [{"name": "ridge", "kind": "ridge", "params": {"alpha": 1.0}},
                                      {"name": "trees", "kind": "xgboost_classifier",
                                       "params": {"n_estimators": 20, "max_depth": 3}}], "quality_gate": {}})
    names, _, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=6000, seed=8)
    train.run(p, names, RUN, log=lambda line: None)
    scorers = predict.Scorers(p, names, RUN)
    assert [s.fitted.encoding for s in scorers.scorers] == ["onehot", "codes"] and scorers.shared
    out = predict.run(p, names, RUN, 0)
    table = pq.read_table(out["path"])
    batch = storage.read_table(predict.batch_paths(names, RUN, 0)[0])
    alone = [predict.scorer(names.models_location(RUN), t).columns(batch, None, False) for t in ("age", "homeowner")]
    assert table.column("predicted_age").to_pylist() == alone[0][0].to_pylist()
    assert table.column("probability_homeowner").to_pylist() == alone[1][1].to_pylist()
