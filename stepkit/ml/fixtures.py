"""Feature tables from source documents without Athena, for the ML tests and benchmarks.

A plain-Python reading of what templates/sql/staging.sql.j2 and the training/evaluation
templates make of a source (json_extract_scalar + try_cast + range/category cleaning, duplicates
dropped, malformed JSON skipped), written where the workers look for their input. The pipeline's
own SQL runs in the local engine; this exists so the ML parts can be tested and measured alone.
Buckets use blake2b instead of Athena's xxhash64: any stable hash of the id serves the split.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pyarrow as pa

from stepkit import storage

_ARROW = {"double": pa.float64(), "integer": pa.int32(), "boolean": pa.bool_(), "category": pa.string()}


def _scalar(doc: Any, path: list[str]) -> str | None:
    """json_extract_scalar: the scalar's text; None when absent, null, an object or an array."""
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    if doc is None or isinstance(doc, (dict, list)):
        return None
    if isinstance(doc, bool):
        return "true" if doc else "false"
    return str(doc)


def _typed(text: str | None, f: Any, target: bool = False) -> Any:
    if text is None:
        return None
    if f.type == "category":
        v = text.lower()
        # An unknown value: 'other' for a feature, unknown (NULL) for a target, as the SQL makes them.
        return v if v in [c.lower() for c in f.categories] else (None if target else "other")
    if f.type == "boolean":
        return {"true": True, "false": False}.get(text.lower())
    try:
        v = float(text)
        if f.type == "integer":
            if not v.is_integer() or "." in text or "e" in text.lower():
                return None  # Trino's try_cast('4.7' AS integer) is NULL
            v = int(v)
    except ValueError:
        return None
    if (f.min is not None and v < f.min) or (f.max is not None and v > f.max):
        return None
    return v


def bucket(key: str, salt: str, mod: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}{salt}".encode(), digest_size=8).digest(), "big") % mod


def staging(pipeline: Any, source: pa.Table, sample_only: bool = False) -> pa.Table:
    """One row per distinct id with parseable JSON: id, features, target, sample_bucket, batch_id.
    `sample_only`: only rows in the training sample's buckets (parses a tenth of a 10% sample)."""
    s = pipeline.source
    best: dict[Any, str] = {}
    for i, d in zip(source.column(s.id_column).to_pylist(), source.column(s.document_column).to_pylist()):
        if i is not None and (i not in best or d < best[i]):
            best[i] = d  # min(doc) per id, as the SQL
    fields = [*pipeline.feature_list, *pipeline.target_list]
    targets = {t.name for t in pipeline.target_list}
    cols: dict[str, list] = {"id": [], **{f.name: [] for f in fields}, "sample_bucket": [], "batch_id": []}
    paths = {f.name: f.json_path[2:].split(".") for f in fields}
    limit = pipeline.sample.percent * 100 if sample_only else 10_000
    for i in sorted(best):
        sample_bucket = bucket(str(i), f"sample:{pipeline.sample.seed}", 10_000)
        if sample_bucket >= limit:
            continue
        try:
            doc = json.loads(best[i])
        except ValueError:
            continue
        cols["id"].append(i)
        for f in fields:
            cols[f.name].append(_typed(_scalar(doc, paths[f.name]), f, f.name in targets))
        cols["sample_bucket"].append(sample_bucket)
        cols["batch_id"].append(bucket(str(i), "batch", pipeline.batching.batches))
    types = {f.name: _ARROW[f.type] for f in fields}
    id_type = pa.int64() if s.id_type == "bigint" else pa.string()
    return pa.table({k: pa.array(v, type=types.get(k, id_type if k == "id" else pa.int32())) for k, v in cols.items()})


def roles(pipeline: Any) -> dict[str, str]:
    """role -> table key of the tables stepkit's stages write: the key its template's stage writes (a
    pipeline with keys of its own), else the key of the role's name."""
    templates = {"training_features.sql.j2": "training_features", "training_targets.sql.j2": "training_targets",
                 "evaluation_features.sql.j2": "evaluation_features", "predictions_table.sql.j2": "predictions"}
    out = {role: role for role in templates.values()}
    for s in pipeline.stages:
        s = s if isinstance(s, dict) else s.model_dump()
        if s.get("template") in templates and s.get("table"):
            out[templates[s["template"]]] = s["table"]
    return out


def write_tables(pipeline: Any, names: Any, run_id: str, source: pa.Table, files: int = 2,
                 training_only: bool = False) -> dict[str, int]:
    """Training features/targets and (unless training_only) evaluation features, one folder per batch,
    under the keys the pipeline's stages give them (`roles`)."""
    keys = roles(pipeline)
    st = staging(pipeline, source, sample_only=training_only)
    targets = [t.name for t in pipeline.target_list]
    feats = [f.name for f in pipeline.feature_list]
    known = np.zeros(st.num_rows, dtype=bool)
    for name in targets:
        known |= st.column(name).is_valid().to_numpy(zero_copy_only=False)
    labelled = st.filter(pa.array(known))
    train = labelled.filter(pa.array(labelled.column("sample_bucket").to_numpy() < pipeline.sample.percent * 100))
    # Several files per table, as Athena writes them: readers must take the whole folder.
    for key, table in ((keys["training_features"], train.select(["id", *feats, "sample_bucket"])),
                       (keys["training_targets"], train.select(["id", *targets]))):
        step = -(-table.num_rows // files)
        for k in range(files):
            storage.write_table(f"{names.table_location(key, run_id)}part-{k:05d}.parquet", table.slice(k * step, step))
    batch_ids = st.column("batch_id").to_numpy()
    for b in [] if training_only else np.unique(batch_ids):
        part = st.filter(pa.array(batch_ids == b)).select(["id", *feats])
        storage.write_table(f"{names.table_location(keys['evaluation_features'], run_id)}batch_id={b}/data.parquet", part)
    return {"staging": st.num_rows, "training": train.num_rows, "batches": int(np.unique(batch_ids).size)}


def warehouse(pipeline: Any, root: str, run_id: str, rows: int, seed: int = 0, files: int = 2,
              training_only: bool = False) -> tuple[Any, str, dict]:
    """Demo source -> feature tables -> worker config under `root` (a local folder or s3:// prefix
    ending in '/'). Returns (names, config URI, demo meta)."""
    from stepkit import config, demo_data
    from stepkit.ir.names import Names

    names = Names(pipeline, root)
    source_uri = f"{root}demo/source.parquet"
    meta = demo_data.write(source_uri, pipeline, rows=rows, seed=seed)
    write_tables(pipeline, names, run_id, storage.read_table(source_uri), files=files, training_only=training_only)
    config_uri = f"{root}stepkit/pipeline.json"
    storage.write_bytes(config_uri, config.render(config.worker_config(pipeline, root)).encode())
    return names, config_uri, meta


def variant(pipeline: Any, **changes: Any) -> Any:
    """A validated copy of `pipeline` with top-level sections replaced or updated (dicts merge)."""
    from stepkit.spec.pipeline import WorkerPipeline

    data = pipeline.model_dump(mode="json", by_alias=True)
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return WorkerPipeline.model_validate(data)
