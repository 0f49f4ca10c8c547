"""The data flow between stages: which stage needs which, what may run side by side, and what no
stage provides.

Every block says what it reads and changes (`Stage.flow`: table keys, task artifacts such as
`model`, execution state such as `$batch_ids`). From that:

- `problems()`: a stage that reads what no earlier stage writes (a pipeline without its training
  stage, a fan-out with nothing to score, a table a cleanup already deleted) is refused before
  anything runs, instead of failing (or "succeeding" on empty tables) halfway through a run;
- `structure()`: the stages as series and parallel parts. Two stages conflict when one changes
  what the other touches; a stage with unknown effects (a barrier) conflicts with every stage.
  The spec's order is kept wherever two stages conflict, so the result never reorders a
  dependency; independent stages become branches of a Parallel state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

from stepkit.steps.base import Flow


@dataclass(frozen=True)
class Series:
    parts: tuple["Node", ...]


@dataclass(frozen=True)
class Branches:
    branches: tuple["Node", ...]


Node = Union[int, Series, Branches]  # an int is a stage's index


def _conflict(a: Flow, b: Flow) -> bool:
    return a.barrier or b.barrier or bool(a.changes & b.touches) or bool(b.changes & a.touches)


def ancestors(flows: Sequence[Flow]) -> list[set[int]]:
    """For each stage, every earlier stage it must follow (directly or through others)."""
    out: list[set[int]] = []
    for j, fj in enumerate(flows):
        before: set[int] = set()
        for i in range(j):
            if i not in before and _conflict(flows[i], fj):
                before |= {i} | out[i]
        out.append(before)
    return out


def problems(flows: Sequence[Flow], names: Sequence[str]) -> list[tuple[int, str]]:
    """(stage index, message) for every name a stage reads that no earlier stage provides."""
    written: dict[str, int] = {}  # name -> the stage that last wrote it
    defined: dict[str, int] = {}
    deleted: dict[str, int] = {}
    anything = False  # an earlier stage with unknown effects may have written it
    found = []
    for j, f in enumerate(flows):
        for name in sorted(f.reads):
            if name in written or anything:
                continue
            if name in deleted:
                found.append((j, f"reads {name!r}, which stage {names[deleted[name]]} deletes before it"))
            elif name in defined:
                found.append((j, f"reads {name!r}, a table {names[defined[name]]} declares but no earlier "
                              "stage fills with data"))
            else:
                found.append((j, f"reads {name!r}, which no earlier stage writes"))
        for name in f.deletes:
            written.pop(name, None)
            defined.pop(name, None)
            deleted[name] = j
        for name in f.defines:
            defined[name] = j
            deleted.pop(name, None)
        for name in f.writes:
            written[name] = j
            deleted.pop(name, None)
        anything = anything or (f.barrier and not f.deletes)
    return found


def _components(items: list[int], before: list[set[int]]) -> list[list[int]]:
    """`items` split where no dependency links them (each part keeps the spec's order)."""
    parent = {i: i for i in items}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    inside = set(items)
    for j in items:
        for i in before[j] & inside:
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in items:
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _state_only(f: Flow) -> bool:
    """Writes only execution state: it must not sit in a Parallel branch (a branch's state is dropped)."""
    return bool(f.writes) and all(w.startswith("$") for w in f.writes) and not f.barrier


def _declaration(f: Flow) -> bool:
    """Reads nothing and only declares (execution state, an external table): it costs nothing and
    needs nothing, so it goes first rather than into a branch of its own."""
    return not (f.reads or f.deletes or f.barrier) and (f.defines or f.writes) and \
        all(w.startswith("$") for w in f.writes)


def structure(flows: Sequence[Flow]) -> Node:
    before = ancestors(flows)
    return _shape(list(range(len(flows))), before, flows)


def _series(parts: list[Node]) -> Node:
    flat: list[Node] = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, Series) else [p])
    return flat[0] if len(flat) == 1 else Series(tuple(flat))


def _shape(items: list[int], before: list[set[int]], flows: Sequence[Flow]) -> Node:
    if len(items) == 1:
        return items[0]
    inside = set(items)
    # Declarations that need nothing here go first, outside any branch.
    hoisted = [i for i in items if _declaration(flows[i]) and not (before[i] & inside)]
    if hoisted:
        rest = [i for i in items if i not in hoisted]
        return _series([*hoisted, *([_shape(rest, before, flows)] if rest else [])])
    groups = _components(items, before)
    if len(groups) > 1:
        if any(_state_only(flows[i]) for i in items):
            return _series(items)  # a state writer that cannot be hoisted: keep the spec's order
        return Branches(tuple(_shape(g, before, flows) for g in groups))
    # One connected group: cut at the first stage every other one is before or after.
    for c in items:
        up = before[c] & inside
        down = {j for j in items if c in before[j]}
        if len(up) + len(down) == len(items) - 1:
            parts: list[Node] = []
            if up:
                parts.append(_shape([i for i in items if i in up], before, flows))
            parts.append(c)
            if down:
                parts.append(_shape([j for j in items if j in down], before, flows))
            return _series(parts)
    return _series(items)  # no clean cut: the spec's order, one after the other
