"""Re-scoring with an earlier run's models (stepkit/ml/reuse.py): which run `latest` is, the check of the
model against the pipeline before anything is copied (one row per kind of change), the copy."""
from __future__ import annotations

import pytest

from stepkit import storage
from stepkit.errors import DataError
from stepkit.ml import artifacts, fixtures, predict, reuse, train
from tests.test_ml_classes import replaced
from tests.test_ml_train import small

TRAINED, FAILED, RESCORE = "run-trained", "run-failed", "run-rescore"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs in one warehouse: one whose model passed the gate, a later one whose model missed it."""
    p = fixtures.variant(small(), batching={"batches": 2})
    root = f"{tmp_path_factory.mktemp('wh')}/"
    names, _, _ = fixtures.warehouse(p, root, TRAINED, rows=4000, seed=6)
    summary = train.run(p, names, TRAINED, log=lambda line: None)
    fixtures.write_tables(p, names, FAILED, storage.read_table(f"{root}demo/source.parquet"), training_only=True)
    with pytest.raises(Exception, match="quality gate"):
        train.run(fixtures.variant(p, training={"quality_gate": {"max_mae": 0.01}}), names, FAILED, log=lambda l: None)
    return p, names, summary


def test_latest_is_the_last_run_whose_models_passed_the_gate(runs):
    p, names, _ = runs
    assert {r for r, _ in reuse.runs_with_models(names)} == {TRAINED, FAILED}
    assert reuse.latest_passed(names, RESCORE) == TRAINED


def test_the_copy_keeps_the_model_and_its_version_and_scores(runs):
    p, names, summary = runs
    out = reuse.run(p, names, RESCORE, reuse.LATEST)
    assert out["source_run"] == TRAINED and out["gate"]["passed"]
    assert out["targets"]["age"]["model_version"] == summary["model_version"]
    copied = artifacts.load_target(names.models_location(RESCORE), "age")
    assert copied.version == summary["model_version"]
    fixtures.write_tables(p, names, RESCORE, storage.read_table(f"{names.root}demo/source.parquet"))
    scored = predict.run(p, names, RESCORE, 0)
    assert scored["rows"] > 0 and scored["model_version"] == summary["model_version"]
    # A re-scoring run's copy is no newer model: `latest` still names the run that trained it.
    assert reuse.latest_passed(names, "run-next") == TRAINED


def _features(p, change):
    rows = [f.model_dump(mode="json") for f in p.features]
    change(rows)
    return rows


# (case, what changes in the re-scoring pipeline, words of the one-line error)
CHANGES = [
    ("a feature removed", dict(features=lambda p: _features(p, lambda r: r.pop(3))),
     "the pipeline lacks 'seniority_level' (21 features trained, 20 listed)"),
    ("a feature added", dict(features=lambda p: _features(p, lambda r: r.append(
        {"name": "shoe_size", "json_path": "$.person.shoe_size", "type": "double"}))),
     "the pipeline adds 'shoe_size' (21 features trained, 22 listed)"),
    ("features reordered", dict(features=lambda p: _features(p, lambda r: r.insert(0, r.pop(1)))),
     "features[0] is 'job_tenure_years' where the model has 'years_since_first_job' (the order differs)"),
    ("a type changed", dict(features=lambda p: _features(p, lambda r: r[2].update(type="double"))),
     "features[2] 'num_jobs' has type 'double' where the model has 'integer'"),
    ("a category added", dict(features=lambda p: _features(p, lambda r: r[3].update(
        categories=[*r[3]["categories"], "chief"]))), "features[3] 'seniority_level' has categories"),
    ("a missing-value policy changed", dict(features=lambda p: _features(p, lambda r: r[0].update(missing="zero"))),
     "features[0] 'years_since_first_job' has missing 'zero' where the model has 'median'"),
    ("the target is a class now", dict(target=lambda p: {"name": "age", "json_path": "$.person.age",
                                                         "type": "category", "categories": ["young", "old"],
                                                         "default": "young"}),
     "the model predicts a target of type integer; age is category"),
]


@pytest.mark.parametrize("case, change, words", CHANGES, ids=[c[0] for c in CHANGES])
def test_a_model_that_does_not_fit_the_pipeline_is_one_error_and_nothing_is_copied(runs, case, change, words):
    p, names, _ = runs
    sections = {k: f(p) for k, f in change.items()}
    if "target" in sections:
        sections["training"] = {"models": [{"name": "logistic", "kind": "logistic"}]}
    other = replaced(p, **sections)
    with pytest.raises(DataError) as e:
        reuse.run(other, names, "run-other", TRAINED)
    assert words in str(e.value) and str(e.value).startswith(f"run {TRAINED}, target age: ")
    assert "\n" not in str(e.value)
    assert not storage.exists(names.models_location("run-other"))


@pytest.mark.parametrize("source, words", [
    ("run-none", "run 'run-none' has no models"),
    (FAILED, f"the models of run {FAILED!r} missed the quality gate: mae"),
])
def test_a_named_run_without_a_passing_model_is_refused(runs, source, words):
    p, names, _ = runs
    with pytest.raises(DataError, match=words):
        reuse.run(p, names, "run-x", source)


def test_no_passing_run_at_all(tmp_path):
    from stepkit.ir.names import Names

    p = small()
    with pytest.raises(DataError, match="no earlier run has a model that passed the quality gate"):
        reuse.latest_passed(Names(p, f"{tmp_path}/"), RESCORE)
