"""stepkit.storage: the same calls on a local folder and on S3 (moto in server mode)."""
from __future__ import annotations

import os
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from stepkit import storage
from stepkit.errors import DataError

BUCKET = "stepkit-storage-test"


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, monkeypatch):
    """A fresh folder: a local absolute path or an s3:// prefix, both ending in '/'."""
    if request.param == "local":
        return f"{tmp_path}/"
    request.getfixturevalue("aws_env")
    import boto3

    s3 = boto3.client("s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/"


def _table(start: int, n: int) -> pa.Table:
    return pa.table({"id": [f"p{i}" for i in range(start, start + n)], "x": [float(i) for i in range(start, start + n)]})


def test_bytes_and_json_round_trip(root):
    storage.write_bytes(root + "a/b.bin", b"\x00\x01data")
    storage.write_json(root + "m.json", {"b": 1, "a": [1.5, "x"]})
    assert storage.read_bytes(root + "a/b.bin") == b"\x00\x01data"
    assert storage.read_json(root + "m.json") == {"a": [1.5, "x"], "b": 1}
    assert storage.exists(root + "m.json") and not storage.exists(root + "nope.json")


def test_folder_listing_skips_markers_and_reads_recursively(root):
    storage.write_table(root + "t/batch_id=1/part-0.parquet", _table(0, 3))
    storage.write_table(root + "t/batch_id=2/part-0.parquet", _table(3, 2))
    storage.write_bytes(root + "t/_SUCCESS", b"")
    storage.write_bytes(root + "t/_temporary/x.parquet", b"junk")
    storage.write_bytes(root + "t/.hidden.parquet", b"junk")
    files = storage.list_parquet(root + "t/")
    assert [f.rsplit("/", 2)[-2] for f in files] == ["batch_id=1", "batch_id=2"]
    table = storage.read_table(root + "t/", columns=["id"])
    assert table.column_names == ["id"] and sorted(table.column("id").to_pylist()) == [f"p{i}" for i in range(5)]
    assert sum(b.num_rows for b in storage.iter_batches(root + "t/", batch_size=2)) == 5


@pytest.mark.parametrize("call", [
    lambda f: storage.list_parquet(f),
    lambda f: storage.read_table(f),
    lambda f: list(storage.iter_batches(f)),
])
def test_missing_folder_is_a_data_error_naming_it(root, call):
    with pytest.raises(DataError, match=r"nothere/: no such folder"):
        call(root + "nothere/")


def test_missing_ok_means_empty(root):
    assert storage.list_parquet(root + "nothere/", missing_ok=True) == []
    assert storage.read_table(root + "nothere/", missing_ok=True) is None
    assert list(storage.iter_batches(root + "nothere/", missing_ok=True)) == []


def test_missing_column_names_folder_and_columns(root):
    storage.write_table(root + "t/p.parquet", _table(0, 2))
    with pytest.raises(DataError, match=r"t/: missing column\(s\) y \(has id, x\)"):
        storage.read_table(root + "t/", columns=["id", "y"])


def test_rewrite_overwrites_and_a_failed_write_leaves_the_old_file(root):
    uri = root + "out/part-00000.parquet"
    storage.write_table(uri, _table(0, 4))
    storage.write_table(uri, _table(10, 2))  # a retry: replaces, never appends
    assert storage.read_table(root + "out/").column("id").to_pylist() == ["p10", "p11"]
    with pytest.raises(RuntimeError):
        with storage.parquet_writer(uri, _table(0, 1).schema) as w:
            w.write_table(_table(20, 5))
            raise RuntimeError("worker died mid-write")
    assert storage.read_table(root + "out/").column("id").to_pylist() == ["p10", "p11"]
    assert len(storage.list_parquet(root + "out/")) == 1


def test_local_write_leaves_no_temp_files(tmp_path):
    storage.write_table(f"{tmp_path}/d/f.parquet", _table(0, 3))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f.parquet"]
    assert pq.read_table(tmp_path / "d" / "f.parquet").num_rows == 3


def test_missing_file_is_a_data_error(root):
    with pytest.raises(DataError, match=r"model.joblib: no such file"):
        storage.read_bytes(root + "model.joblib")


# --- open_parquet: the row count first, then a whole read (small) or record batches (large)
def test_open_parquet_counts_rows_before_reading_and_reads_every_file(root):
    storage.write_table(root + "t/a.parquet", _table(0, 3))
    storage.write_table(root + "t/b.parquet", _table(3, 4).cast(pa.schema([("id", pa.large_string()),
                                                                           ("x", pa.float32())])))
    storage.write_bytes(root + "t/.tmp-torn-a.parquet", b"PAR1 torn")  # a killed writer's temp file
    storage.write_bytes(root + "t/_SUCCESS", b"")
    with storage.open_parquet(root + "t/", columns=["id", "x"]) as parts:
        assert parts.num_rows == 7 and len(parts.files) == 2
        whole = parts.read()  # two files, types widened to one schema
        assert whole.column("id").to_pylist() == [f"p{i}" for i in range(7)]
        assert whole.column("x").to_pylist() == [float(i) for i in range(7)]
        sizes = [b.num_rows for b in parts.batches(batch_size=2)]
    assert sizes == [2, 1, 2, 2] and sum(sizes) == 7  # a record batch never spans two files
    with storage.open_parquet(root + "t/", columns=["id"], dictionary=["id"]) as parts:
        ids = parts.read().column("id")
    assert pa.types.is_dictionary(ids.type) and ids.to_pylist() == [f"p{i}" for i in range(7)]


@pytest.mark.parametrize("folder, missing_ok, expect", [
    ("nothere/", True, "empty"),
    ("nothere/", False, r"nothere/: no such folder"),
    ("t/", False, r"t/: missing column\(s\) y \(has id, x\)"),
])
def test_open_parquet_missing_folder_and_columns(root, folder, missing_ok, expect):
    storage.write_table(root + "t/p.parquet", _table(0, 2))
    if expect == "empty":
        with storage.open_parquet(root + folder, columns=["id"], missing_ok=missing_ok) as parts:
            assert parts.num_rows == 0 and parts.read() is None and list(parts.batches()) == []
        return
    with pytest.raises(DataError, match=expect):
        with storage.open_parquet(root + folder, columns=["id", "y"], missing_ok=missing_ok):
            pass


@pytest.mark.parametrize("in_memory", [False, True])
def test_writer_in_memory_or_streamed_is_atomic(root, in_memory):
    uri = root + "w/batch_id=1/part-00000.parquet"
    storage.write_table(uri, _table(0, 2))
    with pytest.raises(RuntimeError):
        with storage.parquet_writer(uri, _table(0, 1).schema, in_memory=in_memory) as w:
            w.write_table(_table(10, 5))
            raise RuntimeError("worker died mid-write")
    assert storage.read_table(root + "w/").column("id").to_pylist() == ["p0", "p1"]  # the old file, alone
    with storage.parquet_writer(uri, _table(0, 1).schema, in_memory=in_memory) as w:
        w.write_table(_table(20, 3))
    assert storage.list_parquet(root + "w/") == [uri]
    assert storage.read_table(root + "w/").column("id").to_pylist() == ["p20", "p21", "p22"]
    if not root.startswith("s3://"):  # no temp file left behind, hidden or not
        assert os.listdir(root + "w/batch_id=1") == ["part-00000.parquet"]


class _Calls:
    """The real (moto-backed) S3 filesystem, with a record of what each get_file_info was given."""

    def __init__(self, fs):
        self.fs, self.args = fs, []

    def get_file_info(self, arg):
        self.args.append(arg)
        return self.fs.get_file_info(arg)


@pytest.mark.parametrize("folder, missing_ok, expect", [
    ("t/", False, ["batch_id=1"]),
    ("nothere/", True, []),
    ("nothere/", False, DataError),
])
def test_s3_folders_are_listed_without_a_head_of_their_own_key(aws_env, monkeypatch, folder, missing_ok, expect):
    """S3 answers a HEAD of a missing key with 403 to a role whose s3:ListBucket has a prefix
    condition (the task role's), and Arrow raises it: a folder is listed, never HEAD-ed."""
    import boto3

    s3 = boto3.client("s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    root = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/"
    storage.write_table(root + "t/batch_id=1/part-0.parquet", _table(0, 3))
    split = storage._split
    calls = []

    def spying(uri):
        fs, path = split(uri)
        calls.append(_Calls(fs))
        return calls[-1], path

    monkeypatch.setattr(storage, "_split", spying)
    if expect is DataError:
        with pytest.raises(DataError, match="nothere/: no such folder"):
            storage.list_parquet(root + folder, missing_ok=missing_ok)
    else:
        got = storage.list_parquet(root + folder, missing_ok=missing_ok)
        assert [f.rsplit("/", 2)[-2] for f in got] == expect
    asked = [a for c in calls for a in c.args]
    assert asked and all(isinstance(a, pafs.FileSelector) for a in asked), asked
