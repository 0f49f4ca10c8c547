"""Pipeline files read with every registered building block: the spec's models bound to the
block registry (the spec itself imports no block)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from stepkit.spec import loader, schema
from stepkit.spec.pipeline import PipelineBase
from stepkit.spec.pipeline import pipeline_model as _bind
from stepkit.steps import registry


def pipeline_model() -> type[PipelineBase]:
    return _bind(registry())


def load_pipeline(path: str | Path, variables: Mapping[str, str] | None = None) -> tuple[Any, loader.Positions]:
    """Read and validate a pipeline file. Returns (pipeline, positions); raises SpecError."""
    return loader.load_pipeline(path, variables, pipeline_model())


def json_schema() -> dict[str, Any]:
    return schema.json_schema(pipeline_model())
