"""What stepkit's own worker modules read, write and need, for the blocks that run them.

A `fargate_task` or `fan_out` of the task `training` runs `stepkit.workers.training` (unless the
task names its own `module`): such a stage reads and writes what its worker does, by role (a
stage's `roles` maps a role to another table key), and needs the pipeline sections its worker
reads. A user's module is opaque: its stage says what it reads and writes (`reads`/`writes`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREFIX = "stepkit.workers."


@dataclass(frozen=True)
class Worker:
    reads: tuple[str, ...]  # table roles, and `model`
    writes: tuple[str, ...]
    needs: tuple[str, ...]  # optional pipeline sections it reads (spec/pipeline.py OPTIONAL_SECTIONS)
    batch: bool  # runs per batch (a fan-out), with --batch-id


WORKERS = {
    "stepkit.workers.training": Worker(("training_features", "training_targets"), ("model",),
                                       ("target", "features", "training", "sample"), batch=False),
    "stepkit.workers.prediction": Worker(("evaluation_features", "model"), ("predictions",),
                                         ("target", "features", "batching"), batch=True),
}
ARTIFACTS = ("model",)


def module_of(pipeline: Any, task: str) -> str:
    spec = pipeline.compute.tasks.get(task)
    return (spec.module if spec is not None else None) or f"{PREFIX}{task}"


def worker(pipeline: Any, task: str) -> Worker | None:
    """stepkit's worker the task runs, or None (the user's own module or image)."""
    return WORKERS.get(module_of(pipeline, task))


def missing_sections(pipeline: Any, needs: tuple[str, ...]) -> list[str]:
    return [s for s in needs if not pipeline.has(s)]
