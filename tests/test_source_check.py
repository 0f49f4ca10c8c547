"""check_source reads the footer of every file the local engine will read, and names the file,
the column and its type in one line per problem."""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepkit.engines.duckdb import DuckDBEngine
from stepkit.errors import DataError
from stepkit.local.source import SHOWN, check_source

GOOD = {"person_id": ["a", "b", "c"], "doc": ['{"age": 1}'] * 3}


def table(**columns) -> pa.Table:
    """GOOD with columns replaced (an array or list) or dropped (None)."""
    cols = {**GOOD, **columns}
    return pa.table({k: v for k, v in cols.items() if v is not None})


def folder(tmp: Path, files: dict[str, pa.Table | bytes]) -> Path:
    """A source folder: each name (may hold '/') is a Parquet table, or raw bytes as they are."""
    root = tmp / "src"
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            pq.write_table(content, path)
    root.mkdir(exist_ok=True)
    return root


def one(tmp: Path, t: pa.Table) -> Path:
    pq.write_table(t, tmp / "one.parquet")
    return tmp / "one.parquet"


# Each case: a source built in tmp_path, and the error's pattern (or None: the source is good, and
# then the files check_source lists and their total rows).
CASES = {
    "second file lacks the id column": (
        lambda d: folder(d, {"a.parquet": table(), "b.parquet": table(person_id=None)}),
        r"/src/b\.parquet: source table db\.src has no column 'person_id' \(source\.id_column\); its columns: doc$"),
    "second file lacks the document column": (
        lambda d: folder(d, {"part-0.parquet": table(), "part-1.parquet": table(doc=None)}),
        r"/src/part-1\.parquet: source table db\.src has no column 'doc' \(source\.document_column\)"),
    "int64 document": (
        lambda d: one(d, table(doc=[1, 2, 3])),
        r"one\.parquet: source table db\.src: column 'doc' \(source\.document_column\) has type int64; "
        r"expected JSON text in a string"),
    "binary document": (
        lambda d: one(d, table(doc=pa.array([b"{}"] * 3, pa.binary()))),
        r"column 'doc' \(source\.document_column\) has type binary; expected JSON text"),
    "binary document in the second file only": (
        lambda d: folder(d, {"a.parquet": table(), "b.parquet": table(doc=pa.array([b"{}"] * 3, pa.binary()))}),
        r"/src/b\.parquet: .*column 'doc' \(source\.document_column\) has type binary"),
    "list id": (
        lambda d: one(d, table(person_id=pa.array([[1], [2], [3]], pa.list_(pa.int64())))),
        r"column 'person_id' \(source\.id_column\) has type list<.*int64>; expected a string or integer id"),
    "float id": (
        lambda d: one(d, table(person_id=[1.0, 2.0, 3.0])),
        r"column 'person_id' \(source\.id_column\) has type double"),
    "null document (every value null)": (
        lambda d: one(d, table(doc=pa.array([None] * 3, pa.null()))),
        r"column 'doc' \(source\.document_column\) has type null \(every value is null\); expected JSON text"),
    "id string in one file, integer in another": (
        lambda d: folder(d, {"a.parquet": table(), "b.parquet": table(person_id=[1, 2, 3])}),
        r"/src/b\.parquet: .*'person_id' \(source\.id_column\) has type int64 but string in .*/src/a\.parquet"),
    "unreadable second file is named": (
        lambda d: folder(d, {"a.parquet": table(), "b.parquet": b"not parquet"}),
        r"/src/b\.parquet: source table db\.src is not readable Parquet: "),
    "empty second file is named (the engine reads it)": (
        lambda d: folder(d, {"a.parquet": table(), "b.parquet": b""}),
        r"/src/b\.parquet: source table db\.src is not readable Parquet"),
    "only files without the .parquet suffix (Spark)": (
        lambda d: folder(d, {"part-00000-abc.snappy": table(), "_SUCCESS": b""}),
        r"/src: source table db\.src has 0 rows: no Parquet files in the folder \(the local engine reads only "
        r"files named \*\.parquet; 1 file\(s\) without that suffix are not read, e\.g\. part-00000-abc\.snappy"),
    "hidden files and folders are skipped": (
        lambda d: folder(d, {"a.parquet": table(), ".b.parquet": b"torn", "_c.parquet": table(doc=None),
                             "_temporary/0/d.parquet": b"torn", "sub/e.parquet": table()}),
        None, ["a.parquet", "sub/e.parquet"], 6),
    "good folder of several files": (
        lambda d: folder(d, {f"part-{i}.parquet": table() for i in range(4)}),
        None, [f"part-{i}.parquet" for i in range(4)], 12),
    "integer id, large_string and dictionary documents": (
        lambda d: folder(d, {"a.parquet": table(person_id=[1, 2, 3], doc=pa.array(GOOD["doc"], pa.large_string())),
                             "b.parquet": table(person_id=pa.array([4, 5, 6], pa.int32()),
                                                doc=pa.array(GOOD["doc"]).dictionary_encode())}),
        None, ["a.parquet", "b.parquet"], 6),
    "a file without rows is not judged by its types": (
        lambda d: folder(d, {"a.parquet": table(), "b.parquet": pa.table({"person_id": [], "doc": []})}),
        None, ["a.parquet", "b.parquet"], 3),
    "files without the suffix beside Parquet ones are not read": (
        lambda d: folder(d, {"a.parquet": table(), "part-00000": b"not parquet either"}),
        None, ["a.parquet"], 3),
}


@pytest.mark.parametrize("case", CASES)
def test_source_check(tmp_path, case):
    make, pattern, *good = CASES[case]
    source = make(tmp_path)
    if pattern is not None:
        with pytest.raises(DataError) as e:
            check_source(source, "db.src", "person_id", "doc")
        assert "\n" not in str(e.value)
        assert re.search(pattern, str(e.value)), str(e.value)
        return
    names, rows = good
    src = check_source(source, "db.src", "person_id", "doc")
    assert ([f.relative_to(source).as_posix() for f in src.files], src.rows) == (names, rows)


def test_check_and_engine_read_the_same_files(tmp_path):
    """The rows the check counts are the rows the DuckDB engine reads from the location it is given."""
    source = folder(tmp_path, {"a.parquet": table(), "sub/b.parquet": table(), ".c.parquet": table(),
                               "_tmp/d.parquet": table(), "part-00000": table()})
    src = check_source(source, "db.src", "person_id", "doc")
    engine = DuckDBEngine(tmp_path / "warehouse")
    try:
        engine.register_table("db", "src", src.location)
        assert (src.rows, engine.row_count("db", "src")) == (6, 6)
    finally:
        engine.close()
    assert [f.name for f in src.ignored] == ["part-00000"]


def test_many_bad_files_show_the_first_few_and_count_the_rest(tmp_path):
    source = folder(tmp_path, {"a.parquet": table(), **{f"b{i:02d}.parquet": table(person_id=None) for i in range(9)}})
    with pytest.raises(DataError) as e:
        check_source(source, "db.src", "person_id", "doc")
    lines = str(e.value).splitlines()
    named = [re.search(r"/(b\d\d)\.parquet: ", line).group(1) for line in lines[:SHOWN]]
    assert named == [f"b{i:02d}" for i in range(SHOWN)]
    assert lines[SHOWN:] == [f"{source}: source table db.src: {9 - SHOWN} more problem(s) in other files"]


# StagingFeatures casts the id to source.id_type: (id column, id_type, None when accepted or the error's pattern).
ID_TYPES = {
    "text ids, id_type string": (GOOD["person_id"], "string", None),
    "int64 ids, id_type string (cast to text: safe)": ([1, 2, 3], "string", None),
    "int64 ids, id_type bigint": ([1, 2, 3], "bigint", None),
    "int32 ids, id_type bigint": (pa.array([1, 2, 3], pa.int32()), "bigint", None),
    "dictionary text ids, id_type string": (pa.array(GOOD["person_id"]).dictionary_encode(), "string", None),
    "text ids, id_type bigint": (
        GOOD["person_id"], "bigint",
        r"one\.parquet: source table db\.src: column 'person_id' \(source\.id_column\) has type string; expected an "
        r"integer id \(source\.id_type is bigint; text ids need source\.id_type: string\)$"),
    "uint64 ids, id_type bigint": (
        pa.array([1, 2, 3], pa.uint64()), "bigint",
        r"one\.parquet: source table db\.src: column 'person_id' \(source\.id_column\) has type uint64, which can "
        r"exceed source\.id_type bigint; cast it to int64 or set source\.id_type: string$"),
}


@pytest.mark.parametrize("case", ID_TYPES)
def test_id_column_type_against_id_type(tmp_path, case):
    ids, id_type, pattern = ID_TYPES[case]
    source = one(tmp_path, table(person_id=ids))
    if pattern is None:
        assert check_source(source, "db.src", "person_id", "doc", id_type).rows == 3
        return
    with pytest.raises(DataError) as e:
        check_source(source, "db.src", "person_id", "doc", id_type)
    assert re.search(pattern, str(e.value)), str(e.value)
