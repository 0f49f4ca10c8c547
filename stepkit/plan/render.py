"""A plan as text (per stage, totals, what each figure rests on) and as JSON."""
from __future__ import annotations

from typing import Any

from stepkit.plan.checks import Month
from stepkit.plan.model import Plan

COMPONENTS = ["athena", "fargate", "step_functions", "lambda", "s3_requests", "logs"]


def minutes(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def text(plan: Plan, month: Month, verbose: bool = True) -> list[str]:
    t, inp = plan.total, plan.inputs
    lines = [
        f"plan for {plan.region}: {inp.rows:,.0f} rows ({inp.rows_basis}); source {inp.source_bytes / 1e9:,.0f} GB "
        f"({inp.source_bytes_basis}); prices read {_read(plan)}",
        f"  {'stage':<28}{'start':>8}{'wall':>9}{'cost':>10}  where the money goes",
    ]
    for s in plan.stages:
        parts = ", ".join(f"{k} ${v:,.2f}" for k, v in sorted(s.usd.items(), key=lambda kv: -kv[1]) if v >= 0.005)
        lines.append(f"  {s.name:<28}{minutes(s.start):>8}{minutes(s.seconds):>9}{'$' + format(sum(s.usd.values()), ',.2f'):>10}"
                     f"  {parts}")
    lines.append(f"  {'total (critical path)':<28}{'':>8}{minutes(plan.seconds):>9}{'$' + format(plan.usd, ',.2f'):>10}  "
                 + ", ".join(f"{k} ${t.usd[k]:,.2f}" for k in COMPONENTS if t.usd.get(k)))
    k = t.counts
    lines += [
        f"critical path: {' -> '.join(t.path)}",
        f"counts: {k['bytes_scanned'] / 1e9:,.0f} GB scanned by Athena in {k['athena_queries']:.0f} statements; "
        f"{k['fargate_tasks']:.0f} Fargate tasks, {k['vcpu_hours']:,.1f} vCPU-h and {k['gb_hours']:,.1f} GB-h billed; "
        f"{k['transitions']:,.0f} state transitions; {k['lambda_invocations']:.0f} Lambda invocations; "
        f"S3 {k['s3_put'] + k['s3_list']:,.0f} PUT/LIST and {k['s3_get']:,.0f} GET; {k['log_bytes'] / 1e6:,.1f} MB of logs",
        f"peak: {t.peak_vcpu:g} Fargate vCPU and {t.peak_tasks} tasks at once "
        f"(quota {inp.vcpu_quota:g}: {inp.quota_basis})"
        + (f"; {inp.free_ips} free subnet addresses ({inp.ips_basis})" if inp.free_ips is not None else ""),
        f"month: {month.basis}: ${month.usd:,.2f}",
    ]
    if verbose:
        lines.append("what the figures rest on:")
        for s in plan.stages:
            lines += [f"  {b}" for b in s.basis]
        for note in dict.fromkeys(t.notes):
            lines.append(f"  note: {note}")
        lines.append("prices (USD):")
        for name, price in plan.prices.all().items():
            mark = "" if price.confirmed else "  [unconfirmed]"
            lines.append(f"  {name:<28}{price.usd:<14.10g}per {price.unit}; {price.source}{mark}")
        lines.append("coefficients (stepkit plan --set NAME=VALUE to change one):")
        for name in plan.coef.names():
            c = getattr(plan.coef, name)
            lines.append(f"  {name:<34}{c.value:<12,.6g}{c.unit}: {c.source}")
        for task, rate in inp.rates.items():
            lines.append(f"  {task} rate{'':<24}{rate.value:<12,.6g}{rate.unit}: {rate.source}")
    return lines


def _read(plan: Plan) -> str:
    from stepkit.plan.prices import READ

    return READ


def as_json(plan: Plan, month: Month, problems: list[str]) -> dict[str, Any]:
    t = plan.total
    return {
        "region": plan.region,
        "inputs": {"rows": plan.inputs.rows, "rows_basis": plan.inputs.rows_basis,
                   "source_bytes": plan.inputs.source_bytes, "source_bytes_basis": plan.inputs.source_bytes_basis,
                   "vcpu_quota": plan.inputs.vcpu_quota, "quota_basis": plan.inputs.quota_basis,
                   "free_ips": plan.inputs.free_ips,
                   "rates": {k: {"value": v.value, "unit": v.unit, "source": v.source} for k, v in plan.inputs.rates.items()}},
        "layout": {"batches": plan.layout.batches, "max_concurrency": plan.layout.max_concurrency,
                   "tasks": {k: {"cpu": c, "memory_gb": m} for k, c, m in plan.layout.tasks}},
        "seconds": round(plan.seconds, 1),
        "usd": round(plan.usd, 4),
        "usd_by_component": {k: round(v, 4) for k, v in sorted(t.usd.items())},
        "counts": {k: round(v, 1) for k, v in sorted(t.counts.items())},
        "critical_path": t.path,
        "peak_vcpu": t.peak_vcpu,
        "peak_tasks": t.peak_tasks,
        "stages": [{"name": s.name, "type": s.type, "start_s": round(s.start, 1), "seconds": round(s.seconds, 1),
                    "usd": round(sum(s.usd.values()), 4), "usd_by_component": {k: round(v, 4) for k, v in s.usd.items()},
                    "basis": s.basis} for s in plan.stages],
        "statements": [{"state": name, "kind": scan.kind, "bytes_scanned": round(scan.bytes_scanned),
                        "bytes_billed": round(billed), "usd": round(usd, 4), "rows_written": round(scan.rows_written),
                        "reads": [{"table": r.table, "format": r.fmt, "bytes": round(r.bytes), "columns": r.columns,
                                   "fraction": r.fraction} for r in scan.reads]}
                       for name, scan, billed, usd in plan.statements],
        "month": {"runs": month.runs, "basis": month.basis, "usd": round(month.usd, 2)},
        "prices": {name: {"usd": p.usd, "unit": p.unit, "source": p.source, "checked": p.checked}
                   for name, p in plan.prices.all().items()},
        "coefficients": {name: {"value": getattr(plan.coef, name).value, "unit": getattr(plan.coef, name).unit,
                                "source": getattr(plan.coef, name).source} for name in plan.coef.names()},
        "notes": list(dict.fromkeys(t.notes)),
        "problems": problems,
    }
