"""The demo-data generator: shape, mess, determinism, and the Bayes floor it states."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from stepkit import demo_data
from stepkit.cli import _variables, main
from stepkit.ml import fixtures
from stepkit.ml.models import Ridge
from stepkit.ml.encoding import Encoder
from stepkit.ml.kinds.logistic import Logistic
from stepkit.compiler.load import load_pipeline
from stepkit.compiler.load import pipeline_model

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
ENV = ROOT / "pipelines" / "example.env"


@pytest.fixture(scope="module")
def pipeline():
    p, _ = load_pipeline(PIPELINE, _variables((), str(ENV)))
    return p


def _variant(p, **changes):
    data = p.model_dump(mode="json", by_alias=True)
    for key, value in changes.items():
        data[key] = value
    return pipeline_model().model_validate(data)


@pytest.fixture(scope="module")
def generated(pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "src.parquet"
    meta = demo_data.write(str(path), pipeline, rows=20_000, seed=7)
    return path, meta, pq.read_table(path)


def _parse(doc: str):
    try:
        return json.loads(doc)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def staged(pipeline, generated):
    """The generated documents as the staging SQL reads them."""
    return fixtures.staging(pipeline, generated[2])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(pipeline, generated, tmp_path):
    path, meta, _ = generated
    again = tmp_path / "again.parquet"
    assert demo_data.write(str(again), pipeline, rows=20_000, seed=7) == meta
    assert _digest(again) == _digest(path)
    other = tmp_path / "other.parquet"
    demo_data.write(str(other), pipeline, rows=20_000, seed=8)
    assert _digest(other) != _digest(path)


def test_counts_in_meta_match_the_file(pipeline, generated):
    path, meta, table = generated
    ids = table.column("person_id")
    docs = table.column("profile_json").to_pylist()
    assert table.column_names == ["person_id", "profile_json"]
    assert meta["rows"] == table.num_rows == 20_000
    assert meta["distinct_ids"] == pc.count_distinct(ids).as_py()
    assert meta["duplicate_rows"] == meta["rows"] - meta["distinct_ids"] > 0
    assert ids[0].as_py().startswith("p") and len(ids[0].as_py()) == 10
    malformed = {i for i, d in zip(ids.to_pylist(), docs) if _parse(d) is None}
    assert len(malformed) == meta["malformed_json_rows"] > 0
    assert json.loads(Path(str(path) + ".meta.json").read_text()) == meta


def test_usable_labelled_rows_are_what_the_sql_reading_keeps(generated, staged):
    """The generator's own bookkeeping of what survives the mess equals an independent reading of
    the documents with the staging SQL's rules (json_extract_scalar, try_cast, range checks)."""
    _, meta, _ = generated
    st = staged
    assert st.num_rows == meta["distinct_ids"] - meta["malformed_json_rows"]
    assert st.column("age").null_count == st.num_rows - meta["labelled_rows"]
    assert 0.35 < meta["labelled_rows"] / meta["distinct_ids"] < 0.42


@pytest.mark.parametrize("feature, lo, hi", [
    ("income_usd", 0.03, 0.08),  # absent, null, wrong type, out of range: about 5.5% missing
    ("graduation_year", 0.03, 0.08),
    ("homeowner", 0.03, 0.08),  # no range to break: a bit less
    ("seniority_level", 0.03, 0.08),
])
def test_each_feature_has_missing_values(staged, feature, lo, hi):
    st = staged
    share = st.column(feature).null_count / st.num_rows
    assert lo < share < hi


def test_categories_carry_case_mess_and_unknown_values(generated, staged):
    values = set(staged.column("device_type").drop_null().to_pylist())
    assert values == {"ios", "android", "desktop", "tablet", "other"}
    assert any('"IOS"' in d or '"ANDROID"' in d for d in generated[2].column("profile_json").to_pylist()[:2000])


def _binned(raw: np.ndarray, edges: list | None = None) -> tuple[np.ndarray, list]:
    """One-hot of 16 quantile bins (+ a missing bin) per column: a flexible additive model's input."""
    cols, out_edges = [], []
    for j in range(raw.shape[1]):
        c = raw[:, j]
        ok = ~np.isnan(c)
        e = edges[j] if edges else np.unique(np.quantile(c[ok], np.linspace(0, 1, 17)[1:-1]))
        out_edges.append(e)
        cols.append(np.eye(len(e) + 2, dtype=np.float32)[np.where(ok, np.searchsorted(e, c), len(e) + 1)])
    return np.hstack(cols), out_edges


def test_floor_is_a_limit_a_model_approaches_but_does_not_beat(pipeline, generated, staged):
    """An additive model fitted on half the rows lands near the floor on the other half, never below:
    the floor is a real limit, not a guess."""
    meta, st = generated[1], staged
    y = st.column("age").to_numpy(zero_copy_only=False).astype(float)
    rows = st.filter(~np.isnan(y))
    y = y[~np.isnan(y)]
    raw = Encoder.from_spec(pipeline.features).raw(rows)
    half = len(y) // 2
    x_fit, edges = _binned(raw[:half])
    model = Ridge(alpha=1.0).fit(x_fit, y[:half])
    pred = np.clip(np.round(model.predict(_binned(raw[half:], edges)[0])), 13, 100)
    mae = float(np.abs(pred - y[half:]).mean())
    floor = meta["bayes_floor_mae"]
    assert floor * 0.97 < mae < floor * 1.2, (mae, floor)
    assert abs(meta["bayes_floor_mae_gaussian"] - floor) / floor < 0.06
    assert floor < 5 and meta["bayes_floor_r2"] > 0.75


def test_generic_over_the_spec(pipeline, tmp_path):
    """Other features, deeper paths, a double target and bigint ids: no code change."""
    p = _variant(
        pipeline,
        source={**pipeline.source.model_dump(mode="json"), "id_type": "bigint", "id_column": "uid", "document_column": "doc"},
        target={"name": "spend", "json_path": "$.a.b.spend", "type": "double", "min": 0, "max": 1000, "default": 50},
        features=[
            {"name": "f1", "json_path": "$.a.b.c.f1", "type": "double", "min": -5, "max": 5},
            {"name": "f2", "json_path": "$.a.f2", "type": "integer", "min": 0, "max": 3},
            {"name": "f3", "json_path": "$.g", "type": "category", "categories": ["x", "y"]},
            {"name": "f4", "json_path": "$.h.flag", "type": "boolean"},
        ],
    )
    meta = demo_data.write(str(tmp_path / "s.parquet"), p, rows=3000, seed=1)
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.schema.field("uid").type == "int64" and table.column_names == ["uid", "doc"]
    good = [_parse(d) for d in table.column("doc").to_pylist()]
    good = [d for d in good if d is not None]
    assert len(good) < table.num_rows  # some documents are malformed
    assert any(isinstance(d["a"]["b"]["c"].get("f1"), float) for d in good)
    st = fixtures.staging(p, table)
    spend = st.column("spend").drop_null().to_numpy()
    assert len(spend) == meta["labelled_rows"] and spend.min() >= 0 and spend.max() <= 1000
    assert set(meta["features"]) == {"f1", "f2", "f3", "f4"} and meta["bayes_floor_mae"] > 0


@pytest.mark.parametrize("args, message", [
    (["--rows", "0"], "Invalid value for '--rows'"),
    (["--rows", "5", "--labelled-share", "0"], "Invalid value for '--labelled-share'"),
])
def test_cli_refuses_bad_options(tmp_path, args, message):
    result = CliRunner().invoke(main, ["demo-data", str(PIPELINE), "--env-file", str(ENV),
                                       "--out", str(tmp_path / "x.parquet"), *args])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("env", [("--env-file", str(ENV)), ()])  # the AWS variables do not matter here
def test_cli_writes_file_and_meta(tmp_path, monkeypatch, env):
    for name in ("AWS_ACCOUNT_ID", "S3_BUCKET", "SUBNET_ID", "SECURITY_GROUP_ID"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "d" / "src.parquet"
    result = CliRunner().invoke(main, ["demo-data", str(PIPELINE), *env, "--rows", "500", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Bayes floor MAE" in result.output
    assert pq.read_table(out).num_rows == 500 and json.loads(Path(f"{out}.meta.json").read_text())["rows"] == 500


def test_array_paths_are_refused_with_the_field(pipeline, tmp_path):
    p = _variant(pipeline, features=[{"name": "first_item", "json_path": "$.items[0]", "type": "double"}])
    with pytest.raises(Exception, match=r"first_item: json_path \$\.items\[0\]: demo-data writes object paths only"):
        demo_data.write(str(tmp_path / "s.parquet"), p, rows=10)


# --- class targets and several targets ---------------------------------------------------------

@pytest.fixture(scope="module")
def classes(pipeline, tmp_path_factory):
    """The six-class example: its source and what the staging SQL makes of it."""
    p, _ = load_pipeline(ROOT / "pipelines" / "classify_seniority.yaml", _variables((), str(ENV)))
    path = tmp_path_factory.mktemp("classes") / "src.parquet"
    meta = demo_data.write(str(path), p, rows=20_000, seed=4)
    return p, meta, fixtures.staging(p, pq.read_table(path))


def test_class_labels_carry_their_mess_and_the_sql_keeps_the_readable_ones(classes):
    p, meta, st = classes
    labels = st.column("seniority_level").drop_null().to_pylist()
    assert len(labels) == meta["labelled_rows"] and set(labels) == set(p.target.classes)
    shares = np.bincount([p.target.classes.index(c) for c in labels], minlength=6) / len(labels)
    assert shares == pytest.approx(meta["targets"]["seniority_level"]["class_shares"], abs=1e-4)
    assert 0.05 < shares.min() and shares.max() < 0.5  # unequal classes, none vanishing


def test_class_floor_lies_between_the_majority_class_and_certainty(classes):
    """The Bayes posterior's expected accuracy and log loss, and the realised ones on the drawn labels
    agree within the Monte Carlo's and the sample's noise: the floor is the generator's own."""
    _, meta, _ = classes
    t = meta["targets"]["seniority_level"]
    assert t["majority_class_accuracy"] + 0.1 < t["bayes_floor_accuracy"] < 0.9
    assert abs(t["bayes_realised_accuracy"] - t["bayes_floor_accuracy"]) < 0.02
    assert abs(t["bayes_realised_log_loss"] - t["bayes_floor_log_loss"]) < 0.04
    assert 0 < t["bayes_floor_log_loss"] < np.log(6)  # better than knowing nothing
    assert meta["bayes_floor_accuracy"] == t["bayes_floor_accuracy"]  # the first target's at the top too


def _curved(raw: np.ndarray, stats: tuple | None = None) -> tuple[np.ndarray, tuple]:
    """Each column standardised, its square and signed square, and whether it is missing: a smooth
    additive model's input (a class's score is a sum of each feature's position, or its signed square)."""
    stats = stats or (np.nanmean(raw, axis=0), np.nanstd(raw, axis=0) + 1e-9)
    z = (raw - stats[0]) / stats[1]
    missing = np.isnan(z)
    z = np.nan_to_num(z)
    return np.hstack([z, z * z, z * np.abs(z), missing]).astype(np.float32), stats


@pytest.mark.parametrize("example, target, seed", [
    ("classify_seniority", "seniority_level", 4),  # six classes
    ("classify_homeowner", "homeowner", 4),  # true/false
    ("predict_profile", "homeowner", 6),  # the second of two targets: its labels, drawn from the features too
])
def test_class_floor_is_a_limit_a_classifier_approaches_but_does_not_beat(example, target, seed, tmp_path):
    """A logistic regression fitted on half the labelled rows lands near the stated floor on the other
    half (accuracy and log loss), never past it by more than the sample's noise: the labels are drawn
    from the features, and the floor is what they allow, not a guess. ~3,800 rows each half."""
    p, _ = load_pipeline(ROOT / "pipelines" / f"{example}.yaml", _variables((), str(ENV)))
    meta = demo_data.write(str(tmp_path / "s.parquet"), p, rows=20_000, seed=seed)
    st = fixtures.staging(p, pq.read_table(tmp_path / "s.parquet"))
    classes = next(t for t in p.target_list if t.name == target).classes
    labels = st.column(target).to_pylist()
    keep = [i for i, v in enumerate(labels) if v is not None]
    y = np.array([classes.index(str(labels[i]).lower()) for i in keep])
    raw = Encoder.from_spec(p.features).raw(st.take(keep))
    half = len(y) // 2
    x_fit, stats = _curved(raw[:half])
    model = Logistic(alpha=1.0).fit(x_fit, y[:half], len(classes))
    logits = model.logits(_curved(raw[half:], stats)[0]).astype(float)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    accuracy = float((prob.argmax(axis=1) == y[half:]).mean())
    log_loss = float(-np.log(np.clip(prob[np.arange(y.size - half), y[half:]], 1e-15, 1)).mean())
    t = meta["targets"][target]
    # The accuracy's sampling noise on ~3,800 rows is ~0.008; the floor is ~0.15-0.3 above the majority class.
    assert t["bayes_floor_accuracy"] - 0.045 < accuracy < t["bayes_floor_accuracy"] + 0.02, (accuracy, t)
    assert t["bayes_floor_log_loss"] * 0.97 < log_loss < t["bayes_floor_log_loss"] * 1.1, (log_loss, t)
    assert accuracy > t["majority_class_accuracy"] + 0.1


def test_a_second_target_leaves_the_first_targets_data_as_it_was(pipeline, tmp_path):
    """Each target past a numeric first draws from its own stream: adding one changes the documents
    (its field), never the first target's values nor its floor."""
    two = _variant(pipeline, target=None, targets=[pipeline.target.model_dump(mode="json"),
                   {"name": "owner", "json_path": "$.x.owner", "type": "boolean", "default": False}],
                   training={**pipeline.training.model_dump(mode="json"), "models": [
                       *[m.model_dump(mode="json") for m in pipeline.training.models],
                       {"name": "logistic", "kind": "logistic"}]})
    one_meta = demo_data.write(str(tmp_path / "one.parquet"), pipeline, rows=3000, seed=5)
    two_meta = demo_data.write(str(tmp_path / "two.parquet"), two, rows=3000, seed=5)
    assert {k: v for k, v in two_meta["targets"]["age"].items()} == one_meta["targets"]["age"]
    ages = [fixtures.staging(p, pq.read_table(tmp_path / f)).column("age").to_pylist()
            for p, f in ((pipeline, "one.parquet"), (two, "two.parquet"))]
    assert ages[0] == ages[1]
    assert two_meta["targets"]["owner"]["bayes_floor_accuracy"] > two_meta["targets"]["owner"]["majority_class_accuracy"]


def test_a_pipeline_without_a_target_gets_its_features_only(pipeline, tmp_path):
    etl, _ = load_pipeline(ROOT / "pipelines" / "etl_device_activity.yaml", _variables((), str(ENV)))
    meta = demo_data.write(str(tmp_path / "s.parquet"), etl, rows=2000, seed=1)
    assert meta["targets"] == {} and meta["labelled_rows"] == 0 and set(meta["features"]) == {
        "device_type", "seniority_level", "posts_per_week", "night_activity_share"}
    docs = [_parse(d) for d in pq.read_table(tmp_path / "s.parquet").column("profile_json").to_pylist()]
    assert any(d and "device" in d for d in docs)


def test_cli_states_each_targets_floor(tmp_path):
    out = tmp_path / "src.parquet"
    result = CliRunner().invoke(main, ["demo-data", str(ROOT / "pipelines" / "predict_profile.yaml"), "--env-file",
                                       str(ENV), "--rows", "2000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    t = json.loads(Path(f"{out}.meta.json").read_text())["targets"]
    assert f"  age: Bayes floor MAE {t['age']['bayes_floor_mae']:.3f}, R² " in result.output
    assert (f"  homeowner: Bayes floor accuracy {t['homeowner']['bayes_floor_accuracy']:.3f}, log loss "
            f"{t['homeowner']['bayes_floor_log_loss']:.3f} (majority class "
            f"{t['homeowner']['majority_class_accuracy']:.3f})") in result.output
