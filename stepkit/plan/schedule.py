"""Runs a month from an EventBridge schedule expression: `rate(N unit)` or `cron(m h dom mon dow yr)`.

A month is the average one (365.25 / 12 days). A cron is counted over every day of one
ordinary year (so `L`, `W` and `#` days each land where they would), divided by 12.
"""
from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

DAYS_A_MONTH = 365.25 / 12
MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}
# EventBridge numbers days of the week 1-7 from Sunday.
WEEKDAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
YEAR = 2027  # an ordinary year, starting on a Friday: any year gives the same count within a run or two


def _values(field: str, lo: int, hi: int, names: dict[str, int] | None = None) -> set[int]:
    names = names or {}
    out: set[int] = set()
    for part in field.upper().split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/", 1)
            step = int(s)
        if part in ("*", "?"):
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            a, b = int(names.get(x, x)), int(names.get(y, y))
        else:
            a = int(names.get(part, part))
            b = hi if step > 1 else a
        out.update(range(a, b + 1, step))
    return {v for v in out if lo <= v <= hi}


def _dom_matches(field: str, day: date) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    f = field.upper()
    if f in ("*", "?"):
        return True
    if f == "L":
        return day.day == last
    m = re.fullmatch(r"(\d+)W", f)
    if m:  # the weekday nearest to day N of the month
        target = date(day.year, day.month, min(int(m.group(1)), last))
        if target.weekday() == 5:
            target = target - timedelta(days=1) if target.day > 1 else target + timedelta(days=2)
        elif target.weekday() == 6:
            target = target + timedelta(days=1) if target.day < last else target - timedelta(days=2)
        return day == target
    return day.day in _values(f, 1, 31)


def _dow_matches(field: str, day: date) -> bool:
    f = field.upper()
    if f in ("*", "?"):
        return True
    dow = (day.weekday() + 1) % 7 + 1  # Monday=0 in Python; Sunday=1 in EventBridge
    m = re.fullmatch(r"(\w+)#(\d)", f)
    if m:
        return dow == int(WEEKDAYS.get(m.group(1), m.group(1))) and (day.day - 1) // 7 + 1 == int(m.group(2))
    m = re.fullmatch(r"(\w+)L", f)
    if m:
        last = calendar.monthrange(day.year, day.month)[1]
        return dow == int(WEEKDAYS.get(m.group(1), m.group(1))) and day.day + 7 > last
    return dow in _values(f, 1, 7, WEEKDAYS)


def runs_per_month(expression: str) -> float:
    """How many times the expression fires in an average month."""
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2).rstrip("s")
        per_day = {"minute": 24 * 60, "hour": 24, "day": 1}[unit]
        return DAYS_A_MONTH * per_day / n
    m = re.fullmatch(r"cron\((.+)\)", expression.strip())
    if not m:
        raise ValueError(f"{expression!r} is not a rate(...) or cron(...) expression")
    minutes, hours, dom, month, dow, _year = m.group(1).split()
    per_day = len(_values(minutes, 0, 59)) * len(_values(hours, 0, 23))
    months = _values(month, 1, 12, MONTHS)
    days, d = 0, date(YEAR, 1, 1)
    while d.year == YEAR:
        if d.month in months and _dom_matches(dom, d) and _dow_matches(dow, d):
            days += 1
        d += timedelta(days=1)
    return days * per_day / 12
