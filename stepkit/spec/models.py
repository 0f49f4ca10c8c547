"""The pipeline spec: what a user writes in `pipelines/*.yaml`.

Every model forbids unknown fields and describes every field: `stepkit schema` publishes
these descriptions as the JSON Schema that editors and CI read.
"""
from __future__ import annotations

import re
import sys
import typing
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from stepkit.spec import kinds as model_kinds
from stepkit.spec import fargate
from stepkit.spec.metrics import DEFAULT_SELECTION, METRICS
from stepkit.spec.names import (
    AthenaIdentifier,
    BucketName,
    ColumnName,
    Email,
    ImageUri,
    S3Location,
    S3Prefix,
    SourceName,
    SecurityGroupId,
    SubnetId,
    TaskName,
    WorkGroup,
)

_JSON_PATH = re.compile(r"\$(\.[A-Za-z_][A-Za-z0-9_]*|\[\d{1,9}\])+")


@lru_cache(maxsize=None)
def _takes_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(a) for a in typing.get_args(annotation) if not isinstance(a, (str, int, float)))


class YamlBoolean:
    """A YAML boolean given to a field that takes none: pydantic would read true as 1, and YAML
    reads yes/no/on/off as booleans, so `batches: yes` would silently be one batch. Stands in
    for the value so the field's own check refuses it, at its own place in the file."""

    def __init__(self, value: bool):
        self.value = value

    def __repr__(self) -> str:
        return f"{str(self.value).lower()}, a YAML boolean"


class Model(BaseModel):
    # defer_build: a model's validator is built on first use, not at import; most are only ever
    # used inside the Pipeline's, so `stepkit compile` skips building ~30 validators it never calls.
    # allow_inf_nan=False: `inf`/`nan` (from a variable) reach SQL and JSON, which have no such number.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(isinstance(v, bool) for v in data.values()):
            return data
        fields = {f.alias or name: f for name, f in cls.model_fields.items()} | cls.model_fields
        return {k: YamlBoolean(v) if isinstance(v, bool) and k in fields and not _takes_bool(fields[k].annotation)
                else v for k, v in data.items()}


class Network(Model):
    """Where Fargate tasks run (awsvpc networking)."""

    # ECS awsvpcConfiguration takes up to 16 subnets and 5 security groups.
    subnets: list[SubnetId] = Field(
        min_length=1, max_length=16, description="Subnet ids for the Fargate tasks (`subnet-...`, at most 16).")
    security_groups: list[SecurityGroupId] = Field(
        min_length=1, max_length=5, description="Security group ids for the Fargate tasks (`sg-...`, at most 5).")
    assign_public_ip: bool = Field(
        False, description="Give tasks a public IP (needed in a public subnet without a NAT gateway, to pull images)."
    )


class Aws(Model):
    """The AWS account and places the pipeline uses. Use `${VAR}` for anything account-specific."""

    account_id: str = Field(description="12-digit AWS account id, e.g. `${AWS_ACCOUNT_ID}`.",
                            json_schema_extra={"pattern": r"^\d{12}$|\$\{"})
    region: str = Field(description="AWS region, e.g. `${AWS_REGION}`.",
                        json_schema_extra={"pattern": r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$|\$\{"})
    bucket: BucketName = Field(description="S3 bucket holding every table, model and query result of the pipeline.")
    prefix: S3Prefix = Field(description="Key prefix under the bucket; stepkit reads and writes only below it.")
    database: AthenaIdentifier = Field(description="Glue/Athena database holding the pipeline's tables.")
    workgroup: WorkGroup = Field("primary", description="Athena workgroup the queries run in.")
    network: Network = Field(description="VPC networking for the Fargate tasks.")
    kms_key_arn: str | None = Field(
        None, pattern=r"^(\$\{.+\}|arn:aws[a-z-]*:kms:[a-z0-9-]+:(\d{12}|\$\{.+\}):key/.+)$",
        description="The customer-managed KMS key that encrypts the bucket (SSE-KMS), as a key ARN. The state "
        "machine and task roles then get kms:Decrypt and kms:GenerateDataKey on it, through S3 only. Not needed "
        "for SSE-S3 or the AWS-managed aws/s3 key; `stepkit doctor` says which the bucket uses.")

    @field_validator("account_id")
    @classmethod
    def _account(cls, v: str) -> str:
        if not re.fullmatch(r"\d{12}", v):
            raise ValueError(f"{v!r} is not a 12-digit AWS account id")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d", v):
            raise ValueError(f"{v!r} is not an AWS region name like 'us-east-1'")
        return v


class Source(Model):
    """The raw table: one row per record, an id column and a JSON document column."""

    database: SourceName | None = Field(None, description="Database of the source table (default: aws.database).")
    table: SourceName = Field(description="Source table name.")
    location: S3Location = Field(description="S3 location of the source data (`s3://bucket/path/`), granted read-only.")
    id_column: SourceName = Field(description="Column holding the record id (unique per record after de-duplication).")
    id_type: Literal["string", "bigint"] = Field("string", description="Athena type of the id column.")
    document_column: SourceName = Field(description="Column holding the JSON document.")
    rows: int | None = Field(None, gt=0, description="Approximate row count, used for cost and size estimates.")


def _category(v: str) -> str:
    # A category is a SQL string literal in a one-line query inside an intrinsic function: a line
    # break or backslash there is refused by Step Functions' linters, and `${run_id}` is the
    # placeholder every run replaces with its execution name.
    if not v or len(v) > 256:
        raise ValueError("a category has 1-256 characters")
    if "\n" in v or "\t" in v or "\\" in v or "${" in v:
        raise ValueError(f"{v!r}: a category may not hold a line break, tab, backslash or '${{'")
    return v


Category = Annotated[str, AfterValidator(_category), Field(min_length=1, max_length=256)]


def _check_json_path(v: str) -> str:
    if not _JSON_PATH.fullmatch(v):
        raise ValueError(f"{v!r} is not a simple JSON path like '$.profile.age' or '$.items[0]'")
    return v


class Feature(Model):
    """One model input, extracted from the JSON document."""

    name: ColumnName = Field(description="Column name of the feature.")
    json_path: str = Field(description="Where the value sits in the JSON document.")
    type: Literal["double", "integer", "boolean", "category"] = Field(
        description="`double`/`integer` are numeric, `boolean` is 0/1, `category` is one of `categories`."
    )
    min: float | None = Field(None, description="Numeric values below this are treated as missing.")
    max: float | None = Field(None, description="Numeric values above this are treated as missing.")
    categories: list[Category] | None = Field(
        None, description="Known values of a `category` feature (compared lower-cased); other values count as 'other'."
    )
    missing: Literal["median", "zero", "keep"] = Field(
        "median",
        description="How a missing value is filled for linear models: `median` of training rows, `zero`, or "
        "`keep` (NaN, tree models only; linear models then use the median).",
    )

    _path = field_validator("json_path")(_check_json_path)

    @model_validator(mode="after")
    def _shape(self) -> "Feature":
        if self.type == "category" and not self.categories:
            raise ValueError("a category feature needs `categories`")
        lowered = [c.lower() for c in self.categories or []]
        dupes = sorted({c for c in lowered if lowered.count(c) > 1})
        if dupes:
            raise ValueError(f"categories are compared lower-cased and must be distinct: {', '.join(map(repr, dupes))}")
        if "other" in lowered:
            raise ValueError("'other' is the category stepkit gives every value not listed: leave it out")
        if self.type != "category" and self.categories:
            raise ValueError("`categories` is only for type: category")
        if self.type in ("boolean", "category") and (self.min is not None or self.max is not None):
            raise ValueError("`min`/`max` are only for numeric features")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self


# `model` names the trained model in stages' `reads`/`writes`: no table may take that key.
ARTIFACTS = frozenset({"model"})


def _table_keys(v: dict[str, str]) -> dict[str, str]:
    clash = sorted(set(v) & ARTIFACTS)
    if clash:
        raise ValueError(f"{', '.join(clash)}: a key stages use for the trained model, not a table")
    names = list(v.values())
    dupes = sorted({t for t in names if names.count(t) > 1})
    if dupes:
        raise ValueError(f"table names must be distinct: {', '.join(dupes)}")
    return v


class Tables(RootModel[dict[AthenaIdentifier, AthenaIdentifier]]):
    """Athena tables the pipeline creates: key (what stages, templates and cleanups name) -> table name.
    Any keys: stepkit's ML stages name theirs by role (see a stage's `roles`), by default the key of
    the role's name (`staging`, `training_features`, `training_targets`, `evaluation_features`,
    `predictions`, `human_qa`, `final_results`)."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    root: Annotated[dict[AthenaIdentifier, AthenaIdentifier], AfterValidator(_table_keys)] = Field(
        default_factory=dict)

    def names(self) -> dict[str, str]:
        return dict(self.root)

    def __contains__(self, key: object) -> bool:
        return key in self.root

    def __getitem__(self, key: str) -> str:
        return self.root[key]

    def __iter__(self):  # type: ignore[override]
        return iter(self.root)

    def __len__(self) -> int:
        return len(self.root)


class Sample(Model):
    """The training sample, taken deterministically by a hash of the id."""

    # The sample is drawn by a hash into 10,000 buckets: 0.01% is the smallest share there is.
    percent: float = Field(ge=0.01, le=100, description="Share of labelled rows (known target) used for training, "
                           "in percent (0.01-100; drawn in steps of 0.01).")
    seed: int = Field(0, ge=0, description="Changes which rows fall in the sample; same seed, same rows.")
    holdout_percent: float = Field(
        20, gt=0, lt=100, description="Share of the sample held out for metrics and interval calibration."
    )


class Batching(Model):
    """How scoring is split and fanned out."""

    batches: int = Field(gt=0, description="Number of prediction batches (one Fargate task each).")
    # A Distributed Map runs at most 10,000 child executions at once.
    max_concurrency: int = Field(gt=0, le=10_000, description="Batches running at once (at most 10,000).")
    map_mode: Literal["auto", "inline", "distributed"] = Field(
        "auto",
        description="Step Functions Map mode. `auto` picks DISTRIBUTED when concurrency passes inline Map's "
        "40, or the fan-out would crowd the 25,000-event history.",
    )
    tolerated_failure_percentage: int = Field(
        0, ge=0, le=100, description="Share of batches that may fail without failing the run (Distributed Map)."
    )


class LambdaCompute(Model):
    """Size of the pipeline's Lambda function(s)."""

    memory_mb: int = Field(512, ge=128, le=10240, description="Lambda memory in MB.")
    timeout_seconds: int = Field(60, ge=1, le=900, description="Lambda timeout in seconds.")
    architecture: Literal["arm64", "x86_64"] = Field("arm64", description="Lambda CPU architecture.")


class TaskCompute(Model):
    """A Fargate task size and limits."""

    cpu: float = Field(description="vCPUs: 0.25, 0.5, 1, 2, 4, 8 or 16.")
    memory_gb: float = Field(description="Memory in GB; Fargate allows a range per vCPU size.")
    architecture: Literal["ARM64", "X86_64"] = Field("ARM64", description="CPU architecture of the task.")
    timeout_minutes: int = Field(gt=0, le=60 * 24 * 7, description="The state's TimeoutSeconds, in minutes.")
    ephemeral_storage_gb: int = Field(20, ge=20, le=200, description="Task disk in GiB (20-200).")
    image: ImageUri | None = Field(
        None, description="Container image; default: the stack's ECR repository for this task, tag `latest`."
    )
    module: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
        description="Python module of the task's own worker, for `image`: what the image runs "
        "(`python -m MODULE --config URI --run-id ID [--batch-id N]`), and what a local run runs in a process, "
        "calling its `run(config_uri, run_id[, batch_id])`. Default: stepkit's `stepkit.workers.<task>`.",
    )

    # Field validators, not one model validator, so an error points at the value that is wrong.
    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: float) -> float:
        problem = fargate.check_cpu(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("memory_gb")
    @classmethod
    def _memory(cls, v: float, info: ValidationInfo) -> float:
        cpu = info.data.get("cpu")  # absent when cpu itself was refused
        problem = fargate.check(cpu, v) if cpu is not None else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("module")
    @classmethod
    def _module(cls, v: str | None, info: ValidationInfo) -> str | None:
        # stepkit's own images run stepkit's own workers: a local run of another module would prove
        # code that AWS never runs.
        if v is not None and not info.data.get("image"):
            raise ValueError("a task's own `module` needs its own `image` (stepkit's images run stepkit.workers.<task>)")
        return v


class Compute(Model):
    """Sizes of the pipeline's compute."""

    lambda_: LambdaCompute = Field(LambdaCompute(), alias="lambda", description="The pipeline's Lambda function(s).")
    tasks: dict[TaskName, TaskCompute] = Field(
        default_factory=dict,
        description="Fargate task definitions by name (stages refer to them), e.g. `training`, `prediction`."
    )


class ModelSpec(Model):
    """A model to train. The best by `selection.metric` among them scores the records."""

    name: ColumnName = Field(description="Model name, unique in the pipeline.")
    kind: str = Field(
        description="Numeric targets: `ridge`, `xgboost` (squared error) or `xgboost_quantile` (lower/median/upper "
        "quantiles). Classes: `logistic` (multinomial logistic regression) or `xgboost_classifier`. Or a kind an "
        "installed package registers (entry-point group `stepkit.models`). Each target trains the models of its "
        "kind (numbers or classes).",
        json_schema_extra=lambda schema: schema.update(enum=model_kinds.names()),
    )
    params: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="Hyper-parameters passed to the estimator."
    )
    quantiles: list[float] | None = Field(
        None, description="For `xgboost_quantile`: lower, median and upper quantile, e.g. [0.1, 0.5, 0.9]."
    )
    category_splits: Literal["partition", "ordinal"] | None = Field(
        None, description="For kinds that read category codes (`xgboost`, `xgboost_quantile`, `xgboost_classifier`): "
        "how a tree splits on a category feature. `partition` (the default): a node sends any set of its categories "
        "each way (xgboost's categorical splits). `ordinal`: a node splits the code as a number, in the order "
        "`features[].categories` lists them ('other' last). On the demo at 10M rows, `ordinal` predicted 1.7x "
        "faster and fitted faster for a 0.5% higher MAE (benchmarks/model_quality.py): worth it for the model that "
        "scores every row, where the order means something or there are few categories."
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        # The registry's names, read when validating (not fixed at import), in pydantic's own words for a choice.
        if not model_kinds.known(v):
            names = [repr(n) for n in model_kinds.names()]
            expected = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        # Interned, as a Literal's value was: pickle writes an object met before as a reference, so
        # a fresh copy of the same text would change the artifact's bytes, hence the model version.
        return sys.intern(v)

    @model_validator(mode="after")
    def _quantiles(self) -> "ModelSpec":
        if self.kind == "xgboost_quantile":
            q = self.quantiles
            if not q or len(q) != 3 or not (0 < q[0] < q[1] < q[2] < 1):
                raise ValueError("`quantiles` needs three increasing values in (0, 1), like [0.1, 0.5, 0.9]")
        elif self.quantiles is not None:
            raise ValueError("`quantiles` is only for kind: xgboost_quantile")
        # A package's kind says whether it reads codes in its class, which the spec does not import:
        # the compiler refuses the setting there (stepkit/compiler/targets.py).
        if self.category_splits is not None and self.kind in model_kinds.KINDS and self.kind not in model_kinds.CODES:
            raise ValueError(f"`category_splits` is only for kinds that split on category codes "
                             f"({', '.join(model_kinds.CODES)}), not {self.kind}")
        return self


class QualityGate(Model):
    """Training fails, before any prediction, when a target's chosen model misses these on held-out rows.
    Each applies to the targets that have its metric (the regression ones, or the classification ones)."""

    max_mae: float | None = Field(None, gt=0, description="Largest acceptable mean absolute error.")
    max_rmse: float | None = Field(None, gt=0, description="Largest acceptable root mean squared error.")
    min_r2: float | None = Field(None, le=1, description="Smallest acceptable R².")
    min_accuracy: float | None = Field(None, ge=0, le=1, description="Smallest acceptable accuracy.")
    min_balanced_accuracy: float | None = Field(
        None, ge=0, le=1, description="Smallest acceptable balanced accuracy (the mean of per-class recall).")
    min_macro_f1: float | None = Field(None, ge=0, le=1, description="Smallest acceptable macro-averaged F1.")
    max_log_loss: float | None = Field(None, gt=0, description="Largest acceptable log loss (natural log).")
    min_roc_auc: float | None = Field(
        None, ge=0, le=1, description="Smallest acceptable ROC AUC (one-vs-rest, macro-averaged, for multiclass).")
    max_ece: float | None = Field(
        None, gt=0, le=1, description="Largest acceptable expected calibration error (15 equal-width bins of the "
        "predicted class's probability).")

    def checks(self) -> list[tuple[str, str, float]]:
        """(metric, bound: "max" or "min", threshold) of every bound set."""
        out = []
        for field, value in self:
            if value is not None:
                bound, _, metric = field.partition("_")
                out.append((metric, bound, value))
        return out


class Interval(Model):
    """The prediction interval reported with each prediction."""

    coverage: float = Field(0.8, gt=0, lt=1, description="Target share of true values inside [lower, upper].")
    calibration: Literal["conformal", "none"] = Field(
        "conformal", description="`conformal` widens/narrows the quantile interval on held-out rows to hit `coverage`."
    )


class Training(Model):
    """Models, how one is chosen, and the quality gate."""

    models: list[ModelSpec] = Field(min_length=1, description="Models to train and compare.")
    selection_metric: Literal["mae", "rmse", "r2", "accuracy", "balanced_accuracy", "macro_f1", "log_loss",
                              "roc_auc", "ece"] | None = Field(
        None, description="Metric that picks each target's model, on calibration rows. It applies to the targets "
        "that have it; the others use their default: `mae` for numeric targets, `log_loss` for classes.")
    interval: Interval = Field(Interval(), description="Prediction interval settings (numeric targets).")
    quality_gate: QualityGate = Field(QualityGate(), description="Minimum quality to go on to prediction.")

    @model_validator(mode="after")
    def _unique(self) -> "Training":
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique: {', '.join(dupes)}")
        return self

    def metric_for(self, task: str) -> str:
        """The metric that picks a model for a target of `task` (regression or classification)."""
        chosen = self.selection_metric
        return chosen if chosen in METRICS[task] else DEFAULT_SELECTION[task]


class Schedule(Model):
    """An EventBridge schedule that starts the pipeline."""

    enabled: bool = Field(False, description="Whether the schedule fires (the rule is created either way).")
    expression: str = Field(
        "cron(0 6 ? * MON *)", max_length=256, description="EventBridge `cron(...)` or `rate(...)` expression (UTC)."
    )

    @field_validator("expression")
    @classmethod
    def _expr(cls, v: str) -> str:
        m = re.fullmatch(r"cron\((.+)\)|rate\((\d+) (minute|minutes|hour|hours|day|days)\)", v)
        if not m:
            raise ValueError(f"{v!r} is not an EventBridge schedule: cron(m h dom mon dow yr) or rate(N unit)")
        if m.group(1) is not None and len(m.group(1).split()) != 6:
            raise ValueError("an EventBridge cron has six fields: minutes hours day-of-month month day-of-week year")
        if m.group(1) is not None:
            f = m.group(1).split()
            if f[2] != "?" and f[4] != "?":
                raise ValueError("EventBridge cron needs '?' in day-of-month or day-of-week")
        if m.group(2) is not None:
            # EventBridge: a positive value; the unit singular for 1 (rate(1 hour)), plural past it.
            n, unit = int(m.group(2)), m.group(3)
            if n < 1 or (n == 1) != (not unit.endswith("s")):
                raise ValueError(f"{v!r}: EventBridge takes rate(1 {unit.rstrip('s')}) or rate(N {unit.rstrip('s')}s) "
                                 "with N above 1")
        return v


class Retention(Model):
    """How long scratch files stay in the bucket: S3 lifecycle rules `stepkit deploy` writes (merged with the
    bucket's other rules, which it never drops). Days count from each file's creation."""

    athena_results_days: int = Field(7, ge=1, description="Athena's query results and metadata (athena-results/).")
    map_results_days: int = Field(14, ge=1, description="The Distributed Map's result files (map-results/).")
    failed_run_days: int = Field(
        15, ge=15,
        description="Files of the tables a cleanup stage deletes (a successful run's go at its end; these rules take "
        "what failed runs leave). At least 15: a failed run can be redriven for 14 days after it failed, and its "
        "files are older than the failure.")
    runs_days: int | None = Field(
        None, ge=15,
        description="runs/: every run's models, metrics and the files its tasks write (a re-score with "
        "`existing_model` reads its model from here, `latest` included). Unset: kept; a number expires them "
        "that many days after they were written (at least 15, as failed_run_days).")


class Alerts(Model):
    """A message on an SNS topic when a run fails, times out or is stopped (and, if asked, when one succeeds):
    the pipeline, the run, the stage that failed, its error and cause, and the command to redrive it."""

    email: str | None = Field(
        None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Subscribe this address to the topic (AWS mails a confirmation link first). Without it, "
        "subscribe to the stack output RunAlertTopicArn yourself.")
    on_success: bool = Field(False, description="Also send a message when a run succeeds.")


class CostAlarm(Model):
    """A monthly cost guard for the account."""

    threshold_usd: float = Field(gt=0, le=1e9, description="Alert when estimated monthly cost passes this, in USD.")
    email: Email | None = Field(None, description="Where the alert goes (optional).")
    # BytesScannedCutoffPerQuery is a 64-bit count of bytes.
    athena_bytes_scanned_cutoff_gb: int = Field(
        3000, ge=1, le=9_000_000_000,
        description="Athena workgroup cutoff per query, in GB scanned (a query past it is cancelled)."
    )
