"""What the two Fargate blocks share: the `ecs:runTask.sync` state and its permissions."""
from __future__ import annotations

from typing import TYPE_CHECKING

import json
import re

from stepkit.ir.asl import ECS_CAPACITY_RETRY, ECS_RETRY, State, escape_intrinsic, state
from stepkit.ir.cfn import PARAM_IMAGE_TAG, Output, Resource, get_att, log_group, logical_id, parameter, ref, role_id, sub
from stepkit.ir.iam import Statement
from stepkit.steps import _s3

if TYPE_CHECKING:
    from stepkit.ir.context import Context

RESOURCE = "arn:aws:states:::ecs:runTask.sync"
# Step Functions creates this EventBridge rule itself to learn when a task stops (docs: ecs-iam).
ECS_RULE = "rule/StepFunctionsGetEventsForECSTaskRule"
# ECR keeps this many images per repository; older ones expire (the seed's images are ~600 MB each).
KEEP_IMAGES = 10


def command(ctx: "Context", run_id_path: str, extra: list[str | tuple[str, str]]) -> str:
    """`States.Array(...)` of the worker's arguments. Tuples are (flag, JSONPath) pairs."""
    parts = [f"'--config'", f"'{escape_intrinsic(ctx.names.config_uri)}'", "'--run-id'", run_id_path]
    for item in extra:
        if isinstance(item, tuple):
            flag, path = item
            parts += [f"'{escape_intrinsic(flag)}'", f"States.Format('{{}}', {path})"]
        else:
            parts.append(f"'{escape_intrinsic(item)}'")
    return f"States.Array({', '.join(parts)})"


# The placeholders a user's command may hold, and the environment its container gets either way.
PLACEHOLDER = re.compile(r"\{(run_id|config|batch_id)\}")
ENVIRONMENT = {"STEPKIT_RUN_ID": "run_id", "STEPKIT_CONFIG": "config", "STEPKIT_BATCH_ID": "batch_id"}


def user_command(ctx: "Context", items: list[str], run_id_path: str, batch_path: str | None = None) -> str:
    """`States.Array(...)` of a user's own command: `{run_id}`, `{config}` and (per batch) `{batch_id}`
    in an item are filled in; the rest is taken as written."""
    paths = {"run_id": run_id_path, "batch_id": batch_path}
    parts = []
    for item in items:
        pieces, args, pos = [], [], 0
        for m in PLACEHOLDER.finditer(item):
            pieces.append(escape_intrinsic(item[pos:m.start()]))
            if m.group(1) == "config":
                pieces.append(escape_intrinsic(ctx.names.config_uri))
            else:
                pieces.append("{}")
                args.append(paths[m.group(1)])
            pos = m.end()
        pieces.append(escape_intrinsic(item[pos:]))
        text = "".join(pieces)
        parts.append(f"States.Format('{text}', {', '.join(args)})" if args else f"'{text}'")
    return f"States.Array({', '.join(parts)})"


def environment(ctx: "Context", run_id_path: str, batch_path: str | None = None) -> list[dict[str, str]]:
    """The run id, the worker config's URI and (per batch) the batch id, as the container's environment."""
    out = [{"Name": "STEPKIT_CONFIG", "Value": ctx.names.config_uri}, {"Name": "STEPKIT_RUN_ID", "Value.$": run_id_path}]
    if batch_path:
        out.append({"Name": "STEPKIT_BATCH_ID", "Value.$": f"States.Format('{{}}', {batch_path})"})
    return out


def task(ctx: "Context", task_name: str, cmd: str, comment: str | None = None,
         env: list[dict[str, str]] | None = None) -> State:
    n, net = ctx.names, ctx.p.aws.network
    spec = ctx.p.compute.tasks[task_name]
    return state(
        "Task", comment,
        Resource=RESOURCE,
        Parameters={
            "LaunchType": "FARGATE",
            "Cluster": n.cluster_arn,
            # The family alone runs its latest ACTIVE revision, so an image update needs no recompile.
            "TaskDefinition": n.task_family(task_name),
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "Subnets": list(net.subnets),
                    "SecurityGroups": list(net.security_groups),
                    "AssignPublicIp": "ENABLED" if net.assign_public_ip else "DISABLED",
                }
            },
            "Overrides": {"ContainerOverrides": [{"Name": n.container(task_name), "Command.$": cmd,
                                                  **({"Environment": env} if env else {})}]},
            # The task definition's tags (the pipeline's) go to the task. Not EnableECSManagedTags: the
            # Step Functions integration does not pass it (compiler/integrations.py).
            "PropagateTags": "TASK_DEFINITION",
        },
        # The DescribeTasks response is kilobytes; downstream states need none of it.
        ResultPath=None,
        TimeoutSeconds=spec.timeout_minutes * 60,
        # Throttling first, then a launch that found no Fargate capacity: each has its own budget.
        Retry=[ECS_RETRY.render(), ECS_CAPACITY_RETRY.render()],
    )


def statements(ctx: "Context", task_name: str, writes: "frozenset[str] | None" = None) -> list[Statement]:
    """ecs:runTask.sync (docs: ecs-iam; CDK run-task.ts), plus what the container and its launch need.
    `writes`: what the block declares it writes (None: undeclared), which bounds the task role's writes."""
    n, aws = ctx.names, ctx.p.aws
    sm = "statemachine"
    written = _s3.written_by_task(ctx, writes)
    tasks_in_cluster = n.arn("ecs", f"task/{n.cluster}/*")
    out = [
        Statement.of(sm, "ecs:RunTask", f"{n.task_definition_arn(task_name)}:*",
                     conditions={"ArnEquals": {"ecs:cluster": n.cluster_arn}}),
        # The task id is unknown ahead; the cluster's task ARNs are as narrow as AWS allows.
        Statement.of(sm, ["ecs:StopTask", "ecs:DescribeTasks"], tasks_in_cluster),
        # PropagateTags tags the task at launch (serverless-step-functions #656).
        Statement.of(sm, "ecs:TagResource", tasks_in_cluster),
        # The seed's missing permission, on the one rule AWS documents rather than '*'.
        Statement.of(sm, ["events:PutTargets", "events:PutRule", "events:DescribeRule"], n.arn("events", ECS_RULE)),
        Statement.of(sm, "iam:PassRole", [n.role_arn("task"), n.role_arn("task_execution")],
                     conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
        # The container: read the pipeline's data (and the config deploy wrote), write only what it writes.
        Statement.of("task", "s3:ListBucket", f"arn:aws:s3:::{aws.bucket}",
                     conditions={"StringLike": {"s3:prefix": [f"{aws.prefix}/*", aws.prefix]}}),
        Statement.of("task", "s3:GetObject", f"arn:aws:s3:::{aws.bucket}/{aws.prefix}/*"),
        # A task that declares it writes nothing (`writes: []`) gets no write at all.
        *([Statement.of("task", ["s3:PutObject", "s3:AbortMultipartUpload"], written)] if written else []),
        *_s3.kms(ctx, "task"),
        # The launch: pull the image, ship logs.
        Statement.of("task_execution", "ecr:GetAuthorizationToken", "*",
                     why="ecr:GetAuthorizationToken has no resource type: AWS requires '*'"),
        Statement.of("task_execution", ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
                                        "ecr:BatchGetImage"], n.arn("ecr", f"repository/{n.repository(task_name)}")),
        Statement.of("task_execution", ["logs:CreateLogStream", "logs:PutLogEvents"],
                     f"{n.log_group_arn(task_name)}:*"),
    ]
    return out


def vcpus(ctx: "Context", task_name: str) -> float:
    return ctx.p.compute.tasks[task_name].cpu


def _megabytes(gb: float) -> str:
    return str(int(round(gb * 1024)))


def resources(ctx: "Context", task_name: str) -> list[Resource]:
    """The cluster, and the task's image repository, log group and task definition."""
    n, spec = ctx.names, ctx.p.compute.tasks[task_name]
    tid = logical_id(task_name)
    cluster = Resource("Cluster", "AWS::ECS::Cluster", {
        "ClusterName": n.cluster,
        "ClusterSettings": [{"Name": "containerInsights", "Value": "disabled"}],
    }, outputs=(Output("ClusterName", ref("Cluster"), "ECS cluster"),
                Output("ClusterArn", get_att("Cluster", "Arn"), "ECS cluster ARN")))
    repo = f"{tid}Repository"
    repository = Resource(repo, "AWS::ECR::Repository", {
        "RepositoryName": n.repository(task_name),
        "ImageScanningConfiguration": {"ScanOnPush": True},
        "LifecyclePolicy": {"LifecyclePolicyText": json.dumps({"rules": [{
            "rulePriority": 1, "description": f"keep the last {KEEP_IMAGES} images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
            "action": {"type": "expire"}}]}, sort_keys=True)},
    }, retain=True, outputs=(Output(f"{repo}Uri", get_att(repo, "RepositoryUri"), f"ECR repository of the {task_name} image"),))
    logs = log_group(f"{tid}LogGroup", n.log_group(task_name), f"the {task_name} containers")
    image = spec.image or sub(
        f"${{AWS::AccountId}}.dkr.ecr.${{AWS::Region}}.amazonaws.com/${{{repo}}}:${{{PARAM_IMAGE_TAG}}}")
    container = {
        "Name": n.container(task_name),
        "Image": image,
        "Essential": True,
        "LogConfiguration": {"LogDriver": "awslogs", "Options": {
            "awslogs-group": ref(logs.logical_id), "awslogs-region": ref("AWS::Region"),
            "awslogs-stream-prefix": task_name}},
    }
    props = {
        "Family": n.task_family(task_name),
        "Cpu": str(int(spec.cpu * 1024)),
        "Memory": _megabytes(spec.memory_gb),
        "NetworkMode": "awsvpc",
        "RequiresCompatibilities": ["FARGATE"],
        "RuntimePlatform": {"CpuArchitecture": spec.architecture, "OperatingSystemFamily": "LINUX"},
        "ExecutionRoleArn": get_att(role_id("task_execution"), "Arn"),
        "TaskRoleArn": get_att(role_id("task"), "Arn"),
        "ContainerDefinitions": [container],
    }
    if spec.ephemeral_storage_gb > 20:
        props["EphemeralStorage"] = {"SizeInGiB": spec.ephemeral_storage_gb}
    td = f"{tid}TaskDefinition"
    task_definition = Resource(td, "AWS::ECS::TaskDefinition", props,
                               outputs=(Output(f"{td}Arn", ref(td), f"Task definition of {task_name}"),),
                               parameters=(parameter(PARAM_IMAGE_TAG, Type="String", Default="latest",
                                                     Description="Image tag the task definitions run."),))
    return [cluster, repository, logs, task_definition]
