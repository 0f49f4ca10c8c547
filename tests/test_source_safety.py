"""A pipeline never deletes or overwrites its own source: on AWS (validate: the source is not one of
its tables, and its location shares nothing with s3://BUCKET/PREFIX/) and locally (the --source is
not inside the work folder's warehouse or runs, and the work folder is not inside the source)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepkit.compiler import source_safety
from stepkit.compiler.load import load_pipeline, pipeline_model
from stepkit.errors import DataError
from stepkit.ir.context import Context
from stepkit.local.source import check_apart
from tests._local_runs import SMALL, run_local

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "stepkit-example-bucket"  # pipelines/example.env; aws.prefix is predict-age


def variant(pipeline, **changes):
    """A validated copy of `pipeline` with sections updated (dicts merge), stages as blocks."""
    data = pipeline.model_dump(mode="json", by_alias=True)
    for key, value in changes.items():
        data[key] = {**data[key], **value}
    return pipeline_model().model_validate(data)


def _env() -> dict[str, str]:
    lines = (ROOT / "pipelines" / "example.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


# (source fields changed, None when accepted, else (field, words))
AWS_CASES = [
    ({}, None),
    ({"location": f"s3://{BUCKET}/predict-age-raw/"}, None),  # shares the prefix's letters, not its folder
    ({"location": f"s3://{BUCKET}/data/predict-age/"}, None),
    ({"location": f"s3://other-bucket/predict-age/tables/x/"}, None),
    ({"database": "ai_agent_kb_predict_age", "table": "kb_person_profiles_2025q3"}, None),
    ({"database": "other_db", "table": "predict_age_human_qa"}, None),
    ({"database": None, "table": "predict_age_ml_predictions"},
     ("source.table", "is the pipeline's own table `tables.predictions`")),
    ({"database": "ai_agent_kb_predict_age", "table": "predict_age_staging_parsed_features_2025q3"},
     ("source.table", "`tables.staging`")),
    ({"location": f"s3://{BUCKET}/predict-age/tables/predict_age_final_results/"},
     ("source.location", f"lies under the pipeline's own s3://{BUCKET}/predict-age/")),
    ({"location": f"s3://{BUCKET}/predict-age/"}, ("source.location", "keep the source outside aws.prefix")),
    ({"location": f"s3://{BUCKET}/predict-age/runs/"}, ("source.location", "lies under")),
    ({"location": f"s3://{BUCKET}/predict-age/map-results/"}, ("source.location", "lies under")),
    ({"location": f"s3://{BUCKET}/predict-age/athena-results/"}, ("source.location", "lies under")),
    ({"location": f"s3://{BUCKET}/predict-age/stepkit/"}, ("source.location", "lies under")),
    ({"location": f"s3://{BUCKET}/predict-age/kb/raw/"}, ("source.location", "lies under")),
    # (A whole bucket, which holds the pipeline's folder, is refused by the spec itself: test_spec_mutations.)
]


@pytest.mark.parametrize("changes, refused", AWS_CASES)
def test_validate_refuses_a_source_the_pipeline_writes(changes, refused):
    pipeline, _ = load_pipeline(ROOT / "pipelines" / "predict_age.yaml", _env())
    found = source_safety.check(Context(variant(pipeline, source=changes)))
    if refused is None:
        assert found == []
        return
    assert [(".".join(f.loc), f.level, f.root) for f in found] == [(refused[0], "error", True)]
    assert refused[1] in found[0].message


def _parquet(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"person_id": ["a"], "profile_json": ["{}"]}), path)
    return path


# (source path, work folder; both under tmp; None when accepted, else words of the one line)
LOCAL_CASES = [
    ("data/source.parquet", "work", None),
    ("work/demo/source.parquet", "work", None),  # where the demo source is cached: nothing deletes it
    ("work/my.parquet", "work", None),
    ("work/warehouse/tables/predict_age_staging/run-1/part.parquet", "work", "the source lies inside"),
    ("work/warehouse/tables/predict_age_staging/", "work", "the source lies inside"),
    ("work/warehouse/", "work", "the source lies inside"),
    ("work/runs/run-1/source.parquet", "work", "the source lies inside"),
    ("data/", "data/work", "lies inside the source folder"),
    ("data/", "data", "lies inside the source folder"),
    ("data/source.parquet", "data", None),  # a single file beside the work folder's contents
]


@pytest.mark.parametrize("source, workdir, words", LOCAL_CASES)
def test_local_source_and_work_folder_stay_apart(tmp_path, source, workdir, words):
    path = tmp_path / source
    _parquet(path / "part.parquet" if source.endswith("/") else path)
    if words is None:
        check_apart(path, tmp_path / workdir)
        return
    with pytest.raises(DataError) as e:
        check_apart(path, tmp_path / workdir)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_symlink_into_the_warehouse_is_inside_it(tmp_path):
    target = _parquet(tmp_path / "work" / "warehouse" / "tables" / "t" / "r" / "part.parquet")
    link = tmp_path / "elsewhere.parquet"
    link.symlink_to(target)
    with pytest.raises(DataError, match="the source lies inside"):
        check_apart(link, tmp_path / "work")


def test_local_run_refuses_a_source_its_precleanup_would_delete(tmp_path):
    """End to end: one line, exit 1, before anything runs; the file is still there."""
    workdir = tmp_path / "work"
    source = _parquet(workdir / "warehouse" / "tables" / "predict_age_staging_parsed_features_2025q3" / "old"
                      / "source.parquet")
    before = source.read_bytes()
    result = run_local(SMALL, str(source), workdir)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "the source lies inside" in lines[0], result.output
    assert source.read_bytes() == before
    assert not list(workdir.glob("runs/*/run.json"))
    shutil.rmtree(workdir)
