"""The `stepkit` commands this project's core owns: validate, compile, schema, graph."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from stepkit.cli import _variables, main
from stepkit.spec.loader import read_yaml
from stepkit.compiler.graph import node_id
from stepkit.compiler.load import json_schema

ROOT = Path(__file__).resolve().parents[1]
ENV = str(ROOT / "pipelines" / "example.env")
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
IDS = [p.stem for p in PIPELINES]
AGE, INCOME = ROOT / "pipelines" / "predict_age.yaml", ROOT / "pipelines" / "predict_income.yaml"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- validate ---------------------------------------------------------------------------------

def test_validate_several_good_files():
    result = run("validate", *map(str, PIPELINES), "--env-file", ENV)
    assert result.exit_code == 0, result.output
    ok = [line for line in result.stdout.splitlines() if line.endswith("SQL statements)")]
    assert [line.split(":")[0] for line in ok] == [str(p) for p in PIPELINES]


def test_validate_reports_each_file_and_fails_on_any(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGE.read_text().replace("batches: 898", "batches: 0"))
    result = run("validate", str(AGE), str(bad), str(INCOME), "--env-file", ENV)
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [str(AGE), str(INCOME)]
    errors = [line for line in result.stderr.splitlines() if ": warning: " not in line]
    assert len(errors) == 1 and re.match(rf"^{re.escape(str(bad))}:86:12: batching.batches: ", errors[0]), errors


@pytest.mark.parametrize("args,words", [
    (["--var", "NOEQUALS"], "--var 'NOEQUALS': expected NAME=VALUE"),
    (["--env-file", "/no/such.env"], "/no/such.env: no such env file"),
])
def test_bad_variables_are_one_line(args, words):
    result = run("validate", str(AGE), *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == words


def test_var_overrides_env_file():
    result = run("validate", str(AGE), "--env-file", ENV, "--var", "S3_BUCKET=Not_A_Bucket")
    assert result.exit_code == 1
    assert "aws.bucket: 'Not_A_Bucket' is not an S3 bucket name" in result.stderr


# --- compile ----------------------------------------------------------------------------------

def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_compile_is_byte_identical_across_runs(path, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert run("compile", str(path), "--env-file", ENV, "--out", str(first)).exit_code == 0
    assert run("compile", str(path), "--env-file", ENV, "--out", str(second)).exit_code == 0
    once = files(first)
    assert run("compile", str(path), "--env-file", ENV, "--out", str(first)).exit_code == 0
    assert files(first) == once == files(second)
    assert {"statemachine.asl.json", "iam/statemachine.json", "iam/task.json"} <= set(once)


def test_compile_rewrites_only_what_changed(tmp_path):
    out = tmp_path / "out"
    assert run("compile", str(AGE), "--env-file", ENV, "--out", str(out)).exit_code == 0
    asl, policy = out / "statemachine.asl.json", out / "iam" / "task.json"
    right = asl.read_bytes()
    asl.write_text("edited by hand\n")
    old = 1_000_000_000_000_000_000  # an mtime no write could give
    os.utime(policy, ns=(old, old))
    assert run("compile", str(AGE), "--env-file", ENV, "--out", str(out)).exit_code == 0
    assert asl.read_bytes() == right  # restored
    assert policy.stat().st_mtime_ns == old  # same content: not touched
    assert not list(out.rglob("*.tmp"))


def test_compile_removes_stale_files(tmp_path):
    """What an earlier compile wrote and this one does not (a renamed stage's SQL) goes; nothing else."""
    out = tmp_path / "out"
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(AGE.read_text().replace("  - name: HumanQA\n", "  - name: HumanReview\n"))
    assert run("compile", str(renamed), "--env-file", ENV, "--out", str(out)).exit_code == 0
    assert (out / "sql" / "HumanReview.sql").exists()
    (out / "notes.txt").write_text("mine\n")  # not stepkit's: kept
    (out / "sql" / "report.sql").write_text("SELECT 1\n")
    result = run("compile", str(AGE), "--env-file", ENV, "--out", str(out))
    assert result.exit_code == 0
    assert not (out / "sql" / "HumanReview.sql").exists() and (out / "sql" / "HumanQA.sql").exists()
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "sql" / "report.sql").read_text() == "SELECT 1\n"
    listed = [line.strip() for line in result.stdout.splitlines()[1:]]
    mine = {"notes.txt", "sql/report.sql", ".stepkit-compile.json"}
    assert sorted(listed) == sorted(p for p in files(out) if p not in mine)
    assert json.loads((out / ".stepkit-compile.json").read_text())["files"] == sorted(listed)


def test_compile_error_is_located_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGE.read_text().replace("    task: prediction\n", "    task: nope\n"))
    result = run("compile", str(bad), "--env-file", ENV, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert re.match(rf"^{re.escape(str(bad))}:\d+:\d+: stages\[8\].task: 'nope' is not a key", result.stderr)
    assert not (tmp_path / "out").exists()


def test_compile_prints_warnings_located():
    result = run("compile", str(AGE), "--env-file", ENV, "--out", "/dev/null/x")
    # Writing fails (a file is not a folder): one line naming the folder, after the located warning.
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert re.match(rf"^{re.escape(str(AGE))}:\d+:\d+: stages\[8\].task: warning: 100 tasks x 4 vCPU", lines[0])
    assert lines[-1].startswith("/dev/null/x: cannot write:")


# --- schema -----------------------------------------------------------------------------------

def schema_from_cli() -> dict:
    result = run("schema")
    assert result.exit_code == 0
    return json.loads(result.stdout)


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_schema_accepts_the_pipelines(path):
    schema = schema_from_cli()
    jsonschema.Draft202012Validator.check_schema(schema)
    data, _ = read_yaml(path, _variables((), ENV))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert [e.message for e in errors] == []


@pytest.mark.parametrize("change,words", [
    (lambda d: d["source"].update(colour="blue"), "Additional properties are not allowed"),
    (lambda d: d["stages"][0].update(type="athena_ctass"), "is not valid under any of the given schemas"),
    (lambda d: d["compute"]["lambda"].update(memory_mb="many"), "is not of type 'integer'"),
])
def test_schema_refuses_broken_data(change, words):
    data, _ = read_yaml(AGE, _variables((), ENV))
    change(data)
    messages = [e.message for e in jsonschema.Draft202012Validator(schema_from_cli()).iter_errors(data)]
    assert any(words in m for m in messages), messages


def test_every_field_is_described():
    """The schema is the documentation."""
    undocumented = []
    for name, model in json_schema()["$defs"].items():
        for field, spec in model.get("properties", {}).items():
            if "description" not in spec and field != "type":
                undocumented.append(f"{name}.{field}")
    assert undocumented == []


def test_committed_schema_is_current():
    committed = (ROOT / "schema" / "pipeline.schema.json").read_text()
    assert committed == run("schema").stdout, "regenerate: stepkit schema > schema/pipeline.schema.json"
    for path in PIPELINES:
        assert path.read_text().splitlines()[0] == "# yaml-language-server: $schema=../schema/pipeline.schema.json"


# --- graph ------------------------------------------------------------------------------------

def all_states(states: dict) -> list[tuple[str, dict]]:
    """Every (name, state), in Map item processors and Parallel branches too."""
    out = []
    for name, state in states.items():
        out.append((name, state))
        processor = state.get("ItemProcessor")
        if processor:
            out += all_states(processor["States"])
        for branch in state.get("Branches", []):
            out += all_states(branch["States"])
    return out


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_graph_names_every_state(path, tmp_path):
    out = tmp_path / "out"
    assert run("compile", str(path), "--env-file", ENV, "--out", str(out)).exit_code == 0
    definition = json.loads((out / "statemachine.asl.json").read_text())
    result = run("graph", str(path), "--env-file", ENV)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = {m[1] for m in (re.match(r"^\s+([A-Za-z0-9_]+)[\[\(\{]", x) for x in lines) if m}
    assert {node_id(n) for n, _ in all_states(definition["States"])} <= nodes
    edges = {(m[1], m[2]) for m in (re.match(r"^\s+(\w+) -->(?:\|[^|]*\|)? (\w+)$", x) for x in lines) if m}
    for name, state in all_states(definition["States"]):
        targets = [state.get("Next"), state.get("Default"), *[r["Next"] for r in state.get("Choices", [])],
                   *[b["StartAt"] for b in state.get("Branches", [])]]
        for target in filter(None, targets):
            assert (node_id(name), node_id(target)) in edges, (name, target)


# --- what compile imports -----------------------------------------------------------------------

HEAVY = ("pandas", "numpy", "xgboost", "sklearn", "pyarrow", "duckdb", "boto3", "matplotlib")


def imported(cmd: list[str], stdin: str | None = None) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", *cmd], capture_output=True, text=True,
                            cwd=ROOT, input=stdin)
    assert result.returncode == 0, result.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", result.stderr, re.M)
    assert names, "no -X importtime output"
    return {n.split(".")[0] for n in names}


def test_compile_imports_no_heavy_library(tmp_path):
    top = imported(["-m", "stepkit", "compile", "pipelines/predict_age.yaml", "--env-file", ENV,
                    "--out", str(tmp_path)])
    assert {"pydantic", "jinja2", "yaml", "stepkit"} <= top
    assert sorted(top & set(HEAVY)) == []


def test_sql_checker_child_imports_only_sqlglot():
    top = imported(["-m", "stepkit.compiler.sqlcheck"], stdin=json.dumps("SELECT 1") + "\n")
    assert "sqlglot" in top
    assert sorted(top & set(HEAVY + ("pydantic", "jinja2"))) == []
