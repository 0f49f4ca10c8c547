"""`stepkit plan --optimize`: never an illegal layout, and never worse than brute force.

Random specs (row counts, source sizes, throughputs, timeouts, quotas, deadlines) over a small
search space. Brute force plans every point of that space in full (`Model.evaluate`, legal
memory sizes included) and keeps the cheapest that meets the deadline and passes the checks;
the optimizer, which prices states separately and prunes, must do at least as well.
"""
from __future__ import annotations

import itertools
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepkit.cli import _variables
from stepkit.compiler.build import build, compile_file
from stepkit.ir.context import Context
from stepkit.plan import checks, edit, optimize
from stepkit.plan.coefficients import DEFAULT
from stepkit.plan.model import Inputs, Layout, Model
from stepkit.spec import fargate
from stepkit.compiler.load import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
ENV = ROOT / "pipelines" / "example.env"
SPACE = optimize.Space(batches=[3, 120, 700], max_waves=2, cpus=[1, 16])


@lru_cache(maxsize=1)
def base():
    p, positions = load_pipeline(PIPELINE, _variables((), str(ENV)))
    return p, positions


def variant(prediction_timeout: int, training_timeout: int, alarm: float):
    p, _ = base()
    tasks = dict(p.compute.tasks)
    tasks["prediction"] = tasks["prediction"].model_copy(update={"timeout_minutes": prediction_timeout})
    tasks["training"] = tasks["training"].model_copy(update={"timeout_minutes": training_timeout})
    return p.model_copy(update={"compute": p.compute.model_copy(update={"tasks": tasks}),
                                "cost_alarm": p.cost_alarm.model_copy(update={"threshold_usd": alarm})})


def shapes_for(p, inputs, coef):
    def compile_layout(layout):
        return Model(build(Context(edit.apply(p, layout), PIPELINE), check_sql=False), inputs, coef)

    return optimize.Shapes(compile_layout)


def brute_force(p, shapes, deadline_s):
    best = None
    for batches in SPACE.batches:
        for conc in SPACE.concurrencies(batches):
            sizes = {}
            for task in sorted(p.compute.tasks):
                mems = [(cpu, m) for cpu in SPACE.cpus for m in optimize.legal_memories(cpu)]
                sizes[task] = [(task, cpu, m) for cpu, m in mems if m in (optimize.legal_memories(cpu)[0],
                                                                           optimize.legal_memories(cpu)[-1])]
            for combo in itertools.product(*sizes.values()):
                layout = Layout(batches, conc, tuple(combo))
                plan = shapes.model(p, layout).evaluate(layout)
                if plan.seconds <= deadline_s and not checks.findings(plan, p):
                    if best is None or plan.usd < best.usd:
                        best = plan
    return best


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(100_000, 400_000_000), bytes_per_row=st.integers(200, 5_000),
       training_rate=st.floats(200, 20_000), prediction_rate=st.floats(5_000, 1_000_000),
       prediction_timeout=st.integers(1, 60), training_timeout=st.integers(5, 120),
       quota=st.sampled_from([20.0, 200.0, 4000.0]), alarm=st.floats(1, 200),
       deadline_min=st.integers(5, 180))
def test_optimizer_is_legal_and_no_worse_than_brute_force(rows, bytes_per_row, training_rate, prediction_rate,
                                                          prediction_timeout, training_timeout, quota, alarm,
                                                          deadline_min):
    p = variant(prediction_timeout, training_timeout, alarm)
    coef = DEFAULT.with_values({"training_rows_per_s_per_vcpu": training_rate,
                                "prediction_rows_per_s_per_vcpu": prediction_rate}, "test")
    inputs = Inputs(rows, "test", rows * bytes_per_row, "test", vcpu_quota=quota)
    shapes = shapes_for(p, inputs, coef)
    deadline = deadline_min * 60.0
    found = optimize.search(p, shapes, deadline, SPACE, acceptable=lambda plan: not checks.findings(plan, p))
    brute = brute_force(p, shapes, deadline)
    if brute is None:
        assert found.plan is None or found.plan.seconds <= deadline
    else:
        assert found.plan is not None, found.reason
        assert found.plan.usd <= brute.usd * (1 + 1e-9)
    if found.plan is not None:
        assert_legal(p, found.plan, deadline, quota)


def assert_legal(p, plan, deadline, quota):
    lay = plan.layout
    assert 1 <= lay.batches <= optimize.MAX_BATCHES
    assert 1 <= lay.max_concurrency <= lay.batches
    for task, cpu, mem in lay.tasks:
        assert fargate.check(cpu, mem) is None, (task, cpu, mem)
    for t in plan.tasks.values():
        assert t.memory_need_gb <= t.memory_gb and (t.timeout_s is None or t.seconds <= t.timeout_s)
    assert plan.seconds <= deadline and plan.total.peak_vcpu <= quota
    assert not checks.findings(plan, p)
    # The layout compiles, and every Athena statement writes at most 100 partitions.
    artifacts = build(Context(edit.apply(p, lay), PIPELINE), check_sql=False)
    model = Model(artifacts, plan.inputs, plan.coef)
    for name, scan in model.scans.items():
        assert round(model._partitions(scan.target, lay) * scan.write_share) <= 100, name


def test_shipped_pipeline_at_seed_scale():
    """The README's figure: 378M rows, 0.75 TB of JSON, a 4,000-vCPU quota, 25 minutes."""
    p, _ = base()
    inputs = Inputs(378e6, "test", 756e9, "test", vcpu_quota=4000)
    artifacts = compile_file(PIPELINE, _variables((), str(ENV)), check_sql=False)
    now = Model(artifacts, inputs).evaluate()
    found = optimize.search(p, shapes_for(p, inputs, DEFAULT), 25 * 60,
                            acceptable=lambda plan: not checks.findings(plan, p))
    assert found.plan is not None
    assert found.plan.usd < now.usd and found.plan.seconds < now.seconds
    assert_legal(p, found.plan, 25 * 60, 4000)


@pytest.mark.parametrize("cpu,need,memory", [(0.25, 0.4, 0.5), (0.25, 1.5, 2), (4, 3, 8), (4, 8.5, 9),
                                             (16, 33, 40), (16, 121, None), (8, 16, 16), (8, 17, 20)])
def test_smallest_legal_memory(cpu, need, memory):
    assert optimize.smallest_memory(cpu, need) == memory
