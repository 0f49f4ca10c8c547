"""Prediction: one batch of evaluation features in, one Parquet file of predictions out.

The output path is fixed per batch (`.../batch_id=N/part-00000.parquet`) and written atomically,
so a retried batch overwrites its file and never duplicates rows. A batch of up to READ_BATCH
rows (the common case: hundreds of batches of ~1,000 rows) is read, scored and written whole, so
its fixed cost stays small; a larger one is streamed in record batches (bounded memory at any
size). Both encode through the same `Encoder` training used.

confidence_score = 1 - (upper_bound - lower_bound) / reference_width, clipped to [0, 1], where
reference_width is the width of the central interval (at the spec's coverage) of the training
targets themselves. 0: the model narrows the range no more than knowing nothing about the
record would; 1: a point. Comparable across records of one model version.
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
from stepkit.ml import artifacts, conformal, models
from stepkit.ml.encoding import Encoder
from stepkit.ml.models import Fitted

PART = "part-00000.parquet"
READ_BATCH = 131_072


def output_schema(pipeline: Any) -> pa.Schema:
    id_type = pa.int64() if pipeline.source.id_type == "bigint" else pa.string()
    return pa.schema([
        ("id", id_type),
        (f"predicted_{pipeline.target.name}", pa.float64()),
        ("lower_bound", pa.float64()),
        ("upper_bound", pa.float64()),
        ("confidence_score", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("run_id", pa.string()),
    ])


class Scorer:
    """A loaded artifact, ready to score encoded record batches."""

    def __init__(self, loaded: artifacts.Loaded):
        a = loaded.artifact
        self.version = loaded.version
        self.name = a["name"]
        self.encoder = Encoder.from_dict(a["encoder"])
        self.fitted = Fitted(a["name"], a["kind"], a["model"], a["quantiles"])
        self.interval = a["interval"]
        self.lo, self.hi = a["target"]["min"], a["target"]["max"]
        self.reference_width = a["reference_width"]
        self.scale = None
        if self.interval["method"] == "normalised":
            self.scale = conformal.ScaleModel(np.asarray(self.interval["scale_coef"]), self.interval["scale_floor"])

    def score(self, batch: pa.RecordBatch | pa.Table, raw: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, lower, upper, confidence), all float64, clipped to the target's range."""
        raw = self.encoder.raw(batch) if raw is None else raw
        # order="K": keep the column-major layout (a plain copy() transposed it, element by element).
        filled = self.encoder.fill(raw.copy(order="K")) if self.fitted.needs_filled else None
        point, q3 = self.fitted.predict(raw, filled)
        q = self.interval["q"]
        if q3 is not None:
            lower, upper = q3[:, 0] - q, q3[:, 2] + q
        else:
            half = q * self.scale(self.encoder.missing_indicators(raw))
            lower, upper = point - half, point + half
        point = np.clip(point.astype(np.float64), self.lo, self.hi)
        lower = np.clip(lower.astype(np.float64), self.lo, self.hi)
        upper = np.clip(upper.astype(np.float64), self.lo, self.hi)
        # Clipping can cross a bound over the point at the range's edge: keep lower <= point <= upper.
        lower, upper = np.minimum(lower, point), np.maximum(upper, point)
        confidence = np.clip(1.0 - (upper - lower) / self.reference_width, 0.0, 1.0)
        return point, lower, upper, confidence


def scorer(models_location: str) -> Scorer:
    loaded = artifacts.load(models_location)
    cached = _SCORERS.get(loaded.version)
    if cached is None:
        _SCORERS.clear()
        cached = _SCORERS[loaded.version] = Scorer(loaded)
    return cached


_SCORERS: dict[str, Scorer] = {}


def batch_paths(names: Any, run_id: str, batch_id: int) -> tuple[str, str]:
    src = f"{names.table_location('evaluation_features', run_id)}batch_id={batch_id}/"
    out = f"{names.table_location('predictions', run_id)}batch_id={batch_id}/{PART}"
    return src, out


def run(pipeline: Any, names: Any, run_id: str, batch_id: int) -> dict[str, Any]:
    src, out = batch_paths(names, run_id, batch_id)
    s = scorer(names.models_location(run_id))
    schema = output_schema(pipeline)
    columns = ["id", *s.encoder.input_columns]
    # Athena writes no folder for a batch without rows: that is an empty batch, not an error.
    with storage.open_parquet(src, columns, missing_ok=True, dictionary=s.encoder.category_columns) as parts, \
            storage.parquet_writer(out, schema, dictionary=["model_name", "model_version", "run_id"],
                                   statistics=["id"], in_memory=parts.num_rows <= READ_BATCH) as writer:
        if parts.num_rows <= READ_BATCH:
            # The common case (~1,000 rows at 1M source rows): one read, one write, no thread
            # started. The fixed cost per batch is what a fan-out of hundreds of batches pays.
            data = parts.read()
            if parts.num_rows:
                writer.write_table(_scored(s, data, s.encoder.raw(data), schema, run_id))
        else:
            _stream(s, parts, writer, schema, run_id)
    return {"rows": parts.num_rows, "path": out, "model_name": s.name, "model_version": s.version}


def _scored(s: Scorer, data: pa.Table | pa.RecordBatch, raw: np.ndarray, schema: pa.Schema, run_id: str) -> pa.Table:
    point, lower, upper, confidence = s.score(data, raw)
    n = data.num_rows
    ids = data.column(0)
    if ids.type != schema.field("id").type:
        ids = ids.cast(schema.field("id").type)
    return pa.Table.from_arrays([
        ids, pa.array(point), pa.array(lower), pa.array(upper), pa.array(confidence),
        _repeat(s.name, n), _repeat(s.version, n), _repeat(run_id, n),
    ], schema=schema)


def _stream(s: Scorer, parts: storage.ParquetParts, writer: Any, schema: pa.Schema, run_id: str) -> None:
    """A large batch, record batch by record batch (memory bounded at any size): reading and
    encoding the next one, and writing the last one, overlap the model's work on this one."""
    # Arrow decodes a record batch's columns in parallel when the worker may use several cores.
    threaded = models.threads() > 1
    encoded = ((b, s.encoder.raw(b)) for b in parts.batches(READ_BATCH, threads=threaded) if b.num_rows)
    # closing(): on an error the reading thread stops here, before the files it reads are closed.
    with closing(_ahead(encoded)) as items, _Writes(writer) as writes:
        for batch, raw in items:
            writes.write(_scored(s, batch, raw, schema, run_id))


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
