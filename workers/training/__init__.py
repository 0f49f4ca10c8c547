"""The training task: every model of the spec, the interval calibration, the quality gate.

What training needs is imported here, at module level (see stepkit.workers.prediction): a local
run's forkserver imports this module once, before the task's process starts.
"""
from __future__ import annotations

import sys
from typing import Any

import joblib  # noqa: F401 - writes the model artifact

from stepkit.ml import reuse, train
# load_config's parser: stepkit.workers (workers/__init__.py) imports it late, to stay light for the cleanup Lambda.
from stepkit import config  # noqa: F401
from stepkit.spec.pipeline import WorkerPipeline
from stepkit.workers import load_config, stage_of

# The worker config's validator, complete: pydantic otherwise finishes
# it on the first validation (0.13 s).
WorkerPipeline.model_rebuild()


def run(config_uri: str, run_id: str, stage: str | None = None) -> dict[str, Any]:
    """Train on the run's training tables (by the stage's roles); write each target's model.joblib and
    metrics.json. An `existing_model` stage copies an earlier run's models instead, once they pass
    the checks. Returns the metrics summary."""
    pipeline, names = load_config(config_uri)
    own = stage_of(pipeline, stage)
    if own.get("type") == "existing_model":
        return reuse.run(pipeline, names, run_id, own.get("run", reuse.LATEST), own.get("from_prefix"))
    return train.run(pipeline, names, run_id, log=lambda line: print(line, file=sys.stderr),
                     roles=own.get("roles") or {})
