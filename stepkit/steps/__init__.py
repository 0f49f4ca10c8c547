"""The building blocks, and the registry that finds third-party ones.

A package adds a block by exposing its Stage subclass in the `stepkit.steps` entry-point group:

    [project.entry-points."stepkit.steps"]
    my_block = "my_package.blocks:MyBlock"
"""
from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points

from stepkit.steps.base import Stage

# type name -> "module:Class". Adding a built-in block is one line here.
BUILTIN = {
    "athena_ctas": "stepkit.steps.athena_ctas:AthenaCtas",
    "athena_query": "stepkit.steps.athena_query:AthenaQuery",
    "fargate_task": "stepkit.steps.fargate_task:FargateTask",
    "fan_out": "stepkit.steps.fan_out:FanOut",
    "batch_ids": "stepkit.steps.batch_ids:BatchIds",
    "lambda_invoke": "stepkit.steps.lambda_invoke:LambdaInvoke",
    "wait": "stepkit.steps.wait:Wait",
    "cleanup": "stepkit.steps.cleanup:Cleanup",
    "existing_model": "stepkit.steps.existing_model:ExistingModel",
}


def _load(target: str) -> type[Stage]:
    module, _, attr = target.partition(":")
    cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise TypeError(f"{target} is not a stepkit Stage")
    return cls


@lru_cache(maxsize=1)
def registry() -> dict[str, type[Stage]]:
    """Every block by type name: the built-in ones, then third-party ones (read once per process)."""
    found = {name: _load(target) for name, target in BUILTIN.items()}
    for ep in entry_points(group="stepkit.steps"):
        if ep.name not in found:
            found[ep.name] = _load(ep.value)
    return found
