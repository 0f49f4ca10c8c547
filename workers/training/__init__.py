"""The training task: every model of the spec, the interval calibration, the quality gate."""
from __future__ import annotations

import sys
from typing import Any


def run(config_uri: str, run_id: str) -> dict[str, Any]:
    """Train on the run's training tables; write model.joblib and metrics.json. Returns the metrics summary."""
    from stepkit.ml import train
    from workers import load_config

    pipeline, names = load_config(config_uri)
    return train.run(pipeline, names, run_id, log=lambda line: print(line, file=sys.stderr))
