"""Model kinds in a registry: one class per kind, one module per class, found by name by the spec,
training and prediction alike. A kind defined here, in a test module, trains and scores through
it; a package registers one through its entry points; artifacts written before kinds had their
own modules still load and score as they did."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from stepkit import storage
from stepkit.ml import artifacts, fixtures, kinds, predict, train
from stepkit.ml.kinds.base import ModelKind
from stepkit.spec import kinds as spec_kinds
from stepkit.spec.models import ModelSpec
from tests.test_ml_train import RUN, small

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "data" / "artifacts_format1"


class MeanKind(ModelKind):
    """The simplest model there is: the training targets' mean, for every row."""

    name = "mean"

    def fits(self, spec, raw, filled, y, nthread):
        return [lambda: {"mean": float(np.mean(y))}]

    def predict(self, model, quantiles, raw, filled):
        return np.full(raw.shape[0], model["mean"], dtype=np.float32), None


@pytest.mark.parametrize("kind, module, cls", [
    ("ridge", "stepkit.ml.kinds.ridge", "RidgeKind"),
    ("xgboost", "stepkit.ml.kinds.xgboost", "XGBoostKind"),
    ("xgboost_quantile", "stepkit.ml.kinds.xgboost_quantile", "XGBoostQuantileKind"),
    ("logistic", "stepkit.ml.kinds.logistic", "LogisticKind"),
    ("xgboost_classifier", "stepkit.ml.kinds.xgboost_classifier", "XGBoostClassifierKind"),
])
def test_each_builtin_kind_is_one_class_in_its_own_module(kind, module, cls):
    assert kinds.KINDS[kind] == f"{module}:{cls}"
    assert type(kinds.get(kind)).__module__ == module and kinds.get(kind).name == kind
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()


def test_the_spec_reads_the_kind_names_without_importing_model_code():
    code = ("import sys, stepkit.spec.pipeline as p, stepkit.spec.models as m; p.WorkerPipeline.model_rebuild(); "
            "m.ModelSpec(name='q', kind='xgboost_quantile', quantiles=[0.1, 0.5, 0.9]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'xgboost', 'pyarrow') "
            "or m.startswith('stepkit.ml.kinds.') or m == 'stepkit.ml.models'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_prediction_worker_imports_every_builtin_kind_up_front():
    """A local run's forkserver imports the worker once; no batch then imports the kind its artifact names."""
    code = "import sys, stepkit.workers.prediction; print(sorted(m for m in sys.modules if m.startswith('stepkit.ml.kinds.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(["stepkit.ml.kinds.base", *(t.split(":")[0] for t in kinds.KINDS.values())]))


@pytest.mark.parametrize("registered, accepted", [(False, False), (True, True)])
def test_the_spec_accepts_exactly_the_registered_kinds(monkeypatch, registered, accepted):
    if registered:
        monkeypatch.setitem(kinds.KINDS, "mean", f"{__name__}:MeanKind")
    schema = ModelSpec.model_json_schema()["properties"]["kind"]
    assert schema["enum"] == ["ridge", "xgboost", "xgboost_quantile", "logistic", "xgboost_classifier"] + (
        ["mean"] if registered else [])
    if accepted:
        assert ModelSpec(name="m", kind="mean").kind == "mean"
        return
    with pytest.raises(ValidationError, match="Input should be 'ridge', 'xgboost', 'xgboost_quantile', 'logistic' "
                                              "or 'xgboost_classifier'"):
        ModelSpec(name="m", kind="mean")


def test_a_kind_registered_in_a_test_module_trains_and_predicts_through_the_registry(monkeypatch, tmp_path):
    monkeypatch.setitem(kinds.KINDS, "mean", f"{__name__}:MeanKind")
    p = fixtures.variant(small(), batching={"batches": 2},
                         training={"models": [{"name": "baseline", "kind": "mean"}], "quality_gate": {}})
    names, _, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=3000, seed=7)
    summary = train.run(p, names, RUN, log=lambda line: None)
    assert summary["chosen_model"] == "baseline" and summary["models"]["baseline"]["kind"] == "mean"
    assert summary["models"]["baseline"]["interval_width"] > 0  # calibrated like any point model

    rows = train.load_rows(p, names, RUN)
    held = train.split(rows.column("sample_bucket").to_numpy(), p.sample.holdout_percent)
    mean = float(np.mean(rows.column(p.target.name).to_numpy()[held["train"]]))
    artifact = artifacts.load_target(names.models_location(RUN), "age").artifact
    assert (artifact["kind"], artifact["model"]) == ("mean", {"mean": pytest.approx(mean)})
    out = predict.run(p, names, RUN, 0)
    table = storage.read_table(out["path"])
    assert out["rows"] > 0 and set(table.column("model_name").to_pylist()) == {"baseline"}
    assert np.allclose(table.column(f"predicted_{p.target.name}").to_numpy(), np.float32(mean))


class WidthKind(MeanKind):
    """Remembers the width of the matrix it was fitted on, and checks it gets that width to score."""

    name = "width"

    def fits(self, spec, raw, filled, y, nthread, **extra):
        return [lambda: {"mean": float(np.mean(y)), "width": raw.shape[1], "extra": sorted(extra)}]

    def predict(self, model, quantiles, raw, filled):
        assert raw.shape[1] == model["width"]
        return super().predict(model, quantiles, raw, filled)


class CodesWidthKind(WidthKind):
    name = "codes_width"
    category_codes = True


@pytest.mark.parametrize("kind, encoding, extra", [
    ("width", "onehot", []),  # a package's kind gets what it got before codes existed
    ("codes_width", "codes", ["feature_types"]),
])
def test_a_kind_reads_the_encoding_it_asks_for_in_training_and_prediction(monkeypatch, tmp_path, kind, encoding,
                                                                           extra):
    monkeypatch.setitem(kinds.KINDS, kind, f"{__name__}:{'CodesWidthKind' if encoding == 'codes' else 'WidthKind'}")
    p = fixtures.variant(small(), batching={"batches": 2},
                         training={"models": [{"name": "m", "kind": kind}], "quality_gate": {}})
    names, _, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=3000, seed=7)
    train.run(p, names, RUN, log=lambda line: None)
    artifact = artifacts.load_target(names.models_location(RUN), "age").artifact
    widths = {"onehot": len(artifact["encoder"]["columns"]), "codes": len(p.feature_list)}
    assert widths["onehot"] > widths["codes"]  # the small pipeline has categories
    assert (artifact["encoding"], artifact["model"]["width"], artifact["model"]["extra"]) == (
        encoding, widths[encoding], extra)
    assert predict.run(p, names, RUN, 0)["rows"] > 0  # scored on the same width (WidthKind.predict checks)


def test_an_artifact_of_an_unknown_encoding_is_one_line():
    from stepkit.errors import DataError

    with pytest.raises(DataError, match=r"^model 'm': unknown feature encoding 'ordinal' \(known: onehot, codes\)$"):
        predict._fitted({"name": "m", "kind": "xgboost", "model": None, "encoding": "ordinal"}, None)


def test_xgboost_kinds_split_on_categories():
    from stepkit.ml import models

    for kind in ("xgboost", "xgboost_quantile", "xgboost_classifier"):
        assert models.encoding(kind) == "codes"
    for kind in ("ridge", "logistic"):
        assert models.encoding(kind) == "onehot"
    # The spec's list of them (it imports no kind's class) agrees with the classes.
    assert [k for k in kinds.KINDS if models.encoding(k) == "codes"] == list(spec_kinds.CODES)
    x = np.array([[0, 1.0], [1, 2.0], [2, np.nan], [np.nan, 4.0]] * 50, dtype=np.float32)
    y = np.array([1.0, 5.0, 2.0, 3.0] * 50)
    booster = models.fit_xgboost(x, y, {"n_estimators": 3, "max_depth": 2}, nthread=1, feature_types=["c", "q"])
    assert booster.feature_types == ["c", "q"]
    assert '"split_type":[1' in booster.save_raw("json").decode().replace(" ", "")  # a categorical split first


@pytest.mark.parametrize("quantiles, types", [
    (None, ["c", "q"]),  # squared error, a categorical split
    ([0.1, 0.5, 0.9], None),  # three quantiles in one booster
])
def test_an_xgboost_fit_whose_threads_change_mid_fit_makes_the_same_model(quantiles, types):
    """What lets a fit left alone take the others' cores (models.sharing) without changing a model's
    bytes, hence its version: on the installed xgboost, the trees do not depend on the thread count."""
    from stepkit.ml import models

    rng = np.random.default_rng(3)
    x = np.column_stack([rng.integers(0, 5, 20_000), rng.normal(size=20_000)]).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.nan_to_num(x[:, 0]) * 2 + np.nan_to_num(x[:, 1]) + rng.normal(size=20_000)
    params = {"n_estimators": 30, "max_depth": 3}
    steady = models.fit_xgboost(x, y, params, quantiles, nthread=1, feature_types=types)
    asked = []

    def share() -> int:  # 1, 2, 3, 1, 2, 3 ... threads, round after round
        asked.append(len(asked) % 3 + 1)
        return asked[-1]

    with models.sharing(share):
        changing = models.fit_xgboost(x, y, params, quantiles, nthread=1, feature_types=types)
    assert len(asked) == 30  # asked after every round
    assert changing.save_raw("ubj") == steady.save_raw("ubj")
    # What the artifact holds (its bytes are the model's version), nthread included: the one it started with.
    assert json.loads(changing.save_config())["learner"]["generic_param"]["nthread"] == "1"
    assert pickle.dumps(changing) == pickle.dumps(steady)


class ThreeFitsKind(MeanKind):
    """Three fits that record the threads they may use (models.sharing): the third waits, after
    it starts, until it is the only one left."""

    name = "three_fits"
    seen: dict[str, int] = {}

    def fit_count(self, spec):
        return 3

    def fits(self, spec, raw, filled, y, nthread, **extra):
        from stepkit.ml import models

        def fit(k):
            share = models._SHARE.share
            self.seen[f"fit {k} started"] = share()
            if k == 2:
                deadline = time.monotonic() + 10
                while share() == 1 and time.monotonic() < deadline:
                    time.sleep(0.005)
                self.seen["fit 2 alone"] = share()
            elif k == 1:
                while "fit 2 started" not in self.seen:
                    time.sleep(0.005)
            return {"mean": 0.0}
        return [lambda k=k: fit(k) for k in range(3)]


def test_a_fit_left_alone_takes_the_cores_the_others_leave(monkeypatch):
    from stepkit.ml import fitting

    monkeypatch.setenv("STEPKIT_THREADS", "2")
    monkeypatch.setitem(kinds.KINDS, "three_fits", f"{__name__}:ThreeFitsKind")
    ThreeFitsKind.seen.clear()
    z = np.zeros((4, 1), np.float32)
    fitting.fit_all([ModelSpec(name="m", kind="three_fits")], fitting.Encoded(z, z, None, ["q"]),
                    np.zeros(4), lambda m, f: {})
    # Two cores, three fits: one thread each while two run, both cores for the one left.
    assert ThreeFitsKind.seen == {"fit 0 started": 1, "fit 1 started": 1, "fit 2 started": 1, "fit 2 alone": 2}


def _splits(booster) -> set[int]:
    """The split types of every node of every tree: 0 on a number, 1 on a set of categories."""
    return {t for tree in json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
            for t in tree["split_type"]}


@pytest.mark.parametrize("splits, types", [
    (None, {0, 1}),  # the default: xgboost's categorical splits where they help
    ("partition", {0, 1}),
    ("ordinal", {0}),  # every split on a number: the code's order
])
def test_category_splits_decide_how_xgboost_trees_split_a_category(tmp_path, splits, types):
    p = fixtures.variant(small(), batching={"batches": 2}, training={"models": [
        {"name": "m", "kind": "xgboost", "params": {"n_estimators": 40, "max_depth": 3},
         **({"category_splits": splits} if splits else {})}], "quality_gate": {}})
    names, _, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=3000, seed=7)
    train.run(p, names, RUN, log=lambda line: None)
    artifact = artifacts.load_target(names.models_location(RUN), "age").artifact
    assert artifact["encoding"] == "codes" and _splits(artifact["model"]) == types
    assert predict.run(p, names, RUN, 0)["rows"] > 0


@pytest.fixture
def mean_package(monkeypatch, tmp_path):
    """A real distribution on sys.path (dist-info with entry_points.txt) registering kind `mean`."""
    (tmp_path / "my_kinds.py").write_text("from tests.test_ml_kinds import MeanKind as Mean\n")
    info = tmp_path / "my_kinds-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-kinds\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[stepkit.models]\nmean = my_kinds:Mean\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_category_splits_of_a_package_kind_that_reads_one_hot_are_refused_where_written(mean_package, tmp_path):
    """The spec cannot tell (it imports no kind); the compiler asks the kind's class, in one located line."""
    from click.testing import CliRunner

    from stepkit.cli import main

    good = (ROOT / "pipelines" / "predict_age.yaml").read_text()
    anchor = "    - name: ridge\n"
    text = good.replace(anchor, "    - name: mean\n      kind: mean\n      category_splits: ordinal\n" + anchor)
    path = tmp_path / "p.yaml"
    path.write_text(text)
    line = text[:text.index("category_splits")].count("\n") + 1
    result = CliRunner().invoke(main, ["validate", str(path), "--env-file", str(ROOT / "pipelines" / "example.env")])
    assert result.exit_code == 1, result.output
    assert f"{path}:{line}:24: training.models[0].category_splits: `category_splits` is only for kinds that split " \
           "on category codes; kind mean reads one-hot columns" in result.output.splitlines(), result.output
    assert "Traceback" not in result.output


def test_a_package_registers_a_kind_through_its_entry_points(mean_package):
    """A real distribution on sys.path, not a patched lookup."""
    assert kinds.names() == ["ridge", "xgboost", "xgboost_quantile", "logistic", "xgboost_classifier", "mean"]
    assert ModelSpec(name="m", kind="mean").kind == "mean"
    assert kinds.get("mean").predict({"mean": 2.5}, None, np.zeros((3, 1), np.float32), None)[0].tolist() == [2.5] * 3


def test_an_artifact_of_a_kind_not_installed_is_one_line():
    with pytest.raises(kinds.UnknownKind, match=r"^model kind 'lasso' is not installed here \(known: ridge, "):
        kinds.get("lasso")


def test_the_ridge_model_keeps_the_name_artifacts_pickle_it_by():
    """Its class moved to stepkit/ml/kinds/ridge.py; its pickled name did not: older artifacts name
    it so, and a new name would change every ridge artifact's bytes, hence its model version."""
    from stepkit.ml import models
    from stepkit.ml.kinds.ridge import Ridge

    data = pickle.dumps(Ridge(coef=np.ones(2)))
    assert b"stepkit.ml.models" in data and b"stepkit.ml.kinds" not in data
    assert type(pickle.loads(data)) is models.Ridge is Ridge


# Written by stepkit before model kinds had their own modules (the ridge model pickled as
# stepkit.ml.models.Ridge), scored then on batch 0 of the warehouse below: rows, model version,
# the means of (prediction, lower, upper, confidence), the first three predictions by id.
@pytest.mark.parametrize("kind, rows, version, means, first", [
    ("ridge", 784, "2e6d07a9c97bd82e", [45.496384, 37.820627, 53.308064, 0.544844], [58.817017, 54.639465, 53.331299]),
    ("xgboost_quantile", 784, "d1a3db9e34d32aaf", [45.858604, 32.828179, 58.259814, 0.254179],
     [50.94352, 50.227085, 54.913612]),
])
def test_older_artifacts_load_and_score_as_they_did(tmp_path, kind, rows, version, means, first):
    p = fixtures.variant(small(), batching={"batches": 2})
    names, _, _ = fixtures.warehouse(p, f"{tmp_path}/", RUN, rows=1500, seed=4)
    storage.write_bytes(storage.join(names.models_location(RUN), artifacts.MODEL_FILE), (OLD / f"{kind}.joblib").read_bytes())
    out = predict.run(p, names, RUN, 0)
    table = storage.read_table(out["path"]).sort_by("id")
    columns = ["predicted_age", "lower_bound", "upper_bound", "confidence_score"]
    assert (out["rows"], out["model_version"]) == (rows, version)
    # To 1e-5 of the value: a linear model's sum now runs in float64 (stepkit/ml/linear.py), not in
    # float32, which moved ridge's figures by up to 3e-6 of theirs.
    assert [float(np.mean(table.column(c).to_numpy())) for c in columns] == pytest.approx(means, rel=1e-5)
    assert table.column("predicted_age").to_pylist()[:3] == pytest.approx(first, rel=1e-5)
