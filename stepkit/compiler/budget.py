"""Does the schedule fit the budget? Runs a month (from the schedule) x the cost of a run, against the
cost alarm's monthly threshold: a weekly run at ~$12 trips a $20 budget's forecast every month.

The cost of a run comes from the plan (`stepkit plan`); `estimated_run_cost` is the one place that
asks it, so `validate` says nothing until the plan can answer.
"""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import yaml

from stepkit.errors import Problem

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts

DAYS_PER_MONTH = 365.25 / 12
WEEKS_PER_MONTH = DAYS_PER_MONTH / 7
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                       "DEC"], start=1)}
_PER_DAY = {"minute": 1440, "minutes": 1440, "hour": 24, "hours": 24, "day": 1, "days": 1}


def estimated_run_cost(artifacts: "Artifacts") -> float | None:
    """USD one run costs (Athena scans, Fargate, Step Functions, Lambda); None: not known yet."""
    return None


def _count(field: str, lo: int, hi: int, names: dict[str, int] | None = None) -> int:
    """How many values of [lo, hi] an EventBridge cron field takes (L, W and # mean one)."""
    total = 0
    for part in field.split(","):
        for name, value in (names or {}).items():
            part = part.replace(name, str(value))
        if part in ("*", "?"):
            total += hi - lo + 1
            continue
        if any(c in part for c in "LW#"):
            total += 1
            continue
        start, _, step = part.partition("/")
        first, _, last = start.partition("-")
        a = lo if first == "*" else int(first)
        b = int(last) if last else (hi if step or first == "*" else a)
        total += math.ceil((b - a + 1) / int(step or 1))
    return total


def runs_per_month(expression: str) -> float:
    """Starts a month of an EventBridge schedule (`cron(...)` or `rate(...)`), on average."""
    rate = re.fullmatch(r"rate\((\d+) (\w+)\)", expression)
    if rate:
        return _PER_DAY[rate.group(2)] / int(rate.group(1)) * DAYS_PER_MONTH
    minutes, hours, dom, month, dow = expression[len("cron("):-1].split()[:5]
    per_day = _count(minutes, 0, 59) * _count(hours, 0, 23)
    months = _count(month.upper(), 1, 12, _MONTHS) / 12
    if dom == "?":
        parts = dow.upper().split(",")
        monthly = [x for x in parts if "#" in x or "L" in x]  # 2#1: the first Monday; 6L: the last Friday
        weekly = [x for x in parts if x not in monthly]
        days = len(monthly) + (_count(",".join(weekly), 1, 7, _DAYS) * WEEKS_PER_MONTH if weekly else 0)
    else:
        days = DAYS_PER_MONTH if dom == "*" else _count(dom, 1, 31)
    return per_day * days * months


def _position(file: Any, keys: tuple[str, ...]) -> tuple[int, int]:
    """Line and column of a key in the user's file (0, 0 when it cannot be read)."""
    try:
        node = yaml.compose(open(file, encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return 0, 0
    mark = None
    for key in keys:
        found = next(((k, v) for k, v in getattr(node, "value", []) if isinstance(k, yaml.ScalarNode) and k.value == key),
                     None) if isinstance(node, yaml.MappingNode) else None
        if found is None:
            break
        mark, node = found[0].start_mark, found[1]
    return (mark.line + 1, mark.column + 1) if mark else (0, 0)


def warnings(artifacts: "Artifacts") -> list[Problem]:
    p = artifacts.context.p
    if not p.schedule.enabled or p.cost_alarm is None:
        return []
    cost = estimated_run_cost(artifacts)
    if cost is None:
        return []
    runs = runs_per_month(p.schedule.expression)
    monthly, limit = runs * cost, p.cost_alarm.threshold_usd
    if monthly <= limit:
        return []
    line, col = _position(artifacts.context.file, ("cost_alarm", "threshold_usd"))
    return [Problem(str(artifacts.context.file), line, col, "cost_alarm.threshold_usd",
                    f"warning: schedule {p.schedule.expression} starts ~{runs:.1f} runs a month at ~${cost:.2f} a run: "
                    f"~${monthly:.0f} a month, over the ${limit:g} budget, whose forecast alert will then fire every "
                    f"month; raise threshold_usd to at least {math.ceil(monthly)} or run less often")]
