"""`stepkit plan --optimize`: the cheapest layout that meets a deadline.

Searched: the batch count (at most 1,000: States.ArrayRange builds the ids), the fan-out's
concurrency, and the vCPU of every Fargate task, each with the smallest legal memory
(stepkit.spec.fargate) that holds its rows (the memory model in coefficients.py). Athena's 100
writers per statement need no search: the compiler splits a table's writes itself, one more
statement per 100 batches, which the plan prices.

How it stays fast and exact: only a few states depend on the layout (the Fargate tasks and the
fan-out's Map). Time along the critical path is a max of sums, so with those states' durations
x_i it is T(x) = max over subsets S of (d_S + sum of x_i for i in S), where d_S is read from one
walk with the states in S given a huge duration. Cost adds over states. So each shape of the
state machine (how many Athena statements, which Map mode) is walked 2^k times, and every
candidate layout is then priced from its states alone. The best candidates are re-planned in
full (`Model.evaluate`) and checked before one is returned.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from stepkit.ir.sql import MAX_WRITERS
from stepkit.plan.model import Layout, Model, Plan, stage_of
from stepkit.spec import fargate

MAX_BATCHES = 1000  # States.ArrayRange returns at most 1,000 items
HUGE = 1e9
INLINE_LIMIT = 40


def legal_memories(cpu: float) -> list[float]:
    """Every memory size Fargate accepts with `cpu`, smallest first."""
    out = []
    gb = 0.5
    while gb <= 120:
        if fargate.check(cpu, gb) is None:
            out.append(gb)
        gb += 0.5
    return out


def smallest_memory(cpu: float, need_gb: float) -> float | None:
    for gb in legal_memories(cpu):
        if gb >= need_gb:
            return gb
    return None


@dataclass
class Space:
    """The values searched. Each batch count gets the concurrencies that give 1..max_waves waves."""

    batches: list[int] = field(default_factory=lambda: sorted({*range(1, 11), 12, 15, 20, 25, 30, 40, 50, 60, 70,
                                                              80, 90, 100, 120, 150, 200, 250, 300, 400, 500, 600,
                                                              700, 800, 900, 1000}))
    max_waves: int = 8
    cpus: list[float] = field(default_factory=lambda: list(fargate.VCPUS))

    def concurrencies(self, batches: int) -> list[int]:
        return sorted({math.ceil(batches / w) for w in range(1, self.max_waves + 1)})


@dataclass
class Result:
    plan: Plan | None  # the cheapest layout that meets the deadline and passes the checks
    fastest: Plan | None  # when none does: the fastest found
    candidates: int
    reason: str = ""


def _map_mode(p: Any, concurrency: int) -> str:
    """The compiler's choice (steps.fan_out): inline up to 40 at once, else distributed."""
    mode = p.batching.map_mode
    if mode != "auto":
        return mode
    return "distributed" if concurrency > INLINE_LIMIT else "inline"


class Shapes:
    """One compiled state machine (and its Model) per shape: Athena statement count and Map mode."""

    def __init__(self, compile_layout: Callable[[Layout], Model]):
        self.compile_layout = compile_layout
        self.models: dict[tuple[int, str], Model] = {}
        self.d: dict[tuple[int, str], dict[frozenset[str], float]] = {}

    def key(self, p: Any, layout: Layout) -> tuple[int, str]:
        return math.ceil(layout.batches / MAX_WRITERS), _map_mode(p, layout.max_concurrency)

    def model(self, p: Any, layout: Layout) -> Model:
        k = self.key(p, layout)
        if k not in self.models:
            self.models[k] = self.compile_layout(layout)
        return self.models[k]

    def constants(self, p: Any, layout: Layout) -> tuple[Model, list[str], dict[frozenset[str], float]]:
        """d_S for every subset S of the layout-dependent states (see the module docstring)."""
        m = self.model(p, layout)
        names = m.variable_states()
        k = self.key(p, layout)
        if k not in self.d:
            d = {}
            for r in range(len(names) + 1):
                for subset in itertools.combinations(names, r):
                    override = {n: (HUGE if n in subset else 0.0) for n in names}
                    d[frozenset(subset)] = m.walk(layout, override, fast=True).seconds - HUGE * len(subset)
            self.d[k] = d
        return m, names, self.d[k]


def seconds_of(d: dict[frozenset[str], float], durations: dict[str, float]) -> float:
    return max(c + sum(durations[n] for n in s) for s, c in d.items())


def search(p: Any, shapes: Shapes, deadline_s: float, space: Space | None = None, verify: int = 20,
           acceptable: Callable[[Plan], bool] = lambda plan: True) -> Result:
    space = space or Space()
    tasks = sorted(p.compute.tasks)
    base_layout = Layout.of(p)
    scored: list[tuple[float, float, Layout]] = []
    for batches in [b for b in space.batches if 1 <= b <= MAX_BATCHES]:
        for conc in space.concurrencies(batches):
            if _map_mode(p, conc) == "inline" and conc > INLINE_LIMIT:
                continue
            ref = Layout(batches, conc, base_layout.tasks)
            m, names, d = shapes.constants(p, ref)
            # Cost of the states that do not depend on task sizes, at this batch count.
            zero = {n: 0.0 for n in names}
            base_usd = sum(m.walk(ref, zero, fast=True).usd.values())
            options: dict[str, list[tuple[float, float, float, float]]] = {}  # state -> (s, usd, cpu, mem)
            per_task: dict[str, str] = {}
            for name in names:
                task = _task_of(m, name)
                per_task[name] = task
                opts = []
                for cpu in space.cpus:
                    sized = _sized(ref, task, cpu, 0.5)
                    need = _memory_need(m, name, sized)
                    mem = smallest_memory(cpu, need)
                    if mem is None:
                        continue
                    sized = _sized(ref, task, cpu, mem)
                    s, usd, _ = m.part(name, sized)
                    opts.append((s, usd, cpu, mem))
                options[name] = opts
            # A task key shared by several states takes one size: group states by task key.
            by_task: dict[str, list[str]] = {}
            for name, task in per_task.items():
                by_task.setdefault(task, []).append(name)
            choices = []
            for task, states in by_task.items():
                sizes = sorted({(o[2], o[3]) for o in options[states[0]]})
                choices.append([(task, cpu, mem) for cpu, mem in sizes
                                if all(any(o[2] == cpu and o[3] == mem for o in options[s]) for s in states)])
            for combo in itertools.product(*choices):
                durations, usd = {}, base_usd
                for task, cpu, mem in combo:
                    for s in by_task[task]:
                        o = next(o for o in options[s] if o[2] == cpu and o[3] == mem)
                        durations[s] = o[0]
                        usd += o[1]
                sizes = dict((t, (c, mm)) for t, c, mm in combo)
                layout = Layout(batches, conc, tuple((k, *sizes.get(k, base_layout.size(k))) for k in tasks))
                scored.append((usd, seconds_of(d, durations), layout))
    scored.sort(key=lambda x: (x[0], x[1]))
    meeting = [x for x in scored if x[1] <= deadline_s]
    checked = 0
    for usd, seconds, layout in meeting:
        if checked >= verify:
            break
        checked += 1
        plan = shapes.model(p, layout).evaluate(layout)
        if plan.seconds <= deadline_s and acceptable(plan):
            return Result(plan, None, len(scored))
    fastest = min(scored, key=lambda x: (x[1], x[0]), default=None)
    fast_plan = shapes.model(p, fastest[2]).evaluate(fastest[2]) if fastest else None
    reason = ("no layout in the search meets the deadline" if not meeting else
              f"none of the {checked} cheapest layouts that meet the deadline passes the checks")
    return Result(None, fast_plan, len(scored), reason)


def _task_of(m: Model, name: str) -> str:
    stage = stage_of(name, m.stage_names)
    st = m.stages.get(stage) if stage else None
    return st.task if st is not None else name


def _sized(layout: Layout, task: str, cpu: float, mem: float) -> Layout:
    return Layout(layout.batches, layout.max_concurrency,
                  tuple((k, cpu, mem) if k == task else (k, c, mm) for k, c, mm in layout.tasks))


def _memory_need(m: Model, name: str, layout: Layout) -> float:
    """What the state's Fargate task(s) need in memory under this layout."""
    from stepkit.plan.model import _find

    state = _find(m.a.definition, name)
    if state.get("Type") == "Map":
        processor = state.get("ItemProcessor") or state.get("Iterator") or {}
        tasks = [(n, s) for n, s in processor.get("States", {}).items() if "ecs:runTask" in str(s.get("Resource", ""))]
        return max((m.task_run(n, s, layout).memory_need_gb for n, s in tasks), default=0.0)
    return m.task_run(name, state, layout).memory_need_gb
