"""The prediction task: one batch of evaluation features in, one predictions file out."""
from __future__ import annotations

from typing import Any


def run(config_uri: str, run_id: str, batch_id: int) -> dict[str, Any]:
    """Score batch `batch_id`; returns {"rows": n, "path": output file, ...}."""
    from stepkit.ml import predict
    from workers import load_config

    pipeline, names = load_config(config_uri)
    return predict.run(pipeline, names, run_id, int(batch_id))
