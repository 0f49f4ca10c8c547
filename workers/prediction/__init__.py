"""The prediction task: one batch of evaluation features in, one predictions file out.

Everything a batch needs is imported here, at module level, and the config model is built: a
local run's forkserver imports this module once, so every worker process it starts scores its
first batch as fast as the rest (imported on first call, each process paid ~1.2 s).
"""
from __future__ import annotations

from typing import Any

import joblib  # noqa: F401 - the model artifact's format; imported by the first load otherwise

from stepkit.ml import kinds, predict
# load_config's parser: stepkit.workers (workers/__init__.py) imports it late, to stay light for the cleanup Lambda.
from stepkit import config  # noqa: F401
from stepkit.spec.pipeline import WorkerPipeline
from stepkit.workers import load_config, stage_of

# The worker config's validator, complete: pydantic otherwise finishes
# it on the first validation (0.13 s).
WorkerPipeline.model_rebuild()
# Every built-in model kind's module: the artifact names one kind, and no batch should import it.
for _kind in kinds.KINDS:
    kinds.get(_kind)


def run(config_uri: str, run_id: str, batch_id: int, stage: str | None = None) -> dict[str, Any]:
    """Score batch `batch_id` for every target (tables by the stage's roles); returns
    {"rows": n, "path": output file, ...}."""
    pipeline, names = load_config(config_uri)
    return predict.run(pipeline, names, run_id, int(batch_id), roles=stage_of(pipeline, stage).get("roles") or {})
