"""The top-level `Pipeline` model: everything in one pipeline YAML file."""
from __future__ import annotations

from typing import Annotated, Any, Mapping, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from stepkit.spec.models import (
    Alerts,
    Aws,
    Batching,
    Compute,
    CostAlarm,
    Feature,
    Model,
    Sample,
    Schedule,
    Source,
    Tables,
    Target,
    Training,
    Retention,
)
from stepkit.spec.names import PipelineName, ResourcePrefix

# Columns stepkit adds to its tables (and the staging query's own); features may not take these
# names, nor predicted_<target> / known_<target>, which the result tables add beside them.
RESERVED_COLUMNS = {"id", "batch_id", "batch_group", "sample_bucket", "parse_ok", "run_id", "labelled",
                    "sample_hash", "batch_hash", "lower_bound", "upper_bound", "confidence_score", "abs_error",
                    "known_in_interval", "model_name", "model_version", "prediction_source"}


class OnFailure(Model):
    """What runs when any stage fails, before the execution fails with the stage's error."""

    drop_tables: list[str] = Field(default_factory=list, description="Table keys to drop (catalog only).")
    delete_data: list[str] = Field(
        default_factory=list, description="Table keys to drop and whose data of the failed run to delete."
    )


class PipelineBase(Model):
    """One batch ML pipeline on Step Functions, Athena and Fargate."""

    name: PipelineName = Field(description="Pipeline name, shown in tags and reports (letters, digits, spaces and "
                                  "_ . : / = + - @; at most 128 characters).")
    description: str = Field("", max_length=1024, description="What the pipeline does.")
    resource_prefix: ResourcePrefix = Field(description="Prefix of every AWS resource name (roles, functions, cluster...).")
    state_machine_name: str | None = Field(
        None, max_length=80, pattern=r"^[A-Za-z0-9_-]+$", description="State machine name (default: PREFIX-pipeline)."
    )
    templates: str | None = Field(None, description="Extra SQL template folder, relative to this file.")
    aws: Aws = Field(description="Account, region and places.")
    source: Source = Field(description="The raw JSON source table.")
    target: Target = Field(description="The value to predict.")
    features: list[Feature] = Field(min_length=1, description="Model inputs, extracted from each JSON document.")
    tables: Tables = Field(description="Names of the tables the pipeline creates.")
    sample: Sample = Field(description="The training sample.")
    batching: Batching = Field(description="Prediction batches and their fan-out.")
    compute: Compute = Field(description="Lambda and Fargate sizes.")
    training: Training = Field(description="Models, selection and quality gate.")
    schedule: Schedule = Field(Schedule(), description="Optional recurring start (disabled by default).")
    cost_alarm: CostAlarm | None = Field(None, description="Cost guard; omit for none.")
    retention: Retention = Field(Retention(), description="How long scratch files stay in the bucket (S3 lifecycle "
                                 "rules written by stepkit deploy).")
    alerts: Alerts = Field(Alerts(), description="Messages when a run fails (an SNS topic every pipeline gets; add "
                           "an email to receive them).")
    on_failure: OnFailure = Field(OnFailure(), description="Clean-up when a stage fails.")

    @field_validator("features")
    @classmethod
    def _feature_columns(cls, v: list[Feature], info: ValidationInfo) -> list[Feature]:
        target = info.data.get("target")  # absent when the target itself was refused
        reserved = RESERVED_COLUMNS | ({f"predicted_{target.name}", f"known_{target.name}"} if target else set())
        clash = sorted({f.name for f in v} & reserved)
        if clash:
            raise ValueError(f"{', '.join(clash)}: reserved column name(s) stepkit adds to its tables")
        return v

    @model_validator(mode="after")
    def _columns(self) -> "PipelineBase":
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique: {', '.join(dupes)}")
        target = self.target.name
        clash = sorted({target} & RESERVED_COLUMNS)
        if clash:
            raise ValueError(f"{', '.join(clash)}: reserved column name(s) stepkit adds to its tables")
        if self.target.name in names:
            raise ValueError(f"the target {self.target.name!r} is also a feature")
        tables = list(self.tables.names().values())
        dupes = sorted({t for t in tables if tables.count(t) > 1})
        if dupes:
            raise ValueError(f"table names must be distinct: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _stages(self) -> "PipelineBase":
        stages = getattr(self, "stages", [])
        names = [s["name"] if isinstance(s, dict) else s.name for s in stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique: {', '.join(dupes)}")
        return self


_MODELS: dict[tuple[tuple[str, type], ...], type[PipelineBase]] = {}


def pipeline_model(blocks: Mapping[str, type[Model]]) -> type[PipelineBase]:
    """The Pipeline model with a `stages` union over `blocks` (type name -> block model).

    The spec knows no block: the caller hands them in (stepkit.compiler.load binds the registry)."""
    key = tuple(blocks.items())
    if key not in _MODELS:
        from pydantic import create_model

        from stepkit.spec import loader

        loader._UNION_TAGS.update(blocks)
        union: Any = Union[tuple(blocks.values())] if len(blocks) > 1 else next(iter(blocks.values()))
        stage = Annotated[union, Field(discriminator="type")]
        _MODELS[key] = create_model(
            "Pipeline",
            __base__=PipelineBase,
            __doc__=PipelineBase.__doc__,
            stages=(list[stage], Field(min_length=1, description="The stages, in order. Each names its building block in `type`.")),
        )
    return _MODELS[key]


class WorkerPipeline(PipelineBase):
    """The pipeline as a worker reads it from its config: every section, stages left as written
    (a worker runs one task and reads no stage; validating them would import every block)."""

    stages: list[dict[str, Any]] = Field(min_length=1, description="The stages, as written.")


Pipeline = PipelineBase  # for type hints; instances come from pipeline_model()
