"""`lambda_invoke`: call a Lambda function (`lambda:invoke`), with retries on Lambda's transient errors."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from stepkit.ir.asl import LAMBDA_RETRY, Fragment, State, state
from stepkit.ir.iam import Statement
from stepkit.ir.names import RUN_ID_PATH
from stepkit.spec.names import FunctionRef
from stepkit.steps.base import Finding, Stage

if TYPE_CHECKING:
    from stepkit.ir.context import Context

RESOURCE = "arn:aws:states:::lambda:invoke"


def invoke(ctx: "Context", function_arn: str, payload: dict[str, Any], timeout_seconds: int,
           comment: str | None = None) -> State:
    return state(
        "Task", comment,
        Resource=RESOURCE,
        Parameters={"FunctionName": function_arn, "Payload": payload},
        ResultPath=None,
        # The function's own timeout plus a margin for the invoke itself.
        TimeoutSeconds=timeout_seconds + 30,
        Retry=[LAMBDA_RETRY.render()],
    )


def invoke_statement(function_arn: str) -> Statement:
    return Statement.of("statemachine", "lambda:InvokeFunction", [function_arn, f"{function_arn}:*"])


class LambdaInvoke(Stage):
    """Invoke a function with a payload; the run id is added as `run_id`."""

    type: Literal["lambda_invoke"] = "lambda_invoke"
    function: FunctionRef = Field(description="Function name (prefixed with resource_prefix) or a full function ARN.")
    payload: dict[str, Any] = Field(default_factory=dict, description="JSON payload (static values).")
    expected_seconds: int | None = Field(
        None, gt=0, description="How long the work usually takes; the compiler checks it fits the Lambda timeout."
    )

    @field_validator("payload")
    @classmethod
    def _static(cls, v: dict[str, Any]) -> dict[str, Any]:
        # In Parameters a key ending in `.$` is a path Step Functions evaluates, not a value.
        def keys(value: Any) -> list[str]:
            if isinstance(value, dict):
                return [*value, *(k for item in value.values() for k in keys(item))]
            if isinstance(value, list):
                return [k for item in value for k in keys(item)]
            return []

        for key in keys(v):
            if key.endswith(".$"):
                raise ValueError(f"key {key!r}: a key ending in '.$' is a path Step Functions evaluates; the payload "
                                 "holds static values only")
        if "run_id" in v:
            raise ValueError("key 'run_id': stepkit adds the run id as `run_id` itself")
        return v

    def function_arn(self, ctx: "Context") -> str:
        if self.function.startswith("arn:"):
            return self.function
        return ctx.names.function_arn(self.function)

    def check(self, ctx: "Context") -> list[Finding]:
        if not self.function.startswith("arn:") and len(ctx.names.function(self.function)) > 64:
            return [Finding("error", ("function",), f"{ctx.names.function(self.function)!r} is "
                            f"{len(ctx.names.function(self.function))} characters; Lambda names have at most 64")]
        limit = ctx.p.compute.lambda_.timeout_seconds
        if self.expected_seconds and self.expected_seconds > limit * 0.8:
            return [Finding("error", ("expected_seconds",), f"{self.expected_seconds} s of work in a Lambda with a "
                            f"{limit} s timeout; raise compute.lambda.timeout_seconds (max 900) or move the work to "
                            "an Athena or Fargate stage")]
        return []

    def fragment(self, ctx: "Context") -> Fragment:
        payload = {**self.payload, "run_id.$": RUN_ID_PATH}
        state = invoke(ctx, self.function_arn(ctx), payload, ctx.p.compute.lambda_.timeout_seconds, self.comment)
        return Fragment().add(self.name, state).chain()

    def iam(self, ctx: "Context") -> list[Statement]:
        return [invoke_statement(self.function_arn(ctx))]
