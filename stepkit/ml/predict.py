"""Prediction: one batch of evaluation features in, one Parquet file of every target's predictions out.

The output path is fixed per batch (`.../batch_id=N/part-00000.parquet`) and written atomically,
so a retried batch overwrites its file and never duplicates rows. A batch of up to READ_BATCH
rows (the common case: hundreds of batches of ~1,000 rows) is read, scored and written whole, so
its fixed cost stays small; a larger one is streamed in record batches (bounded memory at any
size). Both encode through the same `Encoder` training used.

Numeric targets: confidence_score = 1 - (upper_bound - lower_bound) / reference_width, clipped to
[0, 1], where reference_width is the width of the central interval (at the spec's coverage) of the
training targets themselves. 0: the model narrows the range no more than knowing nothing about the
record would; 1: a point. Comparable across records of one model version. Classes: the most
probable class and its probability, calibrated on held-out rows (stepkit/ml/calibration.py).

One task scores every target of the pipeline: the batch is read (and, when the targets' models
share an encoder, encoded once each way they read it) once, and one file holds every target's columns.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from stepkit import storage
from stepkit.errors import DataError
from stepkit.ml import artifacts, calibration, conformal, models
from stepkit.ml.encoding import Encoder
from stepkit.ml.models import Fitted
from stepkit.spec.columns import Columns

PART = "part-00000.parquet"
READ_BATCH = 131_072


# Athena DDL types of the predictions table (spec/columns.py) -> the Parquet (Arrow) types workers write.
_ARROW = {"double": pa.float64(), "string": pa.string(), "boolean": pa.bool_(),
          "map<string,double>": pa.map_(pa.string(), pa.float64())}
EVALUATION_FEATURES, PREDICTIONS = "evaluation_features", "predictions"  # the prediction worker's table roles


def output_schema(pipeline: Any) -> pa.Schema:
    id_type = pa.int64() if pipeline.source.id_type == "bigint" else pa.string()
    columns = Columns(pipeline.target_list).predictions(pipeline.source.id_type)
    return pa.schema([("id", id_type), *[(name, _ARROW[t]) for name, t in columns[1:]], ("run_id", pa.string())])


Encodings = dict[str, np.ndarray]  # encoding name ("onehot", "codes") -> that matrix of a batch
ENCODINGS = ("onehot", "codes")


class _Scoring:
    """What both scorers share: the artifact's encoder and model, and the matrices they read."""

    encoder: Encoder
    fitted: Fitted

    @property
    def needs(self) -> set[str]:
        """The encodings this model reads: its own, and one-hot when it fills missing values."""
        return {self.fitted.encoding} | ({"onehot"} if self.fitted.needs_filled else set())

    def inputs(self, batch: pa.RecordBatch | pa.Table, encoded: Encodings | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(the model's `raw`, `filled` or None), from `encoded` when given (shared across targets)."""
        encoded = encoded or {e: encode(self.encoder, batch, e) for e in self.needs}
        # order="K": keep the column-major layout (a plain copy() transposed it, element by element).
        filled = self.encoder.fill(encoded["onehot"].copy(order="K")) if self.fitted.needs_filled else None
        return encoded[self.fitted.encoding], filled


def encode(encoder: Encoder, batch: pa.RecordBatch | pa.Table, encoding: str) -> np.ndarray:
    return encoder.codes(batch) if encoding == "codes" else encoder.raw(batch)


def _fitted(a: dict[str, Any], quantiles: list[float] | None) -> Fitted:
    # An artifact from before category codes has no "encoding": its model reads one-hot.
    encoding = a.get("encoding", "onehot")
    if encoding not in ENCODINGS:
        raise DataError(f"model {a['name']!r}: unknown feature encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
    return Fitted(a["name"], a["kind"], a["model"], quantiles, encoding)


class Scorer(_Scoring):
    """A loaded regression artifact, ready to score encoded record batches."""

    def __init__(self, loaded: artifacts.Loaded):
        a = loaded.artifact
        self.version = loaded.version
        self.name = a["name"]
        self.encoder = Encoder.from_dict(a["encoder"])
        self.fitted = _fitted(a, a["quantiles"])
        self.interval = a["interval"]
        self.lo, self.hi = a["target"]["min"], a["target"]["max"]
        self.reference_width = a["reference_width"]
        self.scale = None
        if self.interval["method"] == "normalised":
            self.scale = conformal.ScaleModel(np.asarray(self.interval["scale_coef"]), self.interval["scale_floor"])

    def score(self, batch: pa.RecordBatch | pa.Table, encoded: Encodings | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, lower, upper, confidence), all float64, clipped to the target's range."""
        raw, filled = self.inputs(batch, encoded)
        point, q3 = self.fitted.predict(raw, filled)
        q = self.interval["q"]
        if q3 is not None:
            lower, upper = q3[:, 0] - q, q3[:, 2] + q
        else:
            half = q * self.scale(self.encoder.missing_indicators(raw, codes=self.fitted.encoding == "codes"))
            lower, upper = point - half, point + half
        point = np.clip(point.astype(np.float64), self.lo, self.hi)
        lower = np.clip(lower.astype(np.float64), self.lo, self.hi)
        upper = np.clip(upper.astype(np.float64), self.lo, self.hi)
        # Clipping can cross a bound over the point at the range's edge: keep lower <= point <= upper.
        lower, upper = np.minimum(lower, point), np.maximum(upper, point)
        confidence = np.clip(1.0 - (upper - lower) / self.reference_width, 0.0, 1.0)
        return point, lower, upper, confidence

    def columns(self, batch: pa.RecordBatch | pa.Table, encoded: Encodings | None, all_probabilities: bool
                ) -> list[pa.Array]:
        """The target's prediction columns, in spec/columns.py's order (model name and version after)."""
        return [pa.array(v) for v in self.score(batch, encoded)]


class ClassScorer(_Scoring):
    """A loaded classification artifact: the predicted class and its calibrated probability."""

    def __init__(self, loaded: artifacts.Loaded):
        a = loaded.artifact
        self.version = loaded.version
        self.name = a["name"]
        self.encoder = Encoder.from_dict(a["encoder"])
        self.fitted = _fitted(a, None)
        self.classes = list(a["classes"])
        self.calibration = a["calibration"]
        self.boolean = a["target"]["type"] == "boolean"

    def probabilities(self, batch: pa.RecordBatch | pa.Table, encoded: Encodings | None = None) -> np.ndarray:
        """Calibrated class probabilities, rows x classes (each row sums to 1)."""
        return calibration.apply(self.fitted.logits(*self.inputs(batch, encoded)), self.calibration)

    def columns(self, batch: pa.RecordBatch | pa.Table, encoded: Encodings | None, all_probabilities: bool
                ) -> list[pa.Array]:
        proba = self.probabilities(batch, encoded)
        best = proba.argmax(axis=1)
        predicted = pa.array(best.astype(bool)) if self.boolean else \
            pa.DictionaryArray.from_arrays(pa.array(best.astype(np.int32)), pa.array(self.classes)).cast(pa.string())
        out = [predicted, pa.array(proba[np.arange(len(best)), best])]
        if all_probabilities:
            n, k = proba.shape
            out.append(pa.MapArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)),
                                               pa.array(np.tile(self.classes, n)), pa.array(proba.ravel())))
        return out


def scorer(location: str, target: str) -> Scorer | ClassScorer:
    """The scorer of a target's model in a run's models folder (cached per model version)."""
    loaded = artifacts.load_target(location, target)
    cached = _SCORERS.get(loaded.version)
    if cached is None:
        if len(_SCORERS) > 8:
            _SCORERS.clear()
        cls = ClassScorer if loaded.artifact.get("task") == "classification" else Scorer
        cached = _SCORERS[loaded.version] = cls(loaded)
    return cached


_SCORERS: dict[str, Scorer | ClassScorer] = {}


def batch_paths(names: Any, run_id: str, batch_id: int, roles: dict[str, str] | None = None) -> tuple[str, str]:
    roles = roles or {}
    src = f"{names.table_location(roles.get(EVALUATION_FEATURES, EVALUATION_FEATURES), run_id)}batch_id={batch_id}/"
    out = f"{names.table_location(roles.get(PREDICTIONS, PREDICTIONS), run_id)}batch_id={batch_id}/{PART}"
    return src, out


class Scorers:
    """Every target's scorer, sharing one encoding of each batch when their encoders agree."""

    def __init__(self, pipeline: Any, names: Any, run_id: str):
        self.targets = pipeline.target_list
        self.scorers = [scorer(names.models_location(run_id), t.name) for t in self.targets]
        first = self.scorers[0].encoder
        self.encoder = first
        # The matrices depend on the features alone (medians only fill them, per model).
        self.shared = all(s.encoder.features == first.features for s in self.scorers[1:])
        self.needs = set().union(*(s.needs for s in self.scorers))
        self.input_columns = sorted({c for s in self.scorers for c in s.encoder.input_columns},
                                    key=[f for s in self.scorers for f in s.encoder.input_columns].index)
        self.category_columns = sorted({c for s in self.scorers for c in s.encoder.category_columns})

    def encode(self, batch: pa.RecordBatch | pa.Table) -> Encodings | None:
        """The batch in every encoding the targets' models read, once (None: each encodes its own)."""
        return {e: encode(self.encoder, batch, e) for e in sorted(self.needs)} if self.shared else None

    def columns(self, batch: pa.RecordBatch | pa.Table, encoded: Encodings | None) -> list[pa.Array]:
        n = batch.num_rows
        out: list[pa.Array] = []
        for t, s in zip(self.targets, self.scorers):
            out += s.columns(batch, encoded, t.probabilities == "all")
            out += [_repeat(s.name, n), _repeat(s.version, n)]
        return out


def run(pipeline: Any, names: Any, run_id: str, batch_id: int, roles: dict[str, str] | None = None) -> dict[str, Any]:
    src, out = batch_paths(names, run_id, batch_id, roles)
    s = Scorers(pipeline, names, run_id)
    schema = output_schema(pipeline)
    columns = ["id", *s.input_columns]
    dictionary = ["run_id", *[n for n, t in Columns(pipeline.target_list).predictions("string")
                              if n.startswith(("model_name", "model_version"))]]
    # Athena writes no folder for a batch without rows: that is an empty batch, not an error.
    with storage.open_parquet(src, columns, missing_ok=True, dictionary=s.category_columns) as parts, \
            storage.parquet_writer(out, schema, dictionary=dictionary,
                                   statistics=["id"], in_memory=parts.num_rows <= READ_BATCH) as writer:
        if parts.num_rows <= READ_BATCH:
            # The common case (~1,000 rows at 1M source rows): one read, one write, no thread
            # started. The fixed cost per batch is what a fan-out of hundreds of batches pays.
            data = parts.read()
            if parts.num_rows:
                writer.write_table(_scored(s, data, s.encode(data), schema, run_id))
        else:
            _stream(s, parts, writer, schema, run_id)
    first = s.scorers[0]
    return {"rows": parts.num_rows, "path": out, "model_name": first.name, "model_version": first.version,
            **({"models": {t.name: {"model_name": sc.name, "model_version": sc.version}
                           for t, sc in zip(s.targets, s.scorers)}} if len(s.scorers) > 1 else {})}


def _scored(s: Scorers, data: pa.Table | pa.RecordBatch, encoded: Encodings | None, schema: pa.Schema,
            run_id: str) -> pa.Table:
    n = data.num_rows
    ids = data.column(0)
    if ids.type != schema.field("id").type:
        ids = ids.cast(schema.field("id").type)
    return pa.Table.from_arrays([ids, *s.columns(data, encoded), _repeat(run_id, n)], schema=schema)


def _stream(s: Scorers, parts: storage.ParquetParts, writer: Any, schema: pa.Schema, run_id: str) -> None:
    """A large batch, record batch by record batch (memory bounded at any size): reading and
    encoding the next one, and writing the last one, overlap the model's work on this one."""
    # Arrow decodes a record batch's columns in parallel when the worker may use several cores.
    threaded = models.threads() > 1
    encoded = ((b, s.encode(b)) for b in parts.batches(READ_BATCH, threads=threaded) if b.num_rows)
    # closing(): on an error the reading thread stops here, before the files it reads are closed.
    with closing(_ahead(encoded)) as items, _Writes(writer) as writes:
        for batch, matrices in items:
            writes.write(_scored(s, batch, matrices, schema, run_id))


def _ahead(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Produce `items` in a background thread, `depth` ahead (Arrow and xgboost release the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            q.put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


class _Writes:
    """Table writes, in order, one in flight in a thread so it overlaps the next prediction."""

    def __init__(self, writer: Any):
        self.writer = writer
        self.pool = ThreadPoolExecutor(1)
        self.pending = None

    def write(self, table: pa.Table) -> None:
        if self.pending is not None:
            self.pending.result()
        # write_table (not write_batch): the one call local runs' fault injection intercepts.
        self.pending = self.pool.submit(self.writer.write_table, table)

    def __enter__(self) -> "_Writes":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.pending is not None and exc[0] is None:
                self.pending.result()
        finally:
            self.pool.shutdown(wait=True)


def _repeat(value: str, n: int) -> pa.Array:
    """`value` n times, as a slice of one cached array (zero copy): batch sizes differ batch to
    batch, so caching per (value, n) missed every time."""
    have = _REPEATS.get(value)
    if have is None or len(have) < n:
        if len(_REPEATS) > 8:
            _REPEATS.clear()
        # A one-entry dictionary decoded to string: no Python list of n strings.
        size = max(n, 8192)
        have = _REPEATS[value] = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(size, dtype=np.int32)), pa.array([value])).cast(pa.string())
    return have.slice(0, n)


_REPEATS: dict[str, pa.Array] = {}
