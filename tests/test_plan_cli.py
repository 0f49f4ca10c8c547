"""`stepkit plan` and `stepkit cost` as a user types them: output, exit codes, one-line errors,
the validate warnings, --optimize's diff and --write, and --from-run on a real local run."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests._local_runs import ENV, SMALL, cli, make_source, once, record, run_local, shared_dir
from tests.aws.variants import write_variant

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"


def plan(*args: str, pipeline: Path = PIPELINE):
    return cli("plan", str(pipeline), "--env-file", str(ENV), *args)


def test_plan_prints_stages_totals_and_what_they_rest_on():
    r = plan("--vcpu-quota", "4000")
    assert r.exit_code == 0, r.output
    out = r.output
    for stage in ("StagingFeatures", "Training", "ParallelPrediction", "WaitForFinalResults"):
        assert re.search(rf"^  {stage} +\d", out, re.M), stage
    assert re.search(r"total \(critical path\) +\d+m\d\ds +\$[\d.]+", out)
    assert "StagingFeatures: reads kb_person_profiles_2025q3 raw JSON" in out
    assert "ParallelPrediction: 898 items, 100 at once: 9 wave(s)" in out
    assert re.search(r"fargate_vcpu_hour.ARM64 +0.03238 +per vCPU-hour; AWS Fargate Pricing", out)
    assert "[unconfirmed]" not in out  # us-east-1's figures were all found quoted
    eu = plan("--vcpu-quota", "4000", "--var", "AWS_REGION=eu-central-1").output
    assert re.search(r"fargate_vcpu_hour.ARM64 +0.03725 .*\[unconfirmed\]", eu)
    assert "json_bytes_per_row" in out  # the coefficients, with their sources
    assert "month: schedule disabled" in out


def test_json_totals_match_the_stages():
    r = plan("--vcpu-quota", "4000", "--json", "--rows", "1000000", "--source-bytes", str(10 ** 9))
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["inputs"]["rows"] == 1_000_000 and data["inputs"]["source_bytes"] == 10 ** 9
    assert data["usd"] == pytest.approx(sum(s["usd"] for s in data["stages"]) + data["usd_by_component"]["s3_requests"]
                                        + data["usd_by_component"]["logs"], abs=1e-3)
    staging = next(s for s in data["statements"] if s["state"] == "StagingFeatures")
    assert staging["bytes_scanned"] == 10 ** 9 and staging["reads"][0]["format"] == "json"


@pytest.mark.parametrize("args,message", [
    (("--deadline", "soon", "--optimize"), "--deadline 'soon': expected a duration like 20m, 1h30m or 90s"),
    (("--set", "nope=3"), "--set nope: not a coefficient"),
    (("--set", "json_bytes_per_row"), "--set 'json_bytes_per_row': expected NAME=NUMBER"),
    (("--var", "AWS_REGION=ap-south-2"), "aws.region: no prices for ap-south-2"),
    (("--write",), "--write goes with --optimize"),
    (("--from-run", "no-such-run"), "no-such-run: no local run there"),
])
def test_mistakes_are_one_line(args, message):
    r = plan(*args)
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [r.output.strip()] and message in r.output, r.output


@pytest.mark.parametrize("changes,field,message", [
    ({"compute.tasks.prediction.timeout_minutes": 1, "batching.batches": 2, "batching.max_concurrency": 2},
     "compute.tasks.prediction.timeout_minutes", r"a batch of ParallelPrediction would take ~[\d.]+ min"),
    ({"compute.tasks.training.timeout_minutes": 2}, "compute.tasks.training.timeout_minutes",
     r"the task of Training would take ~[\d.]+ min .* past its timeout of 2.0 min"),
    ({"cost_alarm.threshold_usd": 1}, "cost_alarm.threshold_usd", r"one run costs ~\$[\d.]+, over the \$1 alarm"),
    ({"cost_alarm.threshold_usd": 10, "schedule.enabled": True, "schedule.expression": "rate(1 day)"},
     "cost_alarm.threshold_usd", r"a month costs ~\$[\d,.]+ \(schedule rate\(1 day\): 30.4 runs a month\)"),
    ({"compute.tasks.training.memory_gb": 8, "compute.tasks.training.cpu": 1}, "compute.tasks.training.memory_gb",
     r"the task of Training needs ~[\d.]+ GB for [\d,]+ rows, the task has 8 GB"),
])
def test_checks_fail_plan_and_warn_in_validate(tmp_path, changes, field, message):
    path = write_variant(tmp_path, changes)
    r = plan("--vcpu-quota", "4000", "--brief", pipeline=path)
    assert r.exit_code == 1
    assert re.search(rf"variant.yaml:\d+:\d+: {re.escape(field)}: {message}", r.output), r.output
    v = cli("validate", str(path), "--env-file", str(ENV))
    assert v.exit_code == 0
    assert re.search(rf"variant.yaml:\d+:\d+: {re.escape(field)}: warning: {message}", v.output), v.output


def test_quota_check_uses_the_static_default_and_says_so():
    r = plan("--brief")
    assert r.exit_code == 1
    assert re.search(r"predict_age.yaml:\d+:\d+: batching.max_concurrency: 400 Fargate vCPU at once, over the "
                     r"account's quota of 6 \(static default", r.output), r.output


def test_optimize_prints_a_diff_that_write_applies(tmp_path):
    path = tmp_path / "predict_age.yaml"
    shutil.copy(PIPELINE, path)
    r = plan("--optimize", "--deadline", "25m", "--vcpu-quota", "4000", pipeline=path)
    assert r.exit_code == 0, r.output
    m = re.search(r"optimized for a 25m00s deadline .*: (\d+m\d\ds) and \$([\d.]+) a run", r.output)
    assert m, r.output
    assert f"--- a/{path}" in r.output and "-  batches: 898" in r.output
    assert path.read_text() == PIPELINE.read_text()  # nothing written without --write
    r = plan("--optimize", "--deadline", "25m", "--vcpu-quota", "4000", "--write", pipeline=path)
    assert r.exit_code == 0 and f"wrote {path}" in r.output
    # Comments and flow mappings kept; only the values changed; the file plans as proposed.
    assert "# 10% of the labelled rows" in path.read_text()
    again = json.loads(plan("--vcpu-quota", "4000", "--json", pipeline=path).output)
    assert f"{again['usd']:.2f}" == m.group(2)
    assert plan("--optimize", "--deadline", "25m", "--vcpu-quota", "4000", pipeline=path).output.rstrip().endswith(
        "the file's layout is already the cheapest that meets the deadline")


def test_optimize_says_when_nothing_meets_the_deadline():
    r = plan("--optimize", "--deadline", "2m", "--vcpu-quota", "4000")
    assert r.exit_code == 1
    assert "--optimize: no layout in the search meets the deadline (2m00s" in r.output and "the fastest:" in r.output


# --- a real local run: the measured throughput, and --from-run
@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    return shared_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def source(shared) -> str:
    return once(shared, "source", make_source)


@pytest.fixture(scope="session")
def clean(shared, source) -> dict:  # the same run tests/test_local_run.py makes (shared by name)
    def build(folder: Path) -> dict:
        result = run_local(SMALL, source, folder / "work")
        assert result.exit_code == 0, result.output
        return {"output": result.output, "record": record(folder / "work"), "workdir": str(folder / "work")}

    return once(shared, "clean", build)


def test_cost_of_a_local_run_and_plan_from_it(clean):
    rec = clean["record"]
    run_dir = Path(clean["workdir"]) / "runs" / rec["run_id"]
    assert rec["cores"] >= 1
    r = cli("cost", rec["run_id"], "--workdir", clean["workdir"])
    assert r.exit_code == 0, r.output
    rates = {}
    for stage in ("Training", "ParallelPrediction"):
        s = next(x for x in rec["stages"] if x["name"] == stage)
        m = re.search(rf"{stage} \((\w+)\): ([\d,]+) rows in ([\d.]+) s on (\d+) .* = ([\d,]+) rows/s per core", r.output)
        assert m, r.output
        rows, cores = int(m.group(2).replace(",", "")), int(m.group(4))
        assert rows == s["rows_out"]
        expected = s["rows_out"] / (s["seconds"] * cores)
        assert int(m.group(5).replace(",", "")) == pytest.approx(expected, rel=0.01, abs=1)
        rates[m.group(1)] = expected
    p = cli("plan", str(SMALL), "--env-file", str(ENV), "--from-run", str(run_dir), "--json", "--vcpu-quota", "4000")
    data = json.loads(p.output[: p.output.rindex("}") + 1])
    for task, rate in rates.items():
        assert data["inputs"]["rates"][task]["value"] == pytest.approx(rate)
        assert "measured by local run" in data["inputs"]["rates"][task]["source"]
