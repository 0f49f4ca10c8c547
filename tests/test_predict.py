"""stepkit.ml.predict on a small trained warehouse: the small-batch path (one read, one write) and
the streamed path (record batches, threads) write the same rows; batch folder layouts; the write
hook local runs' fault injection uses."""
from __future__ import annotations

import math
import shutil
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stepkit.workers.training
from stepkit import storage
from stepkit.ml import fixtures, predict
from tests.test_ml_train import RUN, small


@pytest.fixture(scope="module", params=["ridge", "xgboost_quantile"])
def trained(request, tmp_path_factory):
    """A warehouse of 3 batches (~700 rows each) and one model of the given kind, trained."""
    p = small()
    spec = next(m for m in p.training.models if m.kind == request.param)
    p = fixtures.variant(p, batching={"batches": 3},
                         training={"models": [spec.model_dump(mode="json")], "quality_gate": {}})
    names, config_uri, _ = fixtures.warehouse(p, f"{tmp_path_factory.mktemp('wh')}/", RUN, rows=2500, seed=9)
    stepkit.workers.training.run(config_uri, RUN)
    return p, names


def _run(trained, batch_id: int) -> tuple[dict, pa.Table]:
    p, names = trained
    out = predict.run(p, names, RUN, batch_id)
    return out, pq.read_table(out["path"])


def test_streamed_batches_write_the_same_rows_as_a_whole_read(trained, monkeypatch):
    whole_out, whole = _run(trained, 1)
    assert pq.ParquetFile(whole_out["path"]).metadata.num_row_groups == 1
    monkeypatch.setattr(predict, "READ_BATCH", 64)  # every batch is "large" now: streamed, threaded
    streamed_out, streamed = _run(trained, 1)
    assert streamed_out == whole_out and streamed_out["rows"] > 64 * 3
    assert pq.ParquetFile(streamed_out["path"]).metadata.num_row_groups == math.ceil(whole_out["rows"] / 64)
    assert streamed.schema == whole.schema
    for name in whole.column_names:
        a, b = whole.column(name).to_numpy(), streamed.column(name).to_numpy()
        if a.dtype.kind == "f":  # ridge's float32 product rounds a row by its place in a block
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-3)
        else:
            assert (a == b).all(), name


@pytest.mark.parametrize("read_batch", [predict.READ_BATCH, 100])
def test_every_path_writes_through_parquet_writer_write_table(trained, monkeypatch, read_batch):
    # stepkit/local/pool.py's fault injection kills a worker inside ParquetWriter.write_table.
    calls = []
    original = pq.ParquetWriter.write_table

    def counted(self, table, *args, **kwargs):
        calls.append(table.num_rows)
        return original(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", counted)
    monkeypatch.setattr(predict, "READ_BATCH", read_batch)
    out, _ = _run(trained, 2)
    assert sum(calls) == out["rows"] and len(calls) == math.ceil(out["rows"] / read_batch)


def _relayout(names, batch_id: int, layout: str) -> list[str]:
    """Rewrite a batch folder as Athena may leave it; returns the ids in the order expected."""
    src, _ = predict.batch_paths(names, RUN, batch_id)
    rows = storage.read_table(src)
    shutil.rmtree(src)
    if layout == "missing":  # Athena writes no folder for a batch without rows
        return []
    half = rows.num_rows // 2
    storage.write_table(src + "part-a.parquet", rows.slice(0, half))
    # Another writer's physical types (int64, large strings): read as one table all the same.
    wide = pa.schema([(f.name, pa.int64() if pa.types.is_int32(f.type) else
                       pa.large_string() if pa.types.is_string(f.type) else f.type) for f in rows.schema])
    storage.write_table(src + "part-b.parquet", rows.slice(half).cast(wide))
    if layout == "with markers":
        storage.write_bytes(src + "_SUCCESS", b"")
        storage.write_bytes(src + ".tmp-0123-part-c.parquet", b"PAR1 torn by a killed writer")
    return rows.column("id").to_pylist()


@pytest.mark.parametrize("layout", ["missing", "two files", "with markers"])
def test_batch_folder_layouts(trained, layout):
    p, names = trained
    batch_id = {"missing": 0, "two files": 1, "with markers": 2}[layout]
    ids = _relayout(names, batch_id, layout)
    out, table = _run(trained, batch_id)
    assert out["rows"] == table.num_rows == len(ids)
    assert table.column("id").to_pylist() == ids and table.schema == predict.output_schema(p)
    assert Path(out["path"]).name == "part-00000.parquet"


@pytest.mark.parametrize("sizes", [[5, 1, 9000, 3, 0], [131_072, 7]])
def test_repeat_is_a_slice_of_one_cached_array(sizes):
    predict._REPEATS.clear()
    for n in sizes:
        a = predict._repeat("model-v1", n)
        assert len(a) == n and a.type == pa.string() and set(a.to_pylist()) <= {"model-v1"}
    assert list(predict._REPEATS) == ["model-v1"] and len(predict._REPEATS["model-v1"]) >= max(sizes)


def test_a_failure_mid_stream_leaves_no_file_and_no_thread(trained, monkeypatch):
    p, names = trained
    _, out = predict.batch_paths(names, RUN, 1)
    Path(out).unlink(missing_ok=True)
    encode = predict.encode  # either encoding, whichever the model reads
    calls = []

    def fail_third(encoder, data, encoding):
        calls.append(data.num_rows)
        if len(calls) == 3:
            raise RuntimeError("encoding failed")
        return encode(encoder, data, encoding)

    monkeypatch.setattr(predict, "encode", fail_third)
    monkeypatch.setattr(predict, "READ_BATCH", 32)
    threads = threading.active_count()
    with pytest.raises(RuntimeError, match="encoding failed"):
        predict.run(p, names, RUN, 1)
    assert threading.active_count() == threads  # the reading and writing threads have ended
    assert not Path(out).exists() and [f.name for f in Path(out).parent.iterdir()] == []
