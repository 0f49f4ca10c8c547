"""Every AWS name and ARN the pipeline's resources get, derived from the spec in one place."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stepkit.spec.pipeline import Pipeline

# Stands for the execution name in rendered SQL and worker arguments; the ASL swaps in
# `$.run.id` (RUN_ID_PATH), local runs the local run id. Only ever inside string literals.
RUN_ID = "${run_id}"
# Where the run id is in the execution's state: set from the execution name by the first states, or
# given in the input to continue an earlier run (see compiler/wiring.py).
RUN_ID_PATH = "$.run.id"

ROLES = ("statemachine", "lambda", "task", "task_execution")
CLEANUP_FUNCTION = "cleanup"


@dataclass(frozen=True)
class Names:
    p: "Pipeline"
    # Where tables, models and results live: `s3://bucket/prefix/` on AWS; a local run passes
    # its warehouse folder (an absolute path ending in "/") and the same layout follows.
    root_override: str | None = None

    @property
    def aws(self):
        return self.p.aws

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:aws:{service}:{self.aws.region if region else ''}:"
            f"{self.aws.account_id if account else ''}:{resource}"
        )

    # --- Step Functions
    @cached_property
    def state_machine(self) -> str:
        return self.p.state_machine_name or f"{self.p.resource_prefix}-pipeline"

    @property
    def state_machine_arn(self) -> str:
        # Built from the name, not a reference, so the role can name it (CDK issue 28820).
        return self.arn("states", f"stateMachine:{self.state_machine}")

    @property
    def executions_arn(self) -> str:
        return self.arn("states", f"execution:{self.state_machine}/*")

    # --- IAM
    def role(self, role: str) -> str:
        suffix = {"statemachine": "sfn", "lambda": "lambda", "task": "task", "task_execution": "task-execution"}[role]
        return f"{self.p.resource_prefix}-{suffix}"

    def role_arn(self, role: str) -> str:
        return self.arn("iam", f"role/{self.role(role)}", region=False)

    # --- ECS / ECR / Lambda / logs
    @property
    def cluster(self) -> str:
        return f"{self.p.resource_prefix}-cluster"

    @property
    def cluster_arn(self) -> str:
        return self.arn("ecs", f"cluster/{self.cluster}")

    def task_family(self, task: str) -> str:
        return f"{self.p.resource_prefix}-{task.replace('_', '-')}"

    def task_definition_arn(self, task: str) -> str:
        return self.arn("ecs", f"task-definition/{self.task_family(task)}")

    def container(self, task: str) -> str:
        return task.replace("_", "-")

    def repository(self, task: str) -> str:
        return f"{self.p.resource_prefix}-{task.replace('_', '-')}"

    def image(self, task: str) -> str:
        spec = self.p.compute.tasks[task]
        if spec.image:
            return spec.image
        return f"{self.aws.account_id}.dkr.ecr.{self.aws.region}.amazonaws.com/{self.repository(task)}:latest"

    def function(self, name: str) -> str:
        return f"{self.p.resource_prefix}-{name}"

    def function_arn(self, name: str) -> str:
        return self.arn("lambda", f"function:{self.function(name)}")

    def log_group(self, what: str) -> str:
        return f"/stepkit/{self.p.resource_prefix}/{what}"

    def log_group_arn(self, what: str) -> str:
        return self.arn("logs", f"log-group:{self.log_group(what)}")

    @property
    def schedule_rule(self) -> str:
        return f"{self.p.resource_prefix}-schedule"

    # --- S3: everything lives under s3://bucket/prefix/
    @property
    def root(self) -> str:
        return self.root_override or f"s3://{self.aws.bucket}/{self.aws.prefix}/"

    def table_root(self, table_key: str) -> str:
        return f"{self.root}tables/{self.p.tables.names()[table_key]}/"

    def table_location(self, table_key: str, run_id: str = RUN_ID) -> str:
        """Each run writes its own location, so a CTAS location is always empty and runs never mix."""
        return f"{self.table_root(table_key)}{run_id}/"

    def run_root(self, run_id: str = RUN_ID) -> str:
        return f"{self.root}runs/{run_id}/"

    def models_location(self, run_id: str = RUN_ID) -> str:
        return f"{self.run_root(run_id)}models/"

    def model_location(self, target: str, run_id: str = RUN_ID) -> str:
        """One target's model: `models/<target>/` (model.joblib and its metrics.json)."""
        return f"{self.models_location(run_id)}{target}/"

    @property
    def query_results(self) -> str:
        return f"{self.root}athena-results/"

    @property
    def map_results(self) -> str:
        return f"{self.root}map-results/"

    @property
    def config_uri(self) -> str:
        """Where deploy puts the resolved pipeline (workers read it)."""
        return f"{self.root}stepkit/pipeline.json"

    # --- Athena / Glue
    @property
    def workgroup_arn(self) -> str:
        return self.arn("athena", f"workgroup/{self.aws.workgroup}")

    def glue_arns(self, database: str) -> list[str]:
        return [
            self.arn("glue", "catalog"),
            self.arn("glue", f"database/{database}"),
            self.arn("glue", f"table/{database}/*"),
        ]
