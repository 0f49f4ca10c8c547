"""Training on a small demo warehouse: metrics, artifact, selection, the quality gate, bad input."""
from __future__ import annotations

import io
import json
from pathlib import Path

import joblib
import pytest

from stepkit import storage
from stepkit.cli import _variables
from stepkit.errors import DataError, QualityGateError
from stepkit.ml import fixtures, train
from stepkit.compiler.load import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
RUN = "run-1"
FAST = {"n_estimators": 60, "max_depth": 4, "learning_rate": 0.15}


def small(**changes):
    p, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _variables((), str(ROOT / "pipelines" / "example.env")))
    models = [{**m.model_dump(mode="json"), "params": FAST if m.kind != "ridge" else m.params} for m in p.training.models]
    base = {"sample": {"percent": 100}, "batching": {"batches": 4},
            "training": {**p.training.model_dump(mode="json"), "models": models}}
    return fixtures.variant(p, **{**base, **changes})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    p = small()
    root = f"{tmp_path_factory.mktemp('wh')}/"
    names, config_uri, meta = fixtures.warehouse(p, root, RUN, rows=15000, seed=3)
    summary = train.run(p, names, RUN, log=lambda line: None)
    return p, names, summary, meta


def test_metrics_json_reports_every_model_and_the_choice(trained):
    p, names, summary, _ = trained
    m = storage.read_json(names.model_location("age", RUN) + "metrics.json")
    assert set(m["models"]) == {"ridge", "xgboost", "xgboost_quantile"}
    for r in m["models"].values():
        assert set(r) >= {"mae", "rmse", "r2", "coverage", "interval_width", "rows", "kind"}
    best = min(m["models"], key=lambda k: m["models"][k]["calibration"]["mae"])
    assert m["chosen_model"] == best and m["gate"]["passed"] is True
    assert m["rows"]["train"] + m["rows"]["calibration"] + m["rows"]["test"] == m["rows"]["total"]
    assert m["model_version"] == summary["model_version"] and len(m["data_fingerprint"]) == 16
    assert set(m["library_versions"]) >= {"numpy", "pyarrow", "xgboost", "python"}


def test_quality_is_near_the_floor_and_interval_near_its_coverage(trained):
    """Loose bounds at a few thousand rows; benchmarks/model_quality.py measures the claims at scale."""
    _, _, summary, meta = trained
    chosen = summary["models"][summary["chosen_model"]]
    assert chosen["mae"] < meta["bayes_floor_mae"] * 1.4 and chosen["r2"] > 0.8
    for r in summary["models"].values():  # a few hundred test rows: a loose band
        assert 0.7 < r["coverage"] < 0.9, r


def test_artifact_carries_what_prediction_needs(trained):
    p, names, summary, _ = trained
    a = joblib.load(io.BytesIO(storage.read_bytes(names.model_location("age", RUN) + "model.joblib")))
    assert a["name"] == summary["chosen_model"] and a["encoder"]["columns"][0] == p.features[0].name
    assert set(a["encoder"]["medians"]) >= {"income_usd", "graduation_year"}
    assert a["metadata"]["data_fingerprint"] == summary["data_fingerprint"]
    assert a["interval"]["q"] > 0 and a["reference_width"] > 10


def test_retraining_the_same_run_gives_the_same_version(trained):
    p, names, summary, _ = trained
    again = train.run(p, names, RUN, log=lambda line: None)
    assert again["model_version"] == summary["model_version"]


@pytest.mark.parametrize("gate, message", [
    ({"max_mae": 0.5}, r"quality gate: mae \d+\.\d+ > max_mae 0\.5 \(model \w+, [\d,]+ held-out rows\)"),
    ({"min_r2": 0.99}, r"quality gate: r2 0\.\d+ < min_r2 0\.99 \(model \w+, [\d,]+ held-out rows\)"),
])
def test_quality_gate_names_metric_value_and_threshold(trained, gate, message):
    p, names, _, _ = trained
    strict = fixtures.variant(p, training={"quality_gate": gate})
    with pytest.raises(QualityGateError, match=message):
        train.run(strict, names, RUN, log=lambda line: None)
    m = json.loads(Path(names.models_location(RUN) + "metrics.json").read_text())
    assert m["gate"]["passed"] is False  # written before the failure


def test_no_training_data_names_the_table_and_location(trained, tmp_path):
    p, _, _, _ = trained
    from stepkit.ir.names import Names

    with pytest.raises(DataError, match=r"training_features_14m/run-1/: no such folder"):
        train.run(p, Names(p, f"{tmp_path}/"), RUN)


def test_too_few_rows_for_a_split_is_a_data_error(trained, tmp_path):
    p, names, _, _ = trained
    feats = storage.read_table(names.table_location("training_features", RUN)).slice(0, 30)
    targets = storage.read_table(names.table_location("training_targets", RUN))
    from stepkit.ir.names import Names

    tiny = Names(p, f"{tmp_path}/")
    storage.write_table(tiny.table_location("training_features", RUN) + "a.parquet", feats)
    storage.write_table(tiny.table_location("training_targets", RUN) + "a.parquet", targets)
    with pytest.raises(DataError, match=r"predict_age_real_training_features_14m: \d+ \w+ rows of 30 \(need 20"):
        train.run(p, tiny, RUN)


@pytest.mark.parametrize("cores, threads_per_fit, side_by_side", [
    (1, 1, 1),    # one core: the five fits one after the other
    (2, 1, 2),    # this machine: two fits at a time, one xgboost thread each
    (16, 3, 5),   # the 16-vCPU training task: all five fits at once, 3 threads each (15 cores)
])
def test_fits_share_out_the_cores(trained, monkeypatch, cores, threads_per_fit, side_by_side):
    """Ridge + xgboost + a 3-quantile model are 5 fits; the cores are shared out between them."""
    import threading

    from stepkit.ml import models

    p, names, _, _ = trained
    seen, running, peak, lock = [], [0], [0], threading.Lock()
    real = models.fit_xgboost

    def spy(x, y, params, quantiles=None, nthread=None, feature_types=None):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            seen.append(nthread)
            return real(x, y, params, quantiles, nthread, feature_types)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(models, "threads", lambda: cores)
    monkeypatch.setattr(models, "fit_xgboost", spy)
    train.train_target(p, train.load_rows(p, names, RUN), p.target, lambda line: None, "t")
    assert seen == [threads_per_fit] * 4  # xgboost + three quantile boosters (ridge is numpy)
    assert peak[0] == min(side_by_side, 4)  # never more at once than the pool allows


@pytest.mark.parametrize("kind", ["xgboost_quantile", "xgboost", "ridge"])
def test_reported_test_metrics_are_those_of_the_stored_model(tmp_path, kind):
    """The figures training reports for a model are what the artifact it stores scores on the test
    rows: evaluation may score only some rows (the quantile model, the held-out ones), never other rows."""
    import numpy as np

    from stepkit.ml import artifacts, fitting, metrics
    from stepkit.ml.predict import Scorer

    base = small()
    p = small(training={**base.training.model_dump(mode="json"),
                        "models": [m.model_dump(mode="json") for m in base.training.models if m.kind == kind]})
    names, _, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=6000, seed=5)
    summary = train.run(p, names, RUN, log=lambda line: None)
    rows = train.load_rows(p, names, RUN)
    test = fitting.split(rows.column("sample_bucket").to_numpy(), p.sample.holdout_percent)["test"]
    point, _, _, _ = Scorer(artifacts.load_target(names.models_location(RUN), "age")).score(rows)
    y = rows.column("age").to_numpy().astype(np.float64)
    again = metrics.regression(y[test], point[test], point[test], point[test])
    reported = summary["models"][kind]
    assert reported["rows"] == int(test.sum())
    for name in ("mae", "rmse", "r2"):
        assert again[name] == pytest.approx(reported[name], rel=1e-6), name  # ridge: float32 sums in another order
