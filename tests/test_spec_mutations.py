"""Broken pipeline files: each gives located lines `FILE:LINE:COL: field: message` and exit 1
from `stepkit validate`, never a traceback. LINE:COL is computed here from the broken text: the
place the mutation wrote (`at` names the token inside the replacement the message must point at).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = (ROOT / "pipelines" / "predict_age.yaml").read_text()
ENV = str(ROOT / "pipelines" / "example.env")
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<field>[^ ]*): (?P<message>.+)$")


# (case, old text, new text, token in new text the message points at, field, words in the message)
CASES = [
    ("unknown field", "  default: 38\n", "  default: 38\n  colour: blue\n", "colour", "target.colour",
     "unknown field"),
    ("wrong type", "batches: 898", "batches: many", "many", "batching.batches", "valid integer"),
    ("illegal fargate size", "prediction: {cpu: 4, memory_gb: 16", "prediction: {cpu: 4, memory_gb: 70", "70",
     "compute.tasks.prediction.memory_gb", "70 GB is not a Fargate size: 4 vCPU takes 8-30 GB"),
    ("illegal fargate cpu", "training: {cpu: 16,", "training: {cpu: 3,", "3",
     "compute.tasks.training.cpu", "3 is not a Fargate vCPU size"),
    ("undefined variable", "  bucket: ${S3_BUCKET}\n", "  bucket: ${NOPE_BUCKET}\n", "${NOPE_BUCKET}",
     "aws.bucket", "variable ${NOPE_BUCKET} is not set"),
    ("table name not an identifier", "  staging: predict_age_staging_parsed_features_2025q3",
     "  staging: Predict-Age-Staging", "Predict-Age-Staging", "tables.staging", "is not an Athena identifier"),
    ("inline map at 100", "  max_concurrency: 100\n", "  max_concurrency: 100\n  map_mode: inline\n", "inline",
     "batching.map_mode", "max_concurrency 100 with an inline Map"),
    ("duplicate key", "  default: 38\n", "  default: 38\n  default: 40\n", "default: 40", "target.default",
     "duplicate key"),
    ("bad json path", "  json_path: $.person.age", "  json_path: person.age", "person.age", "target.json_path",
     "is not a simple JSON path"),
    ("batches over 1000", "batches: 898", "batches: 1001", "1001", "batching.batches",
     "1001 batches: States.ArrayRange makes at most 1000"),
    ("bucketed over 100 writers", "    template: training_targets.sql.j2\n",
     "    template: training_targets.sql.j2\n    bucketed_by: [id]\n    bucket_count: 898\n", "898",
     "stages[3].bucket_count", "898 partition x bucket combinations"),
    ("unknown stage type", "  - name: GenerateBatchIds\n    type: batch_ids", "  - name: GenerateBatchIds\n    type: batch_idz",
     "batch_idz", "stages[6].type", "'batch_idz' is not a stage type"),
    ("neither a number nor a name", "    partitions: batches\n", "    partitions: batchez\n", "batchez",
     "stages[5].partitions", "Input should be a valid integer, unable to parse string as an integer (got 'batchez'); "
     "or: Input should be 'batches' or 'batch_groups'"),
    ("unknown table key", "    table: training_targets\n", "    table: training_targetz\n", "training_targetz",
     "stages[3].table", "'training_targetz' is not a key of `tables`"),
    ("unknown task key", "    task: prediction\n", "    task: predictor\n", "predictor", "stages[8].task",
     "'predictor' is not a key of `compute.tasks`"),
    ("unknown field in a stage", "    seconds: 180\n", "    seconds: 180\n    minutes: 3\n", "minutes",
     "stages[11].minutes", "unknown field"),
    ("negative number", "  threshold_usd: 20", "  threshold_usd: -5", "-5", "cost_alarm.threshold_usd",
     "greater than 0"),
    ("bad schedule", "  expression: cron(0 6 ? * MON *)", "  expression: cron(0 6 * * MON *)",
     "cron(0 6 * * MON *)", "schedule.expression", "'?' in day-of-month or day-of-week"),
    # Names stepkit creates must be usable bare in Athena's queries (Trino) and DDL (Hive).
    ("feature named with a reserved word", "{name: num_jobs,", "{name: order,", "order", "features[2].name",
     "'order' is a reserved word in Athena DDL and queries"),
    ("target named with a reserved word", "target:\n  name: age\n", "target:\n  name: values\n", "values",
     "target.name", "'values' is a reserved word in Athena DDL and queries"),
    ("table named with a reserved word", "  human_qa: predict_age_human_qa\n", "  human_qa: values\n", "values",
     "tables.human_qa", "'values' is a reserved word in Athena DDL and queries"),
    ("database named with a reserved word", "  database: ai_agent_kb_predict_age\n", "  database: group\n", "group",
     "aws.database", "'group' is a reserved word"),
    # A source the pipeline would drop, overwrite or delete files of.
    ("source is one of the pipeline's tables", "  database: ai_agent_kb\n  table: kb_person_profiles_2025q3\n",
     "  database: ai_agent_kb_predict_age\n  table: predict_age_human_qa\n", "predict_age_human_qa", "source.table",
     "the source ai_agent_kb_predict_age.predict_age_human_qa is the pipeline's own table `tables.human_qa`"),
    ("source is a table of the pipeline's database by default", "  database: ai_agent_kb\n  table: kb_person_profiles_2025q3\n",
     "  table: predict_age_final_results\n", "predict_age_final_results", "source.table", "`tables.final_results`"),
    ("source location under the pipeline's tables/", "  location: s3://${S3_BUCKET}/kb/person_profiles_2025q3/",
     "  location: s3://${S3_BUCKET}/predict-age/tables/predict_age_staging_parsed_features_2025q3/", "s3://",
     "source.location", "s3://stepkit-example-bucket/predict-age/tables/predict_age_staging_parsed_features_2025q3/ "
     "lies under the pipeline's own s3://stepkit-example-bucket/predict-age/"),
    ("source location is the pipeline's prefix", "  location: s3://${S3_BUCKET}/kb/person_profiles_2025q3/",
     "  location: s3://${S3_BUCKET}/predict-age", "s3://", "source.location", "keep the source outside aws.prefix"),
    ("source location under the pipeline's uploads", "  location: s3://${S3_BUCKET}/kb/person_profiles_2025q3/",
     "  location: s3://${S3_BUCKET}/predict-age/stepkit/", "s3://", "source.location", "lies under the pipeline's own"),
    ("source location holds the pipeline's prefix", "  location: s3://${S3_BUCKET}/kb/person_profiles_2025q3/",
     "  location: s3://${S3_BUCKET}/", "s3://", "source.location", "'s3://stepkit-example-bucket/' is a whole bucket"),
    ("partition column not last in the SELECT", "    template: staging.sql.j2\n    partitioned_by: [batch_group]\n",
     "    template: staging.sql.j2\n    partitioned_by: [batch_id]\n", "staging.sql.j2", "stages[1].template",
     "sql/StagingFeatures.sql does not run on Athena: HIVE_COLUMN_ORDER_MISMATCH: partition columns batch_id must "
     "be the last columns of the SELECT list, in that order (it ends with batch_group)"),
    ("own worker module without its image", "timeout_minutes: 60}", "timeout_minutes: 60, module: my_pkg.scoring}",
     "my_pkg.scoring", "compute.tasks.prediction.module", "a task's own `module` needs its own `image`"),
    # Class targets, several targets, the training section they need (issue 12).
    ("category target, default not a class", "target:\n  name: age\n  json_path: $.person.age\n  type: integer\n  min: 13\n  max: 100\n  default: 38\n",
     "target:\n  name: age\n  json_path: $.person.age\n  type: category\n  categories: [young, old]\n  default: middle\n",
     "name: age", "target", "default 'middle' is not one of the categories (young, old)"),
    ("boolean target with a range", "target:\n  name: age\n  json_path: $.person.age\n  type: integer\n",
     "target:\n  name: age\n  json_path: $.person.age\n  type: boolean\n", "name: age", "target",
     "`min`/`max` are only for numeric targets"),
    ("category splits on a one-hot kind", "    - name: ridge\n      kind: ridge\n",
     "    - name: ridge\n      kind: ridge\n      category_splits: ordinal\n", "name: ridge", "training.models[0]",
     "`category_splits` is only for kinds that split on category codes (xgboost, xgboost_quantile, "
     "xgboost_classifier), not ridge"),
    ("class target without a class model", "  type: integer\n  min: 13\n  max: 100\n  default: 38\n",
     "  type: boolean\n  default: false\n", "boolean", "target.type",
     "target 'age' (boolean) has no classification model among training.models (kinds: logistic, xgboost_classifier)"),
    ("target and targets both", "target:\n  name: age\n",
     "targets:\n  - {name: income, json_path: $.finance.income, type: double, min: 0, max: 9, default: 1}\n"
     "target:\n  name: age\n", "- {name: income", "targets", "`target` and `targets` both set"),
    ("gate bound no target has", "  quality_gate: {max_mae: 5.0, min_r2: 0.75}",
     "  quality_gate: {max_mae: 5.0, min_accuracy: 0.75}", "0.75", "training.quality_gate.min_accuracy",
     "no classification target has accuracy (the targets: age (integer))"),
    ("selection metric of no target's kind", "  selection_metric: mae", "  selection_metric: log_loss", "log_loss",
     "training.selection_metric", "log_loss picks classification models: no target is a classification target"),
    # Tables under any keys, stages that name theirs by role.
    ("a table keyed like the model", "tables:\n  staging:", "tables:\n  model: predict_age_models\n  staging:",
     "model:", "tables", "model: a key stages use for the trained model, not a table"),
    ("a role naming no table", "    template: human_qa.sql.j2\n",
     "    template: human_qa.sql.j2\n    roles: {predictions: scores}\n", "scores", "stages[9].roles.predictions",
     "'scores' is not a key of `tables`"),
    ("stepkit's worker in the wrong block", "    task: prediction\n", "    task: training  # per batch\n", "training",
     "stages[8].task", "stepkit.workers.training runs once per run: use it in a `fargate_task` stage"),
    ("own command without own image", "    task: training\n", "    task: training\n    command: [python, train.py]\n",
     "[python", "stages[4].command", "a `command` runs the task's own image: set compute.tasks.training.image"),
    ("existing model copied by another worker", "  - name: GenerateBatchIds\n    type: batch_ids\n",
     "  - name: Reuse\n    type: existing_model\n    task: prediction\n  - name: GenerateBatchIds\n"
     "    type: batch_ids\n", "prediction", "stages[6].task",
     "task 'prediction' runs stepkit.workers.prediction: an existing_model stage runs stepkit.workers.training"),
    ("existing model of a run that is no run id", "  - name: GenerateBatchIds\n    type: batch_ids\n",
     "  - name: Reuse\n    type: existing_model\n    run: ../other\n  - name: GenerateBatchIds\n"
     "    type: batch_ids\n", "../other", "stages[6].run", "should match pattern"),
    # A run never deletes what its final stage produced.
    ("cleanup deletes the results", "    delete_data: [staging, training_features, training_targets, evaluation_features]\n",
     "    delete_data: [staging, training_features, training_targets, evaluation_features, final_results]\n",
     "final_results]", "stages[12].delete_data[4]",
     "'final_results' is what the pipeline's final stage FinalResults produces: its files are the run's results"),
    ("pre-cleanup deletes every run's results",
     "    delete_data: [staging, training_features, training_targets, evaluation_features, predictions, human_qa]\n",
     "    delete_data: [staging, training_features, training_targets, evaluation_features, predictions, human_qa, "
     "final_results]\n", "final_results]", "stages[0].delete_data[6]", "is what the pipeline's final stage FinalResults"),
    ("cleanup drops the results once made", "    comment: Drops intermediate tables and deletes their files.\n",
     "    comment: Drops intermediate tables and deletes their files.\n    drop_tables: [final_results]\n",
     "final_results]", "stages[12].drop_tables[0]", "dropping it after that stage leaves the run without its results"),
    ("on_failure deletes the results", "\nstages:\n  - name: PreCleanup",
     "\non_failure:\n  delete_data: [staging, final_results]\n\nstages:\n  - name: PreCleanup", "final_results]",
     "on_failure.delete_data[1]", "'final_results' is what the pipeline's final stage FinalResults produces"),
    ("worker module not a module name", "timeout_minutes: 60}",
     "timeout_minutes: 60, image: 'repo/mine:1', module: my-pkg/scoring}", "my-pkg/scoring",
     "compute.tasks.prediction.module", "should match pattern"),
]


def position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def validate(path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["validate", str(path), "--env-file", ENV])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.splitlines()


@pytest.mark.parametrize("case,old,new,at,field,words", CASES, ids=[c[0] for c in CASES])
def test_broken_file_is_located(tmp_path, case, old, new, at, field, words):
    assert GOOD.count(old) == 1, f"the case's anchor must be unique: {old!r}"
    text = GOOD.replace(old, new)
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    line, col = position(text, text.index(new) + new.index(at))

    code, lines = validate(path)

    assert code == 1
    assert lines, "no message"
    parsed = [LOCATED.match(x) for x in lines]
    assert all(parsed), lines
    hits = [m for m in parsed if m["field"] == field]
    assert hits, lines
    m = hits[0]
    assert (m["file"], int(m["line"]), int(m["col"])) == (str(path), line, col), lines
    assert words in m["message"]


def _with_bad_template(tmp_path, body: str):
    """The good pipeline whose TrainingTargets stage renders `body`; (path, line, col of `bad.sql.j2`)."""
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "bad.sql.j2").write_text(body)
    text = GOOD.replace("    template: training_targets.sql.j2\n", "    template: bad.sql.j2\n")
    text = text.replace("state_machine_name:", "templates: extra\nstate_machine_name:")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return (path, *position(text, text.index("bad.sql.j2")))


def test_missing_template_variable(tmp_path):
    """A template that uses a name stepkit does not give it (StrictUndefined) is located at `template:`."""
    path, line, col = _with_bad_template(tmp_path, "SELECT {{ no_such_variable }} AS x\n")
    code, lines = validate(path)
    assert code == 1
    assert lines == [f"{path}:{line}:{col}: stages[3].template: template bad.sql.j2: "
                     "'no_such_variable' is undefined"]


@pytest.mark.parametrize("body,words", [
    ("SELECT FROM WHERE (\n", "sql/TrainingTargets.sql does not parse as Athena SQL"),
    ("SELECT 1 AS a; SELECT 2 AS b\n", "sql/TrainingTargets.sql holds 2 statements"),
    ("SELECT 'unclosed\n", "sql/TrainingTargets.sql does not parse as Athena SQL"),
    # sqlglot reads these; Athena does not.
    ("SELECT 1 AS id, 2 AS order\n", "sql/TrainingTargets.sql does not run on Athena: 'order' is a reserved word "
     "in Athena queries; quote it as \"order\""),
    ("SELECT id, age AS values FROM t\n", "sql/TrainingTargets.sql does not run on Athena: 'values' is a reserved"),
])
def test_template_that_renders_bad_sql(tmp_path, body, words):
    """sqlglot reads every rendered statement; a failure points at the stage's `template`."""
    path, line, col = _with_bad_template(tmp_path, body)
    code, lines = validate(path)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(f"{path}:{line}:{col}: stages[3].template: {words}"), lines


@pytest.mark.parametrize("case,text,line,col,words", [
    ("yaml syntax", GOOD.replace("  percent: 10\n", "  percent: [10\n"), None, None, "YAML syntax"),
    ("tab indentation", GOOD.replace("  percent: 10\n", "\tpercent: 10\n"), None, None, "YAML syntax"),
    ("empty file", "", 1, 1, "the file is empty"),
    ("only a comment", "# nothing here\n", 1, 1, "the file is empty"),
    ("not a mapping", "- a\n- b\n", 1, 1, "a pipeline file is a mapping of fields"),
])
def test_unreadable_files(tmp_path, case, text, line, col, words):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, lines = validate(path)
    assert code == 1
    assert len(lines) == 1, lines
    m = re.match(rf"^{re.escape(str(path))}:(\d+):(\d+): (.+)$", lines[0])
    assert m, lines
    if line is not None:
        assert (int(m[1]), int(m[2])) == (line, col)
    else:
        # Syntax errors point at or just after the broken line (where the YAML parser gave up).
        broken = next(i for i, (a, b) in enumerate(zip(text.splitlines(), GOOD.splitlines()), 1) if a != b)
        assert broken <= int(m[1]) <= broken + 1
    assert words in m[3]


def test_missing_file(tmp_path):
    code, lines = validate(tmp_path / "nope.yaml")
    assert code == 1
    assert lines == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    text = GOOD.replace("batches: 898", "batches: many").replace("  default: 38\n", "  default: 38\n  colour: b\n")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, lines = validate(path)
    assert code == 1
    assert sorted(LOCATED.match(x)["field"] for x in lines) == ["batching.batches", "target.colour"]


@pytest.mark.parametrize("case", ["unknown field", "undefined variable", "unknown stage type"])
def test_real_command_prints_no_traceback(tmp_path, case):
    """Through the installed entry point, as a user runs it (CliRunner could hide a traceback)."""
    _, old, new, *_ = next(c for c in CASES if c[0] == case)
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace(old, new))
    result = subprocess.run([sys.executable, "-m", "stepkit", "validate", str(path), "--env-file", ENV],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert all(LOCATED.match(x) for x in result.stderr.splitlines()), result.stderr


# (section taken out, what the stages that need it say: (field, words)). An ETL leaves all of these out.
SECTIONS = [
    ("training", [("stages[4].task", "task 'training' runs stepkit.workers.training, which needs `training`: the "
                   "pipeline has none")]),
    ("sample", [("stages[4].task", "which needs `sample`")]),
    ("batching", [("stages[1].partitions", "partitions: batch_groups counts prediction batches: the pipeline has no "
                   "`batching`"), ("stages[6].type", "batch_ids makes one id per batch: the pipeline has no `batching`"),
                  ("stages[8].task", "task 'prediction' runs stepkit.workers.prediction, which needs `batching`")]),
    ("target", [("stages[4].task", "which needs `target`"), ("stages[8].task", "which needs `target`")]),
    ("features", [("stages[4].task", "which needs `features`"), ("stages[8].task", "which needs `features`")]),
]


def _without(text: str, section: str) -> str:
    """The file with a top-level section (and the gate, when training goes) taken out."""
    return re.sub(rf"^{section}:\n(?:(?:  .*|\s*#.*|)\n)*?(?=^\S)", "", text, count=1, flags=re.M)


@pytest.mark.parametrize("section, expected", SECTIONS, ids=[c[0] for c in SECTIONS])
def test_a_section_left_out_is_located_at_each_stage_that_needs_it(tmp_path, section, expected):
    text = _without(GOOD, section)
    assert f"\n{section}:" not in text
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, lines = validate(path)
    assert code == 1
    parsed = [LOCATED.match(x) for x in lines]
    assert all(parsed), lines
    for field, words in expected:
        assert any(m["field"] == field and words in m["message"] for m in parsed), (field, words, lines)
    stage_lines = {m["field"].split(".")[0] for m in parsed if m["field"].startswith("stages")}
    assert all(int(m["line"]) > 1 for m in parsed if m["field"].startswith("stages")), stage_lines


@pytest.mark.parametrize("body, words", [
    ("SELECT {{ target.name }} FROM {{ tables.profiles }}\n", "the pipeline has no `target` (the template uses `target`)"),
    ("SELECT {{ batches }} AS n FROM {{ tables.profiles }}\n",
     "the pipeline has no `batching` (the template uses `batches`)"),
    ("SELECT {{ sample.percent }} AS n FROM {{ tables.profiles }}\n",
     "the pipeline has no `sample` (the template uses `sample`)"),
])
def test_an_etl_template_using_a_section_the_pipeline_lacks(tmp_path, body, words):
    """The ETL example (no target, batching or sample) with its own template naming one: one line."""
    shutil.copytree(ROOT / "pipelines" / "etl", tmp_path / "etl")
    (tmp_path / "etl" / "bad.sql.j2").write_text(body)
    text = (ROOT / "pipelines" / "etl_device_activity.yaml").read_text()
    text = text.replace("    template: activity_by_segment.sql.j2\n", "    template: bad.sql.j2\n")
    path = tmp_path / "etl.yaml"
    path.write_text(text)
    line, col = position(text, text.index("bad.sql.j2"))
    code, lines = validate(path)
    assert code == 1
    assert lines == [f"{path}:{line}:{col}: stages[2].template: template bad.sql.j2: {words}"]


def test_a_template_naming_a_table_the_pipeline_lacks(tmp_path):
    path, line, col = _with_bad_template(tmp_path, "SELECT id FROM {{ tables.drift_report }}\n")
    code, lines = validate(path)
    assert code == 1
    assert lines == [f"{path}:{line}:{col}: stages[3].template: template bad.sql.j2: no table 'drift_report' in "
                     "`tables`: add it to `tables`, or map the role with the stage's `roles: {drift_report: KEY}` "
                     "(keys: staging, training_features, training_targets, evaluation_features, predictions, "
                     "human_qa, final_results)"]
