"""Walk a compiled state machine (any valid ASL) and total what one run does.

The walk follows the run's successful path: `Next` edges, never `Catch`. Durations add along
a sequence; a Parallel takes its longest branch; a Map runs its items in waves of
`MaxConcurrency`; a Choice takes the way a new run takes when its rules read only the run's input
(stepkit's own start states and stage guards), else its longest way on (the plan is an upper estimate). Counts
and costs add over every state the run executes, inside branches and Map items too.

What a single state costs comes from a callback (`Leaf`), so this module knows nothing about
stepkit's stages: it is tested on hand-built state machines.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

State = dict[str, Any]

INLINE_MAP_LIMIT = 40  # an inline Map runs at most 40 iterations at once, whatever MaxConcurrency says
DISTRIBUTED_MAP_LIMIT = 10_000


@dataclass
class Leaf:
    """One execution of one state."""

    seconds: float = 0.0
    usd: Counter = field(default_factory=Counter)  # by component, e.g. "fargate", "athena"
    counts: Counter = field(default_factory=Counter)  # e.g. "transitions", "tasks", "bytes_scanned"
    vcpu: float = 0.0  # held while the state runs (Fargate)
    tasks: int = 0  # ENIs held while the state runs
    basis: list[str] = field(default_factory=list)  # what the figures rest on, one line each


@dataclass
class Span:
    """When a state runs, in seconds from the start of the run (Map items are inside the Map's span)."""

    name: str
    start: float
    end: float


@dataclass
class Total:
    seconds: float = 0.0
    usd: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    peak_vcpu: float = 0.0
    peak_tasks: int = 0
    path: list[str] = field(default_factory=list)  # the critical path's states, top level first
    spans: list[Span] = field(default_factory=list)
    # (state name, Leaf, times it runs): every leaf execution, for per-stage breakdowns
    charges: list[tuple[str, Leaf, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Hooks:
    """What the walk asks of its caller. `leaf(name, state, scope)`: one state's own cost (scope
    names the enclosing Parallel/Map states); `items(name, state)`: how many items a Map gets."""

    def __init__(self, leaf: Callable[[str, State, tuple[str, ...]], Leaf],
                 items: Callable[[str, State], int]):
        self.leaf, self.items = leaf, items


# What a new run's state holds when its Choices decide: nothing at first, then its run id, and no other
# execution running (stepkit's start states; each stage's guard sees no `done` in a new run).
NEW_RUN = ({"others": {"running": 1}}, {"run": {"id": "run-0000"}, "others": {"running": 1}})


def _successors(state: State) -> list[str]:
    if state.get("Type") == "Choice":
        # The way a new run goes, when the rules read only what a new run holds; else every way.
        from stepkit.interpreter.choice import evaluate

        for sample in NEW_RUN:
            try:
                taken = next((c["Next"] for c in state.get("Choices", []) if evaluate(c, sample)), None)
                if taken is not None or "Default" in state:
                    return [taken or state["Default"]]
            except Exception:  # noqa: BLE001 - the rule reads data this sample lacks: try the next one
                continue
        out = [c["Next"] for c in state.get("Choices", []) if "Next" in c]
        if "Default" in state:
            out.append(state["Default"])
        return list(dict.fromkeys(out))
    if state.get("End") or state.get("Type") in ("Succeed", "Fail"):
        return []
    return [state["Next"]] if "Next" in state else []


def concurrency(name: str, state: State, items: int) -> tuple[int, str | None]:
    processor = state.get("ItemProcessor") or state.get("Iterator") or {}
    distributed = (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED"
    limit = DISTRIBUTED_MAP_LIMIT if distributed else INLINE_MAP_LIMIT
    asked = int(state.get("MaxConcurrency", 0) or 0)  # 0: as many as the mode allows
    conc = min(asked or limit, limit)
    note = None
    if not distributed and asked > INLINE_MAP_LIMIT:
        note = f"{name}: inline Map runs at most {INLINE_MAP_LIMIT} items at once (MaxConcurrency {asked})"
    return max(1, min(conc, max(items, 1))), note


def walk(machine: State, hooks: Hooks, scope: tuple[str, ...] = (), start: float = 0.0) -> Total:
    """Totals of one run of `machine` (a definition, a Parallel branch or a Map's ItemProcessor)."""
    states: dict[str, State] = machine["States"]
    done: dict[str, Total] = {}  # from a state to the end, memoized (shared tails of Choices)
    on_stack: set[str] = set()

    def own(name: str, at: float) -> Total:
        state = states[name]
        kind = state.get("Type")
        t = Total()
        if kind == "Parallel":
            branches = [walk(b, hooks, scope + (name,), at) for b in state.get("Branches", [])]
            leaf = hooks.leaf(name, state, scope)
            t.seconds = leaf.seconds + max((b.seconds for b in branches), default=0.0)
            t.usd.update(leaf.usd)
            t.counts.update(leaf.counts)
            t.charges.append((name, leaf, 1))
            longest = max(branches, key=lambda b: b.seconds, default=None)
            for b in branches:
                t.usd.update(b.usd)
                t.counts.update(b.counts)
                t.charges += b.charges
                t.spans += b.spans
                t.notes += b.notes
            # Branches run at once: their footprints add up.
            t.peak_vcpu = sum(b.peak_vcpu for b in branches)
            t.peak_tasks = sum(b.peak_tasks for b in branches)
            t.path = [name] + ([f"{name}/{p}" for p in longest.path] if longest else [])
        elif kind == "Map":
            n = max(0, int(hooks.items(name, state)))
            conc, note = concurrency(name, state, n)
            if note:
                t.notes.append(note)
            processor = state.get("ItemProcessor") or state.get("Iterator")
            child = walk(processor, hooks, scope + (name,), at) if processor else Total()
            leaf = hooks.leaf(name, state, scope)  # the Map's own start-up and waves' launch delay
            waves = math.ceil(n / conc) if n else 0
            t.seconds = leaf.seconds + waves * child.seconds
            t.usd.update(leaf.usd)
            t.counts.update(leaf.counts)
            t.charges.append((name, leaf, 1))
            for k, v in child.usd.items():
                t.usd[k] += v * n
            for k, v in child.counts.items():
                t.counts[k] += v * n
            t.charges += [(c, l, times * n) for c, l, times in child.charges]
            t.notes += child.notes
            t.peak_vcpu = child.peak_vcpu * min(conc, n)
            t.peak_tasks = child.peak_tasks * min(conc, n)
            t.counts["map_waves"] += waves
            t.path = [name]
        else:
            leaf = hooks.leaf(name, state, scope)
            t.seconds = leaf.seconds
            t.usd.update(leaf.usd)
            t.counts.update(leaf.counts)
            t.peak_vcpu, t.peak_tasks = leaf.vcpu, leaf.tasks
            t.charges.append((name, leaf, 1))
            t.path = [name]
        t.spans.insert(0, Span(name, at, at + t.seconds))
        return t

    def from_state(name: str, at: float) -> Total:
        if name in on_stack:  # a loop (a polling Choice): counted once, not forever
            return Total(notes=[f"{name}: the state machine loops back here; the loop is counted once"])
        if name in done:  # shared tail: same totals, shifted in time
            return _shift(done[name], at - done[name].spans[0].start if done[name].spans else 0.0)
        on_stack.add(name)
        head = own(name, at)
        tails = [from_state(nxt, at + head.seconds) for nxt in _successors(states[name])]
        on_stack.discard(name)
        # Ties go to the way that reaches an end (a loop back has no path of its own).
        tail = max(tails, key=lambda x: (x.seconds, len(x.path)), default=Total())
        out = Total(
            seconds=head.seconds + tail.seconds,
            usd=head.usd + tail.usd,
            counts=head.counts + tail.counts,
            peak_vcpu=max(head.peak_vcpu, tail.peak_vcpu),
            peak_tasks=max(head.peak_tasks, tail.peak_tasks),
            path=head.path + tail.path,
            spans=head.spans + tail.spans,
            charges=head.charges + tail.charges,
            notes=head.notes + [n for t in tails for n in t.notes],
        )
        done[name] = out
        return out

    return from_state(machine["StartAt"], start)


def _shift(t: Total, by: float) -> Total:
    return Total(t.seconds, Counter(t.usd), Counter(t.counts), t.peak_vcpu, t.peak_tasks, list(t.path),
                 [Span(s.name, s.start + by, s.end + by) for s in t.spans], list(t.charges), list(t.notes))
