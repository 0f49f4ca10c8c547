"""The plan's arithmetic against hand computations: one state of each kind, each price.

The shipped predict-age pipeline at 1M rows and a 1 TiB source. Every expected figure below
is worked out by hand from the pipeline file, the price table and the coefficients' values.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import pytest

from stepkit.cli import _variables
from stepkit.compiler.build import compile_file
from stepkit.errors import StepkitError
from stepkit.plan import checks, prices, schedule
from stepkit.plan.model import Inputs, Layout, Model, stage_of

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
ENV = ROOT / "pipelines" / "example.env"
MB, GB, TB = 1024 ** 2, 1024 ** 3, 1024 ** 4
N = 1_000_000
ID, DOUBLE, INT, BOOL, CAT = 24, 8, 4, 1, 2  # bytes a value (coefficients.py)
# predict_age's 21 features, counted from the file: 9 double, 6 integer, 2 boolean, 4 category.
FEATURE_BYTES = 9 * DOUBLE + 6 * INT + 2 * BOOL + 4 * CAT  # = 72 + 24 + 2 + 8 = 106


@lru_cache(maxsize=None)
def artifacts(region: str = "us-east-1"):
    return compile_file(PIPELINE, {**_variables((), str(ENV)), "AWS_REGION": region}, check_sql=False)


@lru_cache(maxsize=None)
def plan(region: str = "us-east-1"):
    return Model(artifacts(region), Inputs(N, "test", TB, "test")).evaluate()


def statement(name: str):
    return next((scan, billed, usd) for n, scan, billed, usd in plan().statements if n == name)


def test_feature_bytes_counted_by_hand():
    p = artifacts().context.p
    kinds = [f.type for f in p.features]
    assert (kinds.count("double"), kinds.count("integer"), kinds.count("boolean"), kinds.count("category")) == (9, 6, 2, 4)


ATHENA = [
    # state, bytes scanned (hand), seconds = 3 s overhead + JSON/2 GiB/s + Parquet/5 GiB/s + written/1 GiB/s
    # StagingFeatures: the raw JSON read whole (1 TiB), once; writes every feature + id, parse_ok,
    # age (int), sample_bucket, batch_id, batch_group (ints) for 1M rows.
    ("StagingFeatures", TB, 3 + TB / (2 * GB) + N * (FEATURE_BYTES + ID + BOOL + INT + 3 * INT) / GB),
    # TrainingTargets: 4 columns of staging (id, parse_ok, age, sample_bucket), every row;
    # writes id + age for 1M x 37% labelled x 10% sample = 37,000 rows.
    ("TrainingTargets", N * (ID + BOOL + INT + INT), 3 + N * 33 / (5 * GB) + 37_000 * (ID + INT) / GB),
    # EvaluationFeatures_Insert03: 1 of 9 staging partitions (batch_group = 3): features, id, parse_ok,
    # batch_id, batch_group; writes that ninth of the rows: features, id, batch_id.
    ("EvaluationFeatures_Insert03", N / 9 * (FEATURE_BYTES + ID + BOOL + 2 * INT),
     3 + N / 9 * (FEATURE_BYTES + ID + BOOL + 2 * INT) / (5 * GB) + N / 9 * (FEATURE_BYTES + ID + INT) / GB),
]


@pytest.mark.parametrize("name,scanned,seconds", ATHENA, ids=[a[0] for a in ATHENA])
def test_athena_statement(name, scanned, seconds):
    scan, billed, usd = statement(name)
    assert scan.bytes_scanned == pytest.approx(scanned)
    assert billed == max(10 * MB, math.ceil(scanned / MB) * MB)
    assert usd == pytest.approx(billed / TB * 5.00)
    spans = {s.name: s.end - s.start for s in plan().total.spans}
    assert spans[name] == pytest.approx(seconds)


def test_athena_ten_megabyte_minimum():
    # TrainingTargets at 1M rows scans 33 MB; at 100K rows 3.3 MB, billed as 10 MB.
    small = Model(artifacts(), Inputs(100_000, "test", GB, "test")).evaluate()
    scan, billed, usd = next((s, b, u) for n, s, b, u in small.statements if n == "TrainingTargets")
    assert scan.bytes_scanned == pytest.approx(100_000 * 33)
    assert billed == 10 * MB and usd == pytest.approx(10 / 1024 ** 2 * 5.00)


def test_ddl_is_free():
    scan, billed, usd = statement("CreatePredictionsTable")
    assert (scan.kind, billed, usd) == ("ddl", 0, 0)


def test_raw_json_is_read_once():
    json_reads = [(n, r.bytes) for n, s, _, _ in plan().statements for r in s.reads if r.fmt == "json"]
    assert json_reads == [("StagingFeatures", TB)]


def test_training_task():
    t = plan().tasks["Training"]
    rows = N * 0.37 * 0.10  # labelled share x sample percent
    work = rows / (2600 * 16)  # default rows/s a vCPU x 16 vCPU
    io = rows * ((FEATURE_BYTES + ID + INT) + (ID + INT)) / (90 * MB)  # training features + targets read
    running = 30 + 3 + work + io  # image pull (billed) + worker start + work + I/O
    assert t.seconds == pytest.approx(30 + running)  # + 30 s provisioning, not billed
    assert t.billed_seconds == 60  # under a minute: the one-minute minimum
    assert t.usd == pytest.approx(60 / 3600 * (16 * 0.03238 + 64 * 0.00356))


def test_prediction_batch_and_its_waves():
    p = plan()
    t = p.tasks["ParallelPredictionBatch"]
    rows = N / 898
    assert t.rows == pytest.approx(rows)
    assert t.billed_seconds == 60 and t.usd == pytest.approx(60 / 3600 * (4 * 0.03238 + 16 * 0.00356))
    spans = {s.name: s.end - s.start for s in p.total.spans}
    # 898 items, 100 at once: 9 waves of one batch each, after the Distributed Map's 10 s start.
    assert spans["ParallelPrediction"] == pytest.approx(10 + 9 * t.seconds)
    assert p.total.counts["fargate_tasks"] == 1 + 898
    assert p.total.peak_vcpu == 400 and p.total.peak_tasks == 100


def test_large_batch_is_billed_past_the_minimum():
    lay = Layout(10, 10, (("prediction", 2.0, 4.0), ("training", 16.0, 64.0)))
    big = Model(artifacts(), Inputs(378e6, "test", TB, "test")).evaluate(lay)
    t = big.tasks["ParallelPredictionBatch"]
    rows = 378e6 / 10
    work = rows / (470_000 * 2)
    io = rows * ((FEATURE_BYTES + ID + INT) + (ID + 4 * DOUBLE + 3 * CAT + INT)) / (90 * MB)
    assert t.billed_seconds == pytest.approx(30 + 3 + work + io)
    assert t.usd == pytest.approx(t.billed_seconds / 3600 * (2 * 0.03238 + 4 * 0.00356))


def test_step_functions_lambda_s3_and_logs_prices():
    p = plan()
    k, usd = p.total.counts, p.total.usd
    assert usd["step_functions"] == pytest.approx(k["transitions"] * 0.000025)
    # Two cleanup invocations (PreCleanup, Cleanup): 512 MB for 5 s each at arm64's GB-second price.
    assert k["lambda_invocations"] == 2
    assert usd["lambda"] == pytest.approx(2 * (0.5 * 5 * 0.0000133334 + 0.20 / 1e6))
    assert usd["s3_requests"] == pytest.approx((k["s3_put"] + k["s3_list"]) * 0.005 / 1000 + k["s3_get"] * 0.0004 / 1000)
    assert usd["logs"] == pytest.approx(k["log_bytes"] / GB * 0.50)


def test_totals_are_the_sum_of_the_stages():
    p = plan()
    assert sum(sum(s.usd.values()) for s in p.stages) + p.total.usd["s3_requests"] + p.total.usd["logs"] \
        == pytest.approx(p.usd)
    assert p.seconds == pytest.approx(max(s.end for s in p.stages))


@pytest.mark.parametrize("region,vcpu,gb", [
    ("us-east-1", 0.03238, 0.00356), ("us-east-2", 0.03238, 0.00356), ("us-west-2", 0.03238, 0.00356),
    ("eu-west-1", 0.03238, 0.00356), ("eu-central-1", 0.03725, 0.00409),
])
def test_each_region_prices_fargate_from_its_row(region, vcpu, gb):
    assert plan(region).tasks["Training"].usd == pytest.approx(60 / 3600 * (16 * vcpu + 64 * gb))


def test_every_price_names_its_page_and_check():
    for region in prices.PRICES.values():
        for name, price in region.all().items():
            assert price.source and price.checked.split(":")[0] in ("confirmed", "unconfirmed"), name


def test_a_region_without_prices_is_an_error():
    with pytest.raises(StepkitError, match=r"aws.region: no prices for ap-south-2 .*add the region's row"):
        prices.for_region("ap-south-2")


@pytest.mark.parametrize("expression,runs", [
    ("cron(0 6 ? * MON *)", 52 / 12),  # 2027 has 52 Mondays
    ("cron(0 6,18 * * ? *)", 365 * 2 / 12),
    ("cron(0/15 * * * ? *)", 365 * 96 / 12),
    ("cron(0 3 L * ? *)", 1),
    ("cron(0 3 ? * MON-FRI *)", 261 / 12),
    ("cron(0 3 ? * 2#1 *)", 1),  # the first Monday
    ("rate(1 day)", 365.25 / 12),
    ("rate(6 hours)", 365.25 / 12 * 4),
])
def test_runs_per_month(expression, runs):
    assert schedule.runs_per_month(expression) == pytest.approx(runs)


def test_month_and_alarm():
    p = artifacts().context.p
    enabled = p.model_copy(update={"schedule": p.schedule.model_copy(update={"enabled": True})})
    m = checks.month(plan(), enabled)
    assert m.runs == pytest.approx(52 / 12) and m.usd == pytest.approx(52 / 12 * plan().usd)
    assert "disabled" in checks.month(plan(), p, 3).basis and checks.month(plan(), p, 3).usd == pytest.approx(3 * plan().usd)


@pytest.mark.parametrize("state,stage", [
    ("StagingFeatures", "StagingFeatures"), ("EvaluationFeatures_Insert08", "EvaluationFeatures"),
    ("ParallelPredictionBatch", "ParallelPrediction"), ("CleanupOnFailure", None), ("Start", None),
])
def test_stage_of(state, stage):
    assert stage_of(state, [s.name for s in artifacts().context.p.stages]) == stage


def test_the_compiled_parallel_states_overlap_their_branches():
    """The compiler puts independent stages in Parallel states: EvaluationFeatures starts with the
    training branch, and the run is shorter than its stages one after the other."""
    p = plan()
    stages = {s.name: s for s in p.stages}
    train, evaluation = stages["Training"], stages["EvaluationFeatures"]
    assert evaluation.start == pytest.approx(stages["TrainingFeatures"].start)  # side by side
    assert evaluation.start < train.end and train.start < evaluation.end
    assert stages["HumanQA"].start == pytest.approx(stages["FinalResults"].start)
    assert p.seconds < sum(s.seconds for s in p.stages if s.name != "(other states)")


def test_transitions_are_the_states_a_new_run_enters():
    """Cross-check with the interpreter: a new run of the compiled definition (instant local services)
    enters exactly the states the plan counts, plus the plan's 1% of task states retried."""
    from stepkit.interpreter import Execution

    p = plan()
    d = artifacts().definition
    services = {r: (lambda call: {}) for r in (
        "arn:aws:states:::athena:startQueryExecution.sync", "arn:aws:states:::ecs:runTask.sync",
        "arn:aws:states:::lambda:invoke", "arn:aws:states:::s3:putObject")}
    services["arn:aws:states:::aws-sdk:sfn:listExecutions"] = lambda call: {"Executions": [{}]}
    entered, tasks = [], []

    def seen(e):
        if e["type"].endswith("StateEntered"):
            entered.append(e)
        if e["type"] == "TaskScheduled":
            tasks.append(e)
    assert Execution(d, services, name="run-x", on_event=seen).run().status == "SUCCEEDED"
    assert p.total.counts["transitions"] == pytest.approx(len(entered) + 0.01 * len(tasks))
