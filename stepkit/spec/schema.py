"""The JSON Schema of pipeline files, generated from the models (the models are the reference)."""
from __future__ import annotations

from typing import Any


def json_schema() -> dict[str, Any]:
    from stepkit.spec.pipeline import pipeline_model

    schema = pipeline_model().model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stepkit pipeline"
    return schema
