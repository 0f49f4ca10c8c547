"""AWS's size limits, checked on the rendered artifacts before anything is deployed (and the two
rules on state names that only the rendered definition shows: length, and unique names across
the Map states' inner states too).

Each problem names the limit, the size and by how much it is over, located at the part of the
pipeline file that makes the artifact big (a stage's template, its args, the stages as a whole).
Sizes are measured as AWS receives them: UTF-8 bytes of the one-line query, of the rendered
definition and template; IAM counts policy characters without white space. Where a value is only
known at run time (the execution name), the longest one AWS allows stands in for it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from stepkit.ir import asl
from stepkit.errors import Problem
from stepkit.spec.loader import Positions, dotted

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts

# Athena StartQueryExecution: QueryString of at most 262,144 bytes (athena quotas; not adjustable).
ATHENA_QUERY_BYTES = 262_144
# Step Functions: a definition of at most 1 MB (1,048,576 characters in CreateStateMachine), and at
# most 256 KiB of input or output per state or task, as UTF-8 (sfn service quotas; hard limits).
DEFINITION_BYTES = 1_048_576
STATE_PAYLOAD_BYTES = 262_144
# State names: at most 80 characters (sfn quotas). Stages add suffixes (_Insert01, Batch).
STATE_NAME_CHARS = 80
# Execution names are at most 80 characters: the run id is that long at worst.
LONGEST_RUN_ID = "r" * 80
# ECS RunTask: 8,192 characters of overrides, JSON included (ecs RunTask overrides).
ECS_OVERRIDES_CHARS = 8_192
# CloudFormation: a template read from S3 (deploy uploads it) of at most 1 MB, the figure cfn-lint
# checks (1,000,000 bytes); 500 resources, 200 outputs, 200 parameters; a 1,024-byte description.
TEMPLATE_BYTES = 1_000_000
TEMPLATE_COUNTS = {"Resources": 500, "Outputs": 200, "Parameters": 200}
TEMPLATE_DESCRIPTION_BYTES = 1_024
# IAM, counted without white space: a managed policy of 6,144 characters; inline policies of a role
# 10,240 characters together (iam quotas). The template attaches a policy as managed when it fits,
# else inline, so a role's policy may have at most the larger.
ROLE_POLICY_CHARS = 10_240

_RUN_ID_PATHS = re.compile(r"\$\$\.Execution\.Name|\$\.run_id")
_QUOTED = re.compile(r"'((?:\\.|[^'\\])*)'")


@dataclass(frozen=True)
class _Over:
    loc: tuple[Any, ...]
    message: str


def check(artifacts: "Artifacts", positions: Positions) -> list[Problem]:
    """Every AWS limit the artifacts pass, as located problems (none when all fit)."""
    file = str(artifacts.context.file)
    out = []
    for over in _all(artifacts):
        line, col = positions.find(over.loc)
        out.append(Problem(file, line, col, dotted(over.loc), over.message))
    return out


def _all(a: "Artifacts") -> Iterator[_Over]:
    yield from _states(a)
    size = _bytes(asl.render(a.definition))
    if size > DEFINITION_BYTES:
        yield _Over(("stages",), f"the state machine definition is {size:,} bytes; Step Functions takes at most "
                    f"{DEFINITION_BYTES:,} (1 MB): {size - DEFINITION_BYTES:,} over. Fewer or shorter features, "
                    "categories or stages")
    for role, policy in a.policies.items():
        chars = len(json.dumps(policy.document(), separators=(",", ":")))
        if chars > ROLE_POLICY_CHARS:
            yield _Over(("stages",), f"the {role} role's policy is {chars:,} characters; IAM allows a role "
                        f"{ROLE_POLICY_CHARS:,} (white space not counted): {chars - ROLE_POLICY_CHARS:,} over")
    built = a.template
    size = _bytes(a.template_json)
    if size > TEMPLATE_BYTES:
        yield _Over(("stages",), f"the CloudFormation template is {size:,} bytes; CloudFormation reads at most "
                    f"{TEMPLATE_BYTES:,} from S3: {size - TEMPLATE_BYTES:,} over (the definition is most of it)")
    for section, limit in TEMPLATE_COUNTS.items():
        n = len(built.get(section, {}))
        if n > limit:
            yield _Over(("stages",), f"the CloudFormation template has {n} {section.lower()}; a stack may have "
                        f"{limit}: {n - limit} over")
    size = _bytes(built.get("Description", ""))
    if size > TEMPLATE_DESCRIPTION_BYTES:
        yield _Over(("description",), f"the template description is {size:,} bytes; CloudFormation takes "
                    f"{TEMPLATE_DESCRIPTION_BYTES:,}: {size - TEMPLATE_DESCRIPTION_BYTES:,} over")


def _states(a: "Artifacts") -> Iterator[_Over]:
    """Per state: its name, its Athena query, its input (Parameters) and its ECS overrides."""
    long_names: set[tuple[Any, ...]] = set()
    seen: set[str] = set()
    for name, state in _every_state(a.definition["States"]):
        loc = _stage_loc(a, name)
        if name in seen:  # ASL: state names are unique in the whole machine, inside a Map's too
            yield _Over(loc + ("name",), f"makes a state named {name!r}, which another stage's Map state has "
                        "inside it; state names are unique in the whole state machine: rename the stage")
        seen.add(name)
        if len(name) > STATE_NAME_CHARS and loc not in long_names:
            long_names.add(loc)  # one line per stage, not one per `_InsertNN` state
            yield _Over(loc + ("name",), f"makes a state named {name!r}, {len(name)} characters; Step Functions "
                        f"takes at most {STATE_NAME_CHARS}: shorten the stage name")
        params = state.get("Parameters")
        if not isinstance(params, dict):
            continue
        query = _query(params)
        if query is not None and _bytes(query) > ATHENA_QUERY_BYTES:
            size = _bytes(query)
            yield _Over(loc + ("template",), f"state {name}: the query is {size:,} bytes as sent to Athena (one line, "
                        f"an 80-character run id); Athena takes at most {ATHENA_QUERY_BYTES:,}: "
                        f"{size - ATHENA_QUERY_BYTES:,} over. Fewer or shorter feature names or categories")
            continue
        size = _bytes(json.dumps(_resolved(params), separators=(",", ":"), ensure_ascii=False))
        if size > STATE_PAYLOAD_BYTES:
            yield _Over(loc + (("template",) if query is not None else ()),
                        f"state {name}: its input is {size:,} bytes (its Parameters, an 80-character run id); Step "
                        f"Functions takes at most {STATE_PAYLOAD_BYTES:,} (256 KiB): {size - STATE_PAYLOAD_BYTES:,} over")
        overrides = _overrides(params)
        if overrides is not None and len(overrides) > ECS_OVERRIDES_CHARS:
            yield _Over(loc + ("args",), f"state {name}: the container overrides are {len(overrides):,} characters "
                        f"(its command, an 80-character run id); ECS RunTask takes at most {ECS_OVERRIDES_CHARS:,}: "
                        f"{len(overrides) - ECS_OVERRIDES_CHARS:,} over")


def _every_state(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or {}
        yield from _every_state(processor.get("States", {}))
        for branch in state.get("Branches", []):
            yield from _every_state(branch.get("States", {}))


def _stage_loc(a: "Artifacts", state: str) -> tuple[Any, ...]:
    """The stage a state comes from (the plan's state -> stage map), or on_failure's, or stepkit's own."""
    stage = a.stage_of.get(state)
    if stage is not None:
        return ("stages", next(i for i, s in enumerate(a.context.p.stages) if s.name == stage))
    return ("on_failure",) if state in ("CleanupOnFailure", "Failed") else ()


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _format(expr: str) -> str | None:
    """The text `States.Format('...', run id paths)` makes, with the longest run id."""
    if not expr.startswith("States.Format("):
        return None
    m = _QUOTED.search(expr)
    return _unescape(m.group(1)).replace("{}", LONGEST_RUN_ID) if m else None


def _query(params: dict[str, Any]) -> str | None:
    if "QueryString" in params:
        return params["QueryString"]
    if "QueryString.$" in params:
        return _format(params["QueryString.$"])
    return None


def _resolved(value: Any) -> Any:
    """Parameters as the state's input: paths and intrinsics replaced by what they make, where
    known (run ids at their longest); other paths by their own text, a few bytes either way."""
    if isinstance(value, dict):
        return {(k[:-2] if k.endswith(".$") else k): (_intrinsic(v) if k.endswith(".$") and isinstance(v, str)
                                                         else _resolved(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def _intrinsic(expr: str) -> Any:
    formatted = _format(expr)
    if formatted is not None:
        return formatted
    if expr.startswith("States.Array("):
        return _array(expr)
    return _RUN_ID_PATHS.sub(LONGEST_RUN_ID, expr)


def _array(expr: str) -> list[str]:
    """`States.Array('a', $.p, States.Format('{}', $.q))` -> its items, paths at their longest."""
    inner = expr[len("States.Array("):-1]
    items: list[str] = []
    for m in re.finditer(r"States\.Format\('(?:\\.|[^'\\])*'[^)]*\)|'(?:\\.|[^'\\])*'|[^,\s][^,]*", inner):
        token = m.group(0).strip()
        if token.startswith("'"):
            items.append(_unescape(token[1:-1]))
        elif token.startswith("States.Format("):
            items.append(_format(token) or "")
        else:
            items.append(LONGEST_RUN_ID)
    return items


def _overrides(params: dict[str, Any]) -> str | None:
    """RunTask's `overrides` as ECS receives it (lower-case keys, compact JSON)."""
    containers = params.get("Overrides", {}).get("ContainerOverrides")
    if not containers:
        return None
    resolved = [{"name": c.get("Name", ""), "command": _intrinsic(c["Command.$"]) if "Command.$" in c
                 else c.get("Command", [])} for c in containers]
    return json.dumps({"containerOverrides": resolved}, separators=(",", ":"), ensure_ascii=False)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))
