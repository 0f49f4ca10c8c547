"""Checks on a plan: each fails `stepkit plan` and warns in `stepkit validate`.

- a prediction batch or the training that would outlast its task's timeout;
- a task whose memory is below what its rows need (the memory model in coefficients.py);
- a run, or a month of runs, over `cost_alarm.threshold_usd`;
- fan-out vCPU over the account's Fargate quota; more tasks at once than the subnets' free addresses.

`warnings(artifacts, positions)` is the hook for the compiler: the checks that need no
AWS account, as located warnings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepkit.errors import Problem, StepkitError
from stepkit.plan import schedule

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts
    from stepkit.plan.model import Plan
    from stepkit.spec.loader import Positions


@dataclass(frozen=True)
class Finding:
    loc: tuple[Any, ...]
    message: str
    needs_account: bool = False  # the quota and subnet checks: an account's figures, not the file's


@dataclass(frozen=True)
class Month:
    runs: float
    basis: str
    usd: float


def month(plan: "Plan", p: Any, runs_if_on_demand: float = 1.0) -> Month:
    if p.schedule.enabled:
        runs = schedule.runs_per_month(p.schedule.expression)
        basis = f"schedule {p.schedule.expression}: {runs:,.1f} runs a month"
    else:
        runs = runs_if_on_demand
        basis = (f"schedule disabled: runs start on demand; the month assumes {runs:g} run(s) "
                 "(--runs-per-month N)")
    return Month(runs, basis, runs * plan.usd)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:,.1f} min"


def findings(plan: "Plan", p: Any, runs_if_on_demand: float = 1.0) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for t in plan.tasks.values():
        what = "a batch" if t.fan_out else "the task"
        if t.timeout_s is not None and t.seconds > t.timeout_s and (t.task, "timeout") not in seen:
            seen.add((t.task, "timeout"))
            out.append(Finding(("compute", "tasks", t.task, "timeout_minutes"),
                               f"{what} of {t.stage} would take ~{_minutes(t.seconds)} ({t.rows:,.0f} rows on "
                               f"{t.cpu:g} vCPU), past its timeout of {_minutes(t.timeout_s)}: raise timeout_minutes, "
                               "add vCPU, or (a fan-out) more batches"))
        if t.memory_need_gb > t.memory_gb and (t.task, "memory") not in seen:
            seen.add((t.task, "memory"))
            out.append(Finding(("compute", "tasks", t.task, "memory_gb"),
                               f"{what} of {t.stage} needs ~{t.memory_need_gb:,.1f} GB for {t.rows:,.0f} rows, "
                               f"the task has {t.memory_gb:g} GB"))
    alarm = p.cost_alarm
    if alarm is not None:
        if plan.usd > alarm.threshold_usd:
            out.append(Finding(("cost_alarm", "threshold_usd"),
                               f"one run costs ~${plan.usd:,.2f}, over the ${alarm.threshold_usd:g} alarm"))
        else:
            m = month(plan, p, runs_if_on_demand)
            if m.usd > alarm.threshold_usd:
                out.append(Finding(("cost_alarm", "threshold_usd"),
                                   f"a month costs ~${m.usd:,.2f} ({m.basis}), over the ${alarm.threshold_usd:g} alarm"))
    total = plan.total
    if total.peak_vcpu > plan.inputs.vcpu_quota:
        out.append(Finding(("batching", "max_concurrency"),
                           f"{total.peak_vcpu:g} Fargate vCPU at once, over the account's quota of "
                           f"{plan.inputs.vcpu_quota:g} ({plan.inputs.quota_basis}): lower max_concurrency or task "
                           "vCPU, or raise quota L-3032A538 (--vcpu-quota N states yours)", needs_account=True))
    if plan.inputs.free_ips is not None and total.peak_tasks > plan.inputs.free_ips:
        out.append(Finding(("aws", "network", "subnets"),
                           f"{total.peak_tasks} tasks at once need {total.peak_tasks} addresses; the subnets have "
                           f"{plan.inputs.free_ips} free ({plan.inputs.ips_basis})", needs_account=True))
    return out


def locate(file: str, positions: "Positions | None", f: Finding, warning: bool = False) -> Problem:
    from stepkit.spec.loader import dotted

    line, col = positions.find(f.loc) if positions is not None else (0, 0)
    return Problem(file, line, col, dotted(f.loc), ("warning: " if warning else "") + f.message)


def warnings(artifacts: "Artifacts", positions: "Positions | None" = None,
             variables: dict[str, str] | None = None) -> list[Problem]:
    """The plan's checks as warnings, with the spec's figures and default coefficients; nothing
    when the spec gives no row count. For `stepkit validate` (or the compiler, which has the
    positions; without them the file is read again with `variables` to locate the lines)."""
    from stepkit.plan.inputs import default_inputs
    from stepkit.plan.model import Model

    p = artifacts.context.p
    if positions is None and variables is not None:
        from stepkit.compiler.load import load_pipeline

        _, positions = load_pipeline(artifacts.context.file, variables)
    if not p.source.rows:
        return []
    try:
        plan = Model(artifacts, default_inputs(p)).evaluate()
    except StepkitError as e:  # e.g. a region without prices: say so, validation goes on
        return [Problem(str(artifacts.context.file), 0, 0, "", f"warning: no plan checks: {e}")]
    return [locate(str(artifacts.context.file), positions, f, warning=True)
            for f in findings(plan, p) if not f.needs_account]
