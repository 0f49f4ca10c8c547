"""The compiled pipeline: one typed plan that every backend reads.

`compiler.build` makes it; the ASL, IAM and CloudFormation renderers, `stepkit deploy`, the local
interpreter's adapters and the run record all read it. Nothing downstream asks a block its type:
what a backend needs to know about a stage is here, as data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from stepkit.errors import Problem
from stepkit.ir import asl
from stepkit.ir.cfn import Resource
from stepkit.ir.context import Context
from stepkit.ir.iam import Policy
from stepkit.ir.sql import SqlStatement
from stepkit.steps.base import Flow, Stage


@dataclass
class StagePlan:
    stage: Stage  # the block, as the spec gave it
    index: int  # its place in the spec's `stages`
    flow: Flow  # what it reads and changes
    states: list[str]  # its states in the definition: guard, prepare, its own, in that order
    entry: str  # the state a continued run enters it by (its guard, or its first state)
    exits: tuple[str, ...]  # the states whose end is the stage's end
    statements: list[SqlStatement]
    # A failed attempt may simply run again (its writes overwrite): redrive it in place. Otherwise
    # (an Athena write) continue the run from the stage's guard, whose prepare cleans up first.
    repeatable: bool = True
    # Table keys its prepare state cleans before it runs again.
    prepares: tuple[str, ...] = ()
    # Has a `<Stage>.done` guard: a continued run may skip it. (A stage that only sets execution
    # state has none: its output is not kept between executions, so it always runs.)
    guarded: bool = True

    @property
    def name(self) -> str:
        return self.stage.name


@dataclass
class Plan:
    context: Context
    definition: dict[str, Any]
    policies: dict[str, Policy]
    statements: list[SqlStatement]
    resources: list[Resource] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    stages: list[StagePlan] = field(default_factory=list)
    # state name -> stage name: its guard, prepare and own states, and the states a Map of it runs per item
    stage_of: dict[str, str] = field(default_factory=dict)

    def stage(self, name: str) -> StagePlan:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @cached_property
    def template(self) -> dict[str, Any]:
        """The CloudFormation template (built once: the size checks and `files()` both read it)."""
        from stepkit.compiler import template  # lazy: pure dicts; keeps compile fast

        return template.build(self)

    @cached_property
    def template_json(self) -> str:
        from stepkit.compiler import template

        return template.render(self.template)

    def files(self) -> dict[str, str]:
        """Relative path -> content, for `compile --out`."""
        out = {"statemachine.asl.json": asl.render(self.definition)}
        for role, policy in self.policies.items():
            out[f"iam/{role}.json"] = policy.render()
        for st in self.statements:
            out[f"sql/{st.name}.sql"] = st.sql
        out["template.json"] = self.template_json
        return dict(sorted(out.items()))


Artifacts = Plan  # the name the rest of the code base and its tests grew up with
