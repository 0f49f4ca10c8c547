"""The JSON Schema of pipeline files, generated from the models (the models are the reference)."""
from __future__ import annotations

from typing import Any


def json_schema(model: type) -> dict[str, Any]:
    """`model`: a pipeline model with its stages (stepkit.compiler.load.pipeline_model())."""
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stepkit pipeline"
    return schema
