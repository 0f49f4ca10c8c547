"""stepkit's allow-list of Step Functions integrations: resource ARN -> the Parameters it takes.

No validator checks these (asl-validator, statelint and cfn-lint accept any resource string and
any parameter name; tooling.md), and AWS only refuses a typo at deploy or, worse, at run time.
`check(definition)` walks the finished state machine, Map item processors and Parallel branches
included, so a typo in a block fails `stepkit compile` instead.

A spec maps a parameter name to None (any value) or to the spec of its object value; a list
value is checked item by item against the same spec. Keys ending in `.$` are checked without
the suffix. Sources: the API references of Athena StartQueryExecution, ECS RunTask, Lambda
Invoke, S3 PutObject/GetObject/ListObjectsV2 and Step Functions StartExecution, as the
optimized integrations pass them through (docs: connect-athena, connect-ecs, connect-lambda,
input-output-resultwriter, connect-stepfunctions), and Step Functions ListExecutions through the
AWS SDK integration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Spec = dict[str, "Spec | None"]

_ATHENA: Spec = {
    "QueryString": None,
    "ClientRequestToken": None,
    "QueryExecutionContext": {"Database": None, "Catalog": None},
    "ResultConfiguration": {
        "OutputLocation": None,
        "EncryptionConfiguration": {"EncryptionOption": None, "KmsKey": None},
        "ExpectedBucketOwner": None,
        "AclConfiguration": {"S3AclOption": None},
    },
    "WorkGroup": None,
    "ExecutionParameters": None,
    "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": None, "MaxAgeInMinutes": None}},
}

_CONTAINER_OVERRIDE: Spec = {
    "Name": None,
    "Command": None,
    "Environment": {"Name": None, "Value": None},
    "EnvironmentFiles": {"Type": None, "Value": None},
    "Cpu": None,
    "Memory": None,
    "MemoryReservation": None,
    "ResourceRequirements": {"Type": None, "Value": None},
}

# The Step Functions ECS integration passes only these RunTask parameters (its guide's list; an
# unknown one fails CreateStateMachine): Cluster, Group, LaunchType, NetworkConfiguration,
# Overrides, PlacementConstraints, PlacementStrategy, PlatformVersion, PropagateTags,
# TaskDefinition, and EnableExecuteCommand, which CDK's EcsRunTask emits as well. RunTask's own
# CapacityProviderStrategy, Count, EnableECSManagedTags, ReferenceId, StartedBy, Tags, ClientToken
# and VolumeConfigurations are not in that list. Overrides may not carry ExecutionRoleArn or
# TaskRoleArn (the guide says so).
_ECS: Spec = {
    "Cluster": None,
    "TaskDefinition": None,
    "LaunchType": None,
    "Group": None,
    "NetworkConfiguration": {
        "AwsvpcConfiguration": {"Subnets": None, "SecurityGroups": None, "AssignPublicIp": None},
    },
    "Overrides": {
        "ContainerOverrides": _CONTAINER_OVERRIDE,
        "Cpu": None,
        "Memory": None,
        "EphemeralStorage": {"SizeInGiB": None},
        "InferenceAcceleratorOverrides": None,
    },
    "PlacementConstraints": None,
    "PlacementStrategy": None,
    "PlatformVersion": None,
    "PropagateTags": None,
    "EnableExecuteCommand": None,
}

_LAMBDA: Spec = {
    "FunctionName": None,
    "Payload": None,  # free-form: the function's own input
    "InvocationType": None,
    "LogType": None,
    "ClientContext": None,
    "Qualifier": None,
}

_START_EXECUTION: Spec = {"StateMachineArn": None, "Input": None, "Name": None}

# ListExecutions through the AWS SDK integration (parameter names in PascalCase): the "one run at a
# time" check reads the RUNNING executions of its own state machine.
_LIST_EXECUTIONS: Spec = {"StateMachineArn": None, "StatusFilter": None, "MaxResults": None, "NextToken": None,
                          "MapRunArn": None, "RedriveFilter": None}


@dataclass(frozen=True)
class Integration:
    parameters: Spec
    required: tuple[str, ...]


INTEGRATIONS: dict[str, Integration] = {
    "arn:aws:states:::athena:startQueryExecution": Integration(_ATHENA, ("QueryString",)),
    "arn:aws:states:::athena:startQueryExecution.sync": Integration(_ATHENA, ("QueryString",)),
    "arn:aws:states:::ecs:runTask": Integration(_ECS, ("TaskDefinition",)),
    "arn:aws:states:::ecs:runTask.sync": Integration(_ECS, ("TaskDefinition",)),
    "arn:aws:states:::ecs:runTask.waitForTaskToken": Integration(_ECS, ("TaskDefinition",)),
    "arn:aws:states:::lambda:invoke": Integration(_LAMBDA, ("FunctionName",)),
    "arn:aws:states:::lambda:invoke.waitForTaskToken": Integration(_LAMBDA, ("FunctionName",)),
    "arn:aws:states:::states:startExecution": Integration(_START_EXECUTION, ("StateMachineArn",)),
    "arn:aws:states:::states:startExecution.sync:2": Integration(_START_EXECUTION, ("StateMachineArn",)),
    # The AWS SDK integration (request-response only), for stepkit's one-run-at-a-time check.
    "arn:aws:states:::aws-sdk:sfn:listExecutions": Integration(_LIST_EXECUTIONS, ()),
}

# Distributed Map's ItemReader and ResultWriter take their own, smaller set.
ITEM_READERS: dict[str, Integration] = {
    "arn:aws:states:::s3:getObject": Integration({"Bucket": None, "Key": None, "VersionId": None}, ("Bucket", "Key")),
    "arn:aws:states:::s3:listObjectsV2": Integration({"Bucket": None, "Prefix": None}, ("Bucket",)),
}
RESULT_WRITERS: dict[str, Integration] = {
    "arn:aws:states:::s3:putObject": Integration({"Bucket": None, "Prefix": None}, ("Bucket",)),
}


def register(resource: str, parameters: Spec, required: tuple[str, ...] = ()) -> None:
    """Let a third-party block use another integration (call it when its module is imported)."""
    INTEGRATIONS[resource] = Integration(parameters, required)


@dataclass(frozen=True)
class Issue:
    state: str  # top-level state whose definition holds the problem (its stage made it)
    path: str  # where inside the definition, e.g. "ParallelPrediction.ItemProcessor.States.X.Parameters"
    message: str

    def __str__(self) -> str:
        # From the state that holds it (its place in nested Parallel branches is noise to a reader).
        at = self.path.rfind(f"States.{self.state}.")
        return f"{self.path[at:] if at >= 0 else self.path}: {self.message}"


def _keys(params: dict[str, Any], spec: Spec, path: str, resource: str, out: list[tuple[str, str]]) -> None:
    for key, value in params.items():
        name = key[:-2] if key.endswith(".$") else key
        if name not in spec:
            allowed = ", ".join(sorted(spec))
            out.append((f"{path}.{key}", f"{name!r} is not a parameter of {resource} (allowed: {allowed})"))
            continue
        sub = spec[name]
        if sub is None or key.endswith(".$"):
            continue  # free-form, or a JSONPath whose value is only known at run time
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            where = f"{path}.{key}[{i}]" if isinstance(value, list) else f"{path}.{key}"
            if isinstance(item, dict):
                _keys(item, sub, where, resource, out)
            else:
                out.append((where, f"expected an object of {', '.join(sorted(sub))}, got {type(item).__name__}"))


def _integration(block: dict[str, Any], table: dict[str, Integration], path: str,
                 out: list[tuple[str, str]]) -> None:
    resource = block.get("Resource")
    known = table.get(resource)  # type: ignore[arg-type]
    if known is None:
        out.append((f"{path}.Resource", f"{resource!r} is not an integration stepkit knows "
                    f"({', '.join(sorted(table))})"))
        return
    params = block.get("Parameters") or block.get("Arguments") or {}
    _keys(params, known.parameters, f"{path}.Parameters", resource, out)
    given = {k[:-2] if k.endswith(".$") else k for k in params}
    for req in known.required:
        if req not in given:
            out.append((f"{path}.Parameters", f"{resource} needs {req!r}"))


def _states(states: dict[str, Any], prefix: str, out: list[tuple[str, str, str]]) -> None:
    """(the state holding the problem, path, message): a state in a Parallel branch is its own owner."""
    for name, state in states.items():
        path = f"{prefix}{name}"
        found: list[tuple[str, str]] = []
        if state.get("Type") == "Task":
            _integration(state, INTEGRATIONS, path, found)
        if state.get("Type") == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator") or {}
            inner: list[tuple[str, str, str]] = []
            _states(processor.get("States", {}), f"{path}.ItemProcessor.States.", inner)
            found += [(p, m) for _, p, m in inner]  # a Map's item states are the Map's
            if "ItemReader" in state:
                _integration(state["ItemReader"], ITEM_READERS, f"{path}.ItemReader", found)
            if "ResultWriter" in state and "Resource" in state["ResultWriter"]:
                _integration(state["ResultWriter"], RESULT_WRITERS, f"{path}.ResultWriter", found)
        out += [(name, p, m) for p, m in found]
        for i, branch in enumerate(state.get("Branches", [])):
            _states(branch.get("States", {}), f"{path}.Branches[{i}].States.", out)


def check(definition: dict[str, Any]) -> list[Issue]:
    """Every integration resource and parameter in the definition that stepkit does not know."""
    found: list[tuple[str, str, str]] = []
    _states(definition.get("States", {}), "States.", found)
    return [Issue(state, path, message) for state, path, message in found]
