"""One interface for files on S3 (`s3://bucket/key`) and on local disk (absolute paths).

Workers and the demo-data generator use only these functions, so the same code runs in a
container against S3 and in a local run against the warehouse folder. pyarrow.fs does the
work for both; it honours AWS_ENDPOINT_URL (moto in tests) like boto3 does.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from stepkit.errors import AwsError, DataError

if TYPE_CHECKING:
    import pyarrow.dataset as ds

# Snappy: Athena's default, and half zstd's write time for numeric tables (zstd pays off for text:
# the demo source asks for it).
_COMPRESSION = "snappy"


def _split(uri: str) -> tuple[pafs.FileSystem, str]:
    if uri.startswith("s3://"):
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except (OSError, pa.ArrowException) as e:
            raise AwsError(f"{uri}: cannot open S3 location: {e}") from None
        return fs, path.rstrip("/") if uri.endswith("/") else path
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(folder: str, name: str) -> str:
    return folder if not name else (folder if folder.endswith("/") else folder + "/") + name


def _uri(fs: pafs.FileSystem, path: str) -> str:
    return f"s3://{path}" if isinstance(fs, pafs.S3FileSystem) else path


def _hidden(rel: str) -> bool:
    # Athena/Hive/Spark markers (_SUCCESS, _temporary/, .crc, our own .tmp- files) are not data.
    return any(part.startswith(("_", ".")) for part in rel.split("/"))


def _io(action: str, uri: str, e: Exception) -> Exception:
    if uri.startswith("s3://"):
        return AwsError(f"s3 {action} {uri}: {e}")
    return DataError(f"{uri}: cannot {action}: {e}")


def exists(uri: str) -> bool:
    fs, path = _split(uri)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as e:
        raise _io("stat", uri, e) from None


def list_folders(folder: str) -> list[str]:
    """The names of the folders directly under `folder` (none when it does not exist), sorted."""
    fs, path = _split(folder)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
    except OSError as e:
        raise _io("list", folder, e) from None
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def list_parquet(folder: str, missing_ok: bool = False) -> list[str]:
    """Data files under `folder`, recursively, sorted; names starting with `_` or `.` are skipped."""
    fs, path = _split(folder)
    try:
        if folder.startswith("s3://") and folder.endswith("/"):
            # An S3 folder is listed, never HEAD-ed first: its own key never exists, and S3 answers a
            # HEAD of a missing key 403 (not 404) to a caller whose s3:ListBucket is limited to a
            # prefix, as the task role's is; Arrow raises that as an error.
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
            if not infos:
                return _missing(folder, missing_ok)
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                return _missing(folder, missing_ok)
            if info.type == pafs.FileType.File:
                return [_uri(fs, path)]
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as e:
        raise _io("list", folder, e) from None
    out = []
    for i in infos:
        rel = i.path[len(path):].lstrip("/")
        if i.type == pafs.FileType.File and not _hidden(rel) and i.size > 0:
            out.append(_uri(fs, i.path))
    return sorted(out)


def _missing(folder: str, missing_ok: bool) -> list[str]:
    if missing_ok:
        return []
    raise DataError(f"{folder}: no such folder (no table data written there)")


def _dataset(folder: str, missing_ok: bool = False) -> ds.Dataset | None:
    # Imported here: pyarrow.dataset imports pandas where it is installed (0.5 s and memory a
    # prediction worker, which reads through open_parquet, never needs).
    import pyarrow.dataset as ds

    files = list_parquet(folder, missing_ok=missing_ok)
    if not files:
        return None
    fs, _ = _split(folder)
    paths = [_split(f)[1] for f in files]
    try:
        # Hive partition folders (batch_id=3/) are read as plain files: the columns we need are in them.
        return ds.dataset(paths, format="parquet", filesystem=fs)
    except (OSError, pa.ArrowInvalid) as e:
        raise _io("read", folder, e) from None


def _check_columns(folder: str, schema: pa.Schema, columns: list[str] | None) -> None:
    missing = [c for c in columns or [] if c not in schema.names]
    if missing:
        raise DataError(f"{folder}: missing column(s) {', '.join(missing)} (has {', '.join(schema.names)})")


def read_table(folder: str, columns: list[str] | None = None, missing_ok: bool = False) -> pa.Table | None:
    """All Parquet under `folder` as one table (None when missing_ok and there is no data)."""
    d = _dataset(folder, missing_ok=missing_ok)
    if d is None:
        if missing_ok:
            return None
        raise DataError(f"{folder}: no Parquet files (0 rows)")
    _check_columns(folder, d.schema, columns)
    try:
        return d.to_table(columns=columns)
    except (OSError, pa.ArrowInvalid) as e:
        raise _io("read", folder, e) from None


class ParquetParts:
    """The data files under one folder, footers read: the row count is known before any rows are
    read, so a caller can read a small folder whole (one call per file, no threads) and stream a
    large one record batch by record batch (memory bounded by a row group, not the folder)."""

    def __init__(self, folder: str, files: list[pq.ParquetFile], columns: list[str] | None):
        self.folder, self.files, self.columns = folder, files, columns
        self.num_rows = sum(f.metadata.num_rows for f in files)

    def read(self) -> pa.Table | None:
        """Every row at once (None when there are no files)."""
        if not self.files:
            return None
        try:
            tables = [f.read(columns=self.columns, use_threads=False) for f in self.files]
            # Files of one folder may differ in physical types (int32 here, int64 there): widen.
            return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        except (OSError, pa.ArrowInvalid) as e:
            raise _io("read", self.folder, e) from None

    def batches(self, batch_size: int = 262_144, threads: bool = False) -> Iterator[pa.RecordBatch]:
        try:
            for f in self.files:
                yield from f.iter_batches(batch_size=batch_size, columns=self.columns, use_threads=threads)
        except (OSError, pa.ArrowInvalid) as e:
            raise _io("read", self.folder, e) from None


@contextmanager
def open_parquet(folder: str, columns: list[str] | None = None, missing_ok: bool = False,
                 dictionary: list[str] | None = None) -> Iterator[ParquetParts]:
    """The Parquet files under `folder` (hidden ones skipped), opened; closed when the block ends.
    A missing folder is an error, or no files when `missing_ok`. `dictionary`: columns to read as
    dictionary arrays (few distinct strings: no string built per row)."""
    uris = list_parquet(folder, missing_ok=missing_ok)
    fs, _ = _split(folder)
    # S3: fetch each column chunk's ranges in few requests; a local read gains nothing from it.
    remote = not isinstance(fs, pafs.LocalFileSystem)
    streams: list[Any] = []
    try:
        files = []
        for uri in uris:
            try:
                streams.append(fs.open_input_file(_split(uri)[1]) if remote else pa.OSFile(uri))
                files.append(pq.ParquetFile(streams[-1], pre_buffer=remote, read_dictionary=dictionary))
            except (OSError, pa.ArrowInvalid) as e:
                raise _io("read", uri, e) from None
            _check_columns(folder, files[-1].schema_arrow, columns)
        yield ParquetParts(folder, files, columns)
    finally:
        for stream in streams:
            stream.close()


def iter_batches(folder: str, columns: list[str] | None = None, batch_size: int = 262_144,
                 missing_ok: bool = False) -> Iterator[pa.RecordBatch]:
    """Stream the rows under `folder` in record batches (bounded memory)."""
    with open_parquet(folder, columns, missing_ok=missing_ok) as parts:
        if not parts.files and not missing_ok:
            raise DataError(f"{folder}: no Parquet files (0 rows)")
        yield from parts.batches(batch_size)


def schema_of(folder: str, missing_ok: bool = False) -> pa.Schema | None:
    d = _dataset(folder, missing_ok=missing_ok)
    return None if d is None else d.schema


def _tmp_path(path: str) -> str:
    head, _, name = path.rpartition("/")
    return f"{head}/.tmp-{uuid.uuid4().hex[:12]}-{name}"


@contextmanager
def _atomic_stream(uri: str, in_memory: bool = False) -> Iterator[Any]:
    """An output stream whose content appears at `uri` only when the block ends without error.

    The bytes go to a hidden temp file first (local: in the target's folder, then renamed over
    the target, which is atomic and lets a retry overwrite; S3: on local disk, then uploaded in
    one go, since an S3 object appears only when its upload completes). A failure leaves nothing.
    `in_memory`: the bytes are kept in memory and written in one call at the end (small files:
    a stream's file operations cost more than the data).
    """
    if in_memory:
        buffer = pa.BufferOutputStream()
        yield buffer
        _put(uri, buffer.getvalue())
        return
    fs, path = _split(uri)
    local = isinstance(fs, pafs.LocalFileSystem)
    try:
        if local:
            os.makedirs(path.rpartition("/")[0], exist_ok=True)
            tmp = _tmp_path(path)
        else:
            fd, tmp = tempfile.mkstemp(prefix=".stepkit-upload-")
            os.close(fd)
        stream = pa.OSFile(tmp, "wb")
    except OSError as e:
        raise _io("write", uri, e) from None
    done = False
    try:
        try:
            yield stream
        finally:
            stream.close()
        if local:
            os.replace(tmp, path)
            done = True
        else:
            pafs.copy_files(tmp, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    finally:
        if not done:
            _remove(tmp)


def _put(uri: str, data: bytes | pa.Buffer) -> None:
    """`data` at `uri`, atomically: a local temp file renamed over the target; one S3 upload."""
    fs, path = _split(uri)
    try:
        if not isinstance(fs, pafs.LocalFileSystem):
            with fs.open_output_stream(path) as out:  # the object appears when the upload completes
                out.write(data)
            return
        os.makedirs(path.rpartition("/")[0], exist_ok=True)
        tmp = _tmp_path(path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
    except OSError as e:
        raise _io("write", uri, e) from None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def write_bytes(uri: str, data: bytes) -> None:
    _put(uri, data)


def read_bytes(uri: str) -> bytes:
    fs, path = _split(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{uri}: no such file") from None
    except OSError as e:
        if "not found" in str(e).lower() or "NoSuchKey" in str(e):
            raise DataError(f"{uri}: no such file") from None
        raise _io("read", uri, e) from None


def write_json(uri: str, value: Any) -> None:
    write_bytes(uri, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_json(uri: str) -> Any:
    data = read_bytes(uri)
    try:
        return json.loads(data)
    except ValueError as e:
        raise DataError(f"{uri}: not JSON: {e}") from None


def _writer_options(schema: pa.Schema, dictionary: bool | list[str], compression: str,
                    statistics: bool | list[str]) -> dict[str, Any]:
    # Dictionaries pay off for repeated strings (model names, run ids), not for ids or documents:
    # pass the repeated columns' names, or True for every string column.
    if dictionary is True:
        dictionary = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    # Float columns compress poorly with dictionaries and write 4x slower with them (measured on these machines).
    return {"compression": compression, "use_dictionary": list(dictionary) if dictionary else False,
            "write_statistics": statistics}


@contextmanager
def parquet_writer(uri: str, schema: pa.Schema, dictionary: bool | list[str] = True,
                   compression: str = _COMPRESSION, statistics: bool | list[str] = True,
                   in_memory: bool = False) -> Iterator[pq.ParquetWriter]:
    """Write a Parquet file batch by batch; it appears at `uri` atomically when the block ends.
    Column statistics cost a quarter of a numeric table's write time: `statistics` can name the
    columns worth them (those queries filter on). `in_memory`: for a small file (held in memory
    until the end, then written in one call)."""
    try:
        with _atomic_stream(uri, in_memory) as stream:
            writer = pq.ParquetWriter(stream, schema, **_writer_options(schema, dictionary, compression, statistics))
            try:
                yield writer
            finally:
                writer.close()
    except OSError as e:
        raise _io("write", uri, e) from None


def write_table(uri: str, table: pa.Table) -> None:
    # The table is in memory already: its file (smaller) may be too.
    with parquet_writer(uri, table.schema, in_memory=True) as w:
        w.write_table(table)
