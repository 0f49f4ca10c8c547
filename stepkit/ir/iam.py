"""IAM statements, collected per role from the steps that need them, merged and rendered.

Steps declare what they need next to the states that need it (STYLE.md §1); this module
only merges and renders. `why` travels with a statement that must use `Resource: "*"`,
and is kept in the rendered Sid list of `explain()`.
"""
from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Statement:
    role: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # Required when resources is ("*",): why AWS leaves no narrower choice.
    why: str = ""

    def __post_init__(self) -> None:
        if "*" in self.resources and not self.why:
            raise ValueError(f"{self.actions}: Resource '*' needs a reason")

    @staticmethod
    def of(role: str, actions: list[str] | str, resources: list[str] | str, *, why: str = "",
           conditions: dict[str, dict[str, list[str] | str]] | None = None) -> "Statement":
        acts = (actions,) if isinstance(actions, str) else tuple(actions)
        res = (resources,) if isinstance(resources, str) else tuple(resources)
        conds = tuple(
            (op, key, (vals,) if isinstance(vals, str) else tuple(vals))
            for op, kv in sorted((conditions or {}).items())
            for key, vals in sorted(kv.items())
        )
        return Statement(role, acts, res, conds, why)


@dataclass
class Policy:
    role: str
    statements: list[Statement] = field(default_factory=list)
    # merged() for these statements: the template, the size check and the policy files all read it.
    _merged: tuple[tuple[Statement, ...], list[dict[str, Any]]] | None = field(default=None, repr=False, compare=False)

    def _needed(self) -> list[Statement]:
        """Drop statements another one already grants (same conditions, its actions and wider resources)."""
        keep = []
        for s in self.statements:
            # Cheap comparisons first: fnmatch only runs for the few pairs that could cover.
            covered = any(
                t is not s and t.conditions == s.conditions and set(s.actions) <= set(t.actions)
                and (set(t.resources) != set(s.resources) or set(t.actions) != set(s.actions))
                and all(any(fnmatchcase(r, tr) for tr in t.resources) for r in s.resources)
                for t in self.statements
            )
            if not covered:
                keep.append(s)
        return keep

    def merged(self) -> list[dict[str, Any]]:
        """One statement per (resources, conditions): actions unioned and sorted, order stable; then one
        per (actions, conditions): resources unioned.

        Statements on '*' stay apart, one per reason, so each reads as its own exception.
        Computed once per set of statements; callers read it, never change it."""
        key = tuple(self.statements)
        if self._merged is None or self._merged[0] != key:
            self._merged = (key, self._merge())
        return self._merged[1]

    def _merge(self) -> list[dict[str, Any]]:
        groups: dict[tuple, set[str]] = {}
        for s in self._needed():
            key = (tuple(sorted(set(s.resources))), s.conditions, s.why)
            groups.setdefault(key, set()).update(s.actions)
        # Then the same actions under the same conditions on different resources are one statement
        # with the resources together (the two task families' RunTask, the folders a role writes):
        # the same grant in fewer characters of IAM's 10,240.
        by_actions: dict[tuple, set[str]] = {}
        for (resources, conditions, why), actions in groups.items():
            by_actions.setdefault((tuple(sorted(actions)), conditions, why), set()).update(resources)
        groups = {(tuple(sorted(resources)), conditions, why): set(actions)
                  for (actions, conditions, why), resources in by_actions.items()}
        out = []
        for (resources, conditions, why), actions in sorted(groups.items(), key=lambda kv: (sorted(kv[1]), kv[0])):
            st: dict[str, Any] = {
                "Sid": _sid(sorted(actions), "*" in resources),
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": list(resources) if len(resources) > 1 else resources[0],
            }
            if conditions:
                cond: dict[str, dict[str, Any]] = {}
                for op, key, vals in conditions:
                    cond.setdefault(op, {})[key] = list(vals) if len(vals) > 1 else vals[0]
                st["Condition"] = cond
            out.append(st)
        # Sids must be unique in a policy.
        seen: dict[str, int] = {}
        for st in out:
            n = seen.get(st["Sid"], 0)
            seen[st["Sid"]] = n + 1
            if n:
                st["Sid"] = f"{st['Sid']}{n + 1}"
        return out

    def document(self) -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": self.merged()}

    def render(self) -> str:
        return json.dumps(self.document(), indent=2) + "\n"

    def wildcard_reasons(self) -> dict[str, str]:
        """action -> why it needs Resource '*' (for review and the project's IAM test)."""
        return {a: s.why for s in self.statements if "*" in s.resources for a in s.actions}


def _sid(actions: list[str], wildcard: bool) -> str:
    services = []
    for a in actions:
        svc = a.split(":")[0]
        if svc not in services:
            services.append(svc)
    verb = re.sub(r"[^A-Za-z0-9]", "", actions[0].split(":")[1]) if len(actions) == 1 else ""
    # Wildcard statements say so in their Sid: AWS offers no narrower resource for them.
    return "".join(s.capitalize() for s in services) + verb + ("AwsRequiresWildcard" if wildcard else "")
