"""AWS size limits (issue 11, item 10): `validate` measures the rendered artifacts and names the limit,
the size and by how much it is over, located at the part of the file that makes it big. Each row
builds a spec past one limit (or just within it) from the shipped pipeline.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepkit.cli import _variables, main
from stepkit.compiler import limits
from stepkit.ir.asl import one_line, render
from stepkit.compiler.build import compile_file
from stepkit.spec.loader import Positions

ROOT = Path(__file__).resolve().parents[1]
GOOD = (ROOT / "pipelines" / "predict_age.yaml").read_text()
ENV = str(ROOT / "pipelines" / "example.env")
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<field>[^ ]*): (?P<message>.+)$")
LAST_STAGE = "    delete_data: [staging, training_features, training_targets, evaluation_features]\n"


def features(n: int, width: int) -> str:
    """The shipped file with `n` numeric features whose names are `width` + 6 characters long."""
    start, end = GOOD.index("features:\n"), GOOD.index("\ntables:")
    rows = [f"  - {{name: f{i:04d}_{'x' * width}, json_path: $.a.f{i:04d}, type: double, min: 0, max: 1}}"
            for i in range(n)]
    return GOOD[:start] + "features:\n" + "\n".join(rows) + GOOD[end:]


def lambda_stages(n: int) -> str:
    stages = "".join(f"  - name: Notify{i}\n    type: lambda_invoke\n"
                     f"    function: arn:aws:lambda:us-east-1:123456789012:function:notify-{i:03d}-{'n' * 40}\n"
                     for i in range(n))
    return GOOD.replace(LAST_STAGE, LAST_STAGE + stages)


def tasks(n: int) -> str:
    """`n` more tasks, each run by a stage of its own (a task no stage runs gets no resources)."""
    extra = "".join(f"    extra_{i:03d}: {{cpu: 1, memory_gb: 2, timeout_minutes: 5}}\n" for i in range(n))
    stages = "".join(f"  - name: Extra{i:03d}\n    type: fargate_task\n    task: extra_{i:03d}\n" for i in range(n))
    return GOOD.replace("  tasks:\n", "  tasks:\n" + extra).replace(LAST_STAGE, LAST_STAGE + stages)


LONG_STAGE = "E" * 78
# (case, pipeline text, [(field, limit words)] of the lines expected; [] = within every limit)
ROWS = [
    ("600 long feature names", features(600, 140), [
        ("stages[1].template", "Athena takes at most 262,144"),
        ("stages", "Step Functions takes at most 1,048,576"),
        ("stages", "CloudFormation reads at most 1,000,000 from S3")]),
    ("300 shorter feature names", features(300, 60), []),
    ("a stage name its suffix makes too long", GOOD.replace("  - name: EvaluationFeatures\n",
                                                             f"  - name: {LONG_STAGE}\n"),
     [("stages[5].name", "Step Functions takes at most 80")]),
    ("container overrides", GOOD.replace("    task: training\n", "    task: training\n    args: ["
                                         + ", ".join(["a" * 200] * 45) + "]\n"),
     [("stages[4].args", "ECS RunTask takes at most 8,192")]),
    ("a state input", GOOD.replace(LAST_STAGE, LAST_STAGE + "  - name: Notify\n    type: lambda_invoke\n"
                                   f"    function: notify\n    payload: {{blob: {'b' * 270_000}}}\n"),
     [("stages[13]", "Step Functions takes at most 262,144 (256 KiB)")]),
    ("a role policy", lambda_stages(80), [("stages", "IAM allows a role 10,240")]),
    ("outputs", tasks(70), [("stages", "a stack may have 200")]),
    ("resources", tasks(170), [("stages", "a stack may have 500"), ("stages", "a stack may have 200")]),
]


@pytest.mark.parametrize("case,text,expected", ROWS, ids=[r[0] for r in ROWS])
def test_size_limits(tmp_path, case, text, expected):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path), "--env-file", ENV])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr
    lines = [x for x in result.stderr.splitlines() if ": warning: " not in x]
    if not expected:
        assert (result.exit_code, lines) == (0, [])
        return
    assert result.exit_code == 1
    parsed = [LOCATED.match(x) for x in lines]
    assert all(parsed), lines
    for field, words in expected:
        hits = [m for m in parsed if m["field"] == field and words in m["message"]]
        assert len(hits) == 1, (field, words, lines)
        m = hits[0]
        # "is N bytes ... at most L ...: D over": D is exactly N - L.
        numbers = re.search(r"(?:is|are|has) ([\d,]+) .*?(?:at most|allows a role|may have|takes) ([\d,]+).*?: "
                            r"([\d,]+) over", m["message"])
        assert numbers or " over" not in m["message"], m["message"]
        if numbers:
            size, limit, over = (int(x.replace(",", "")) for x in numbers.groups())
            assert (size - limit, size > limit) == (over, True), m["message"]


def test_the_query_is_measured_as_athena_receives_it(tmp_path):
    """The measure is the one-line statement with an 80-character run id, in UTF-8 bytes."""
    path = tmp_path / "p.yaml"
    path.write_text(features(600, 140))
    with pytest.raises(Exception) as e:
        compile_file(path, _variables((), ENV))
    line = next(str(p) for p in e.value.problems if "Athena takes" in p.message)
    from stepkit.ir.context import Context
    from stepkit.compiler.load import load_pipeline
    from stepkit.steps.athena_ctas import AthenaCtas

    pipeline, _ = load_pipeline(path, _variables((), ENV))
    ctx = Context(pipeline, path)
    staging = next(s for s in pipeline.stages if isinstance(s, AthenaCtas) and s.table == "staging")
    (statement,) = staging.sql(ctx)
    sent = one_line(statement.text("r" * 80)).encode("utf-8")
    assert f"the query is {len(sent):,} bytes" in line


def test_the_shipped_pipelines_are_within_every_limit():
    """And by a margin that says how close the seed is (its statemachine policy most of all)."""
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        a = compile_file(path, _variables((), ENV))
        assert limits.check(a, Positions()) == []
        assert len(render(a.definition).encode()) < limits.DEFINITION_BYTES / 10
        for policy in a.policies.values():
            assert len(json.dumps(policy.document(), separators=(",", ":"))) < limits.ROLE_POLICY_CHARS / 2
