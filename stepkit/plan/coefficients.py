"""The plan's coefficients: how fast things go and how big they are, each with what it rests on.

Prices are facts from AWS (prices.py); these are estimates. Each says where its figure comes
from, so `stepkit cost RUN` (which measures the same quantities on a real run) can correct it:
`stepkit plan --set NAME=VALUE` overrides any of them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from stepkit.errors import StepkitError


@dataclass(frozen=True)
class Coef:
    value: float
    unit: str
    source: str


def _c(value: float, unit: str, source: str) -> Coef:
    return Coef(value, unit, source)


@dataclass(frozen=True)
class Coefficients:
    # --- data sizes
    json_bytes_per_row: Coef = _c(
        2000, "bytes", "assumption: the seed's table says ~2.25 TB scanned by 'staging + features' over 378M "
        "rows; read as three passes over the raw JSON that is ~2 KB a record. Pass --source-bytes for the real size")
    labelled_share: Coef = _c(
        0.37, "share of rows", "seed: 14M training rows are a 10% sample of the labelled rows of 378M, so "
        "~140M (37%) carry the target")
    id_bytes: Coef = _c(24, "bytes a row", "assumption: a string id of ~24 bytes, barely compressible")
    # Parquet (Snappy) bytes per value, by type: upper estimates (plain widths; dictionary and
    # run-length encoding make low-cardinality columns smaller).
    double_bytes: Coef = _c(8, "bytes a value", "Parquet plain width of a double")
    integer_bytes: Coef = _c(4, "bytes a value", "Parquet plain width of an int32")
    boolean_bytes: Coef = _c(1, "bytes a value", "assumption: bit-packed booleans plus definition levels")
    category_bytes: Coef = _c(2, "bytes a value", "assumption: dictionary-encoded strings of a few values")

    # --- Athena
    athena_query_overhead_s: Coef = _c(
        3, "s a statement", "assumption: queueing, planning and the CTAS commit; the seed's TrainingFeatures "
        "CTAS (14M rows) took under 1 s, its StagingFeatures 11 s")
    athena_json_gb_per_s: Coef = _c(
        2.0, "GB/s a query", "assumption: raw JSON scan, parse and de-duplication (GROUP BY id) in one query; "
        "unmeasured on AWS here. `stepkit cost` prints the measured figure (bytes scanned / engine time)")
    athena_parquet_gb_per_s: Coef = _c(5.0, "GB/s a query", "assumption: columnar reads; unmeasured on AWS here")
    athena_write_gb_per_s: Coef = _c(1.0, "GB/s a query", "assumption: Parquet written by a CTAS or INSERT")
    athena_split_mb: Coef = _c(8, "MB a GET", "assumption: Athena reads S3 in ranged GETs of a few MB")
    athena_file_mb: Coef = _c(128, "MB a file", "assumption: Athena writes files of up to ~128 MB per writer")

    # --- Fargate
    fargate_provisioning_s: Coef = _c(
        30, "s a task", "assumption: RunTask to image pull (capacity, ENI attachment); not billed. The seed "
        "expected 2-3 min for its first 16-vCPU task. `stepkit cost` measures it (createdAt to pullStartedAt)")
    fargate_pull_s: Coef = _c(
        30, "s a task", "assumption: pulling a ~600 MB worker image from ECR in the region; billed "
        "(Fargate bills from the start of the image pull). `stepkit cost` measures it")
    worker_start_s: Coef = _c(
        3, "s a task", "measured in part: importing the prediction worker takes 1.1 s with its bytecode "
        "(commit 818aa24); plus reading the model and config from S3")
    task_io_mb_per_s: Coef = _c(90, "MB/s a task", "assumption: S3 reads and writes of one small task")
    prediction_rows_per_s_per_vcpu: Coef = _c(
        470_000, "rows/s a vCPU", "seed scale: a 420K-row batch predicts in 0.167 s on 4 threads (2.5M rows/s, "
        "16-core machine), times 0.75, the worker's speed against bare inplace_predict "
        "(benchmarks/predict_throughput.py: 0.72-0.81). --from-run measures the whole worker instead")
    training_rows_per_s_per_vcpu: Coef = _c(
        2_600, "training rows/s a vCPU", "measured: `stepkit run --local` at 10M demo rows, Training 78 s for "
        "~400K training rows on 2 cores (README benchmarks); includes loading, 3 models and calibration. "
        "--from-run measures your own")
    prediction_base_gb: Coef = _c(1.0, "GB a task", "assumption: Python, pyarrow, xgboost and the models")
    prediction_row_kb: Coef = _c(
        1.0, "KB a row in memory", "assumption, generous: features as float64 and float32 plus the output, "
        "for at most 131,072 rows at once (the worker streams larger batches)")
    training_base_gb: Coef = _c(1.5, "GB", "assumption: Python, pyarrow, xgboost")
    training_bytes_per_value: Coef = _c(
        36, "bytes a feature value", "assumption: float64 raw + float32 copy + QuantileDMatrix bins, 1.5x headroom")

    # --- the rest
    lambda_seconds: Coef = _c(5, "s an invocation", "assumption: the cleanup Lambda drops tables and deletes "
                              "prefixes; the seed's PreCleanup took 2 s")
    map_start_s: Coef = _c(10, "s a Distributed Map", "assumption: the Map Run starts its first children")
    fargate_launch_burst: Coef = _c(100, "tasks", "AWS docs (Fargate throttling): launch bucket of 100 tasks")
    fargate_launch_per_s: Coef = _c(20, "tasks/s", "AWS docs (Fargate throttling): refill of 20 tasks a second")
    retry_share: Coef = _c(0.01, "retries a task", "assumption: 1% of AWS task states retried once (throttling)")
    log_bytes_per_transition: Coef = _c(
        1000, "bytes", "assumption: the state machine logs every history event (Level ALL), ~2 events of "
        "~500 bytes a transition")
    log_bytes_per_task: Coef = _c(4000, "bytes", "assumption: a worker's log lines")
    log_bytes_per_lambda: Coef = _c(1000, "bytes", "assumption: START, END, REPORT and a few lines")

    def names(self) -> list[str]:
        return [f.name for f in fields(self)]

    def v(self, name: str) -> float:
        return getattr(self, name).value

    def with_values(self, values: dict[str, float], source: str) -> "Coefficients":
        unknown = sorted(set(values) - set(self.names()))
        if unknown:
            raise StepkitError(f"--set {unknown[0]}: not a coefficient (one of {', '.join(self.names())})")
        return replace(self, **{k: Coef(v, getattr(self, k).unit, source) for k, v in values.items()})


DEFAULT = Coefficients()


def parse_sets(pairs: tuple[str, ...]) -> dict[str, float]:
    """--set NAME=VALUE pairs."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise StepkitError(f"--set {pair!r}: expected NAME=NUMBER") from None
        if not sep:
            raise StepkitError(f"--set {pair!r}: expected NAME=NUMBER")
    return out
