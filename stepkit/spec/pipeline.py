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
    Training,
    Retention,
)
from stepkit.spec.targets import Target
from stepkit.spec.columns import Columns
from stepkit.spec.names import PipelineName, ResourcePrefix

# Columns stepkit adds to its tables (and the staging query's own); features may not take these
# names, nor the per-target ones (predicted_<target>, known_<target>, spec/columns.py).
RESERVED_COLUMNS = {"id", "batch_id", "batch_group", "sample_bucket", "parse_ok", "run_id", "labelled",
                    "sample_hash", "batch_hash", "lower_bound", "upper_bound", "confidence_score", "abs_error",
                    "known_in_interval", "model_name", "model_version", "prediction_source", "probability",
                    "class_probabilities", "correct"}
# The sections only some stages need (a fan-out needs `batching`, stepkit's training needs
# `training`...): a pipeline without those stages (an Athena ETL) leaves them out.
OPTIONAL_SECTIONS = ("target", "features", "training", "sample", "batching")


class OnFailure(Model):
    """What runs when any stage fails, before the execution fails with the stage's error."""

    drop_tables: list[str] = Field(default_factory=list, description="Table keys to drop (catalog only).")
    delete_data: list[str] = Field(
        default_factory=list, description="Table keys to drop and whose data of the failed run to delete."
    )


class PipelineBase(Model):
    """One batch pipeline on Step Functions, Athena, Fargate and Lambda: an ML pipeline (targets,
    features, training, batches) or any other chain of stages (an Athena ETL needs none of those)."""

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
    target: Target | None = Field(None, description="The value to predict (or list several under `targets`). "
                                  "Needed by the stages that train, score or template a target.")
    targets: list[Target] | None = Field(
        None, min_length=1, description="Several values to predict from one scan of the source: staging parses "
        "each document once, training and prediction run for each target, the results hold one row per id "
        "with every target's prediction. Instead of `target`.")
    features: list[Feature] | None = Field(
        None, min_length=1, description="Model inputs (or any fields to extract), from each JSON document.")
    tables: Tables = Field(Tables(), description="Tables the pipeline creates: key -> Athena table name.")
    sample: Sample | None = Field(None, description="The training sample (needed by stepkit's training stages).")
    batching: Batching | None = Field(None, description="Prediction batches and their fan-out (needed by `fan_out`, "
                                      "`batch_ids` and tables partitioned by batch).")
    compute: Compute = Field(Compute(), description="Lambda and Fargate sizes.")
    training: Training | None = Field(None, description="Models, selection and quality gate (needed by stepkit's "
                                      "training).")
    schedule: Schedule = Field(Schedule(), description="Optional recurring start (disabled by default).")
    cost_alarm: CostAlarm | None = Field(None, description="Cost guard; omit for none.")
    retention: Retention = Field(Retention(), description="How long scratch files stay in the bucket (S3 lifecycle "
                                 "rules written by stepkit deploy).")
    alerts: Alerts = Field(Alerts(), description="Messages when a run fails (an SNS topic every pipeline gets; add "
                           "an email to receive them).")
    on_failure: OnFailure = Field(OnFailure(), description="Clean-up when a stage fails.")

    @property
    def target_list(self) -> list[Target]:
        """Every target, in order: `targets`, or the one `target`, or none."""
        return list(self.targets or ([self.target] if self.target else []))

    @property
    def feature_list(self) -> list[Feature]:
        return list(self.features or [])

    def has(self, section: str) -> bool:
        """Does the pipeline set this optional section (`target` counts `targets` too)?"""
        if section == "target":
            return bool(self.target_list)
        return getattr(self, section) is not None

    @field_validator("features")
    @classmethod
    def _feature_columns(cls, v: list[Feature] | None, info: ValidationInfo) -> list[Feature] | None:
        targets = [t for t in [info.data.get("target"), *(info.data.get("targets") or [])] if t is not None]
        reserved = RESERVED_COLUMNS | Columns(targets).reserved()
        clash = sorted({f.name for f in v or []} & reserved)
        if clash:
            raise ValueError(f"{', '.join(clash)}: reserved column name(s) stepkit adds to its tables")
        return v

    @field_validator("targets")
    @classmethod
    def _one_way(cls, v: list[Target] | None, info: ValidationInfo) -> list[Target] | None:
        if v is not None and info.data.get("target") is not None:
            raise ValueError("`target` and `targets` both set: list every target under `targets`")
        return v

    @model_validator(mode="after")
    def _columns(self) -> "PipelineBase":
        names = [f.name for f in self.feature_list]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique: {', '.join(dupes)}")
        targets = [t.name for t in self.target_list]
        dupes = sorted({n for n in targets if targets.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique: {', '.join(dupes)}")
        clash = sorted(set(targets) & (RESERVED_COLUMNS | Columns(self.target_list).reserved()))
        if clash:
            raise ValueError(f"{', '.join(clash)}: reserved column name(s) stepkit adds to its tables")
        for t in targets:
            if t in names:
                raise ValueError(f"the target {t!r} is also a feature")
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
