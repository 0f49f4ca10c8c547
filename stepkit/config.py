"""The resolved pipeline handed to workers (`--config URI`): the same file on S3 and locally.

`stepkit deploy` uploads it to `Names.config_uri`; `stepkit run --local` writes it into the
run's folder with `root` pointing at the local warehouse.
"""
from __future__ import annotations

import json
from typing import Any

from stepkit.ir.names import Names


def worker_config(pipeline: Any, root: str | None = None) -> dict[str, Any]:
    names = Names(pipeline, root)
    return {
        "stepkit_config": 1,
        "pipeline": pipeline.model_dump(mode="json", by_alias=True),
        "root": names.root,
    }


def render(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def parse(text: str) -> tuple[Any, Names]:
    """(pipeline, names) from a worker config's text."""
    from stepkit.spec.pipeline import WorkerPipeline

    data = json.loads(text)
    pipeline = WorkerPipeline.model_validate(data["pipeline"])
    return pipeline, Names(pipeline, data["root"])
