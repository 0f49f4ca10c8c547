"""The source of a local run: checked before anything runs, then registered in the catalog."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stepkit.errors import DataError

# A local run has no AWS account: unset AWS variables get these (the run says so).
PLACEHOLDERS = {
    "AWS_ACCOUNT_ID": "000000000000",
    "AWS_REGION": "us-east-1",
    "S3_BUCKET": "stepkit-local",
    "SUBNET_ID": "subnet-00000000000000000",
    "SECURITY_GROUP_ID": "sg-00000000000000000",
}


def fill_placeholders(variables: dict[str, str]) -> list[str]:
    """Set unset AWS variables to local placeholders; return the names filled."""
    filled = [k for k in PLACEHOLDERS if not variables.get(k)]
    for k in filled:
        variables[k] = PLACEHOLDERS[k]
    return filled


# A folder with many bad files names the first few; the rest are counted.
SHOWN = 5


@dataclass(frozen=True)
class Source:
    path: Path
    files: list[Path]
    rows: int
    columns: list[str]
    # Files in the folder the local engine does not read: not hidden, but not named *.parquet
    # (Spark's part-00000 files). Athena would read them; the runner may want to say so.
    ignored: tuple[Path, ...] = ()

    @property
    def location(self) -> str:
        """A folder ends in '/', as table locations do; a single file is its own location."""
        return self.path.as_posix().rstrip("/") + "/" if self.path.is_dir() else self.path.as_posix()


def check_apart(source: Path, workdir: Path) -> None:
    """The source must not lie where the run writes and deletes (WORKDIR/warehouse/: PreCleanup
    deletes its tables' folders; WORKDIR/runs/), and the work folder must not lie inside a source
    folder (the engine reads every Parquet file under it, the run's own tables too). Paths are
    compared resolved, so a symlink into the work folder counts as inside it. A DataError, one line."""
    src, work = Path(source).resolve(), Path(workdir).resolve()
    for folder, what in (("warehouse", "writes its tables and PreCleanup deletes them"),
                         ("runs", "writes its records and reports")):
        inside = work / folder
        if src == inside or inside in src.parents:
            raise DataError(f"{source}: the source lies inside {inside}/, where the run {what}: move it out of the "
                            "work folder or pass another --workdir")
    if src.is_dir() and (work == src or src in work.parents):
        raise DataError(f"--workdir {workdir} lies inside the source folder {source}: the run would read its own "
                        "tables as source rows and write beside the source's files; pass a --workdir outside it")


def check_source(path: Path, table: str, id_column: str, document_column: str, id_type: str = "string") -> Source:
    """Exists, is Parquet, has rows, and every file the engine will read has the id column (string
    or integer; integer only for `id_type: bigint`) and the document column (string): else a
    DataError, one line per problem. StagingFeatures casts the id to `id_type`: an integer id as
    text is safe, text as bigint is not (a non-numeric id would fail the query on Athena)."""
    # Footers only (no pyarrow.dataset: it imports pandas, 1.3 s of a run's start-up).
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = path.resolve()
    if not path.exists():
        raise DataError(f"{path}: no such source file or folder (source table {table})")
    files, ignored = _listing(path)
    if not files:
        raise DataError(f"{path}: source table {table} has 0 rows: no Parquet files in the folder{_unread(ignored)}")
    problems: list[str] = []
    rows, columns = 0, None
    first: dict[str, tuple[Path, pa.DataType]] = {}  # column -> the first file's type of it
    for f in files:
        try:
            metadata = pq.read_metadata(f)
            schema = metadata.schema.to_arrow_schema()
        except (pa.ArrowInvalid, OSError) as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            problems.append(f"{f}: source table {table} is not readable Parquet: {text}")
            continue
        rows += metadata.num_rows
        columns = list(schema.names) if columns is None else columns
        ids = ("integer",) if id_type == "bigint" else ("string", "integer")
        for column, field, allowed in ((id_column, "id_column", ids), (document_column, "document_column", ("string",))):
            problem = _column(f, schema, table, column, field, allowed, first, typed=metadata.num_rows > 0)
            if problem:
                problems.append(problem)
                break  # one line per file: the first thing to fix in it
    if problems:
        more = len(problems) - SHOWN
        shown = problems[:SHOWN] + ([f"{path}: source table {table}: {more} more problem(s) in other files"]
                                    if more > 0 else [])
        raise DataError("\n".join(shown))
    if rows == 0:
        raise DataError(f"{path}: source table {table} is empty (0 rows)")
    return Source(path, files, rows, columns or [], tuple(ignored))


def _listing(path: Path) -> tuple[list[Path], list[Path]]:
    """The files the local engine reads, and the visible ones it does not. A folder is listed as
    the DuckDB engine lists a table's location (engines.listing: recursive, `_`/`.` names skipped,
    only *.parquet, as Athena's own writers name them); a single file is read whatever its name."""
    from stepkit.engines.listing import files  # imports duckdb, which the run loads anyway

    if path.is_file():
        return [path], []
    visible = files(path)
    return [f for f in visible if f.name.endswith(".parquet")], [f for f in visible if not f.name.endswith(".parquet")]


def _unread(ignored: list[Path]) -> str:
    if not ignored:
        return ""
    return (f" (the local engine reads only files named *.parquet; {len(ignored)} file(s) without that suffix "
            f"are not read, e.g. {ignored[0].name}: rename them to end in .parquet)")


def _column(f: Path, schema, table: str, column: str, field: str, allowed: tuple[str, ...],
            first: dict, typed: bool) -> str | None:
    """One line about `column` in file `f`, or None when it is there with a usable type. The type of
    a file without rows is not judged: no value is read from it (pyarrow writes an empty list as null)."""
    import pyarrow as pa

    where = f"{f}: source table {table}"
    found = schema.get_all_field_indices(column)
    if not found:
        return (f"{where} has no column {column!r} (source.{field}); "
                f"its columns: {', '.join(schema.names) or 'none'}")
    if len(found) > 1:
        return f"{where} has {len(found)} columns named {column!r} (source.{field})"
    dtype = schema.field(found[0]).type
    if not typed:
        return None
    kind = _kind(dtype)
    if kind == "integer" and allowed == ("integer",) and (pa.types.is_uint64(_value_type(dtype))):
        return (f"{where}: column {column!r} (source.{field}) has type {dtype}, which can exceed source.id_type "
                "bigint; cast it to int64 or set source.id_type: string")
    if kind not in allowed:
        expected = ("an integer id (source.id_type is bigint; text ids need source.id_type: string)"
                    if allowed == ("integer",) else "a string or integer id" if field == "id_column"
                    else "JSON text in a string (Parquet UTF8) column")
        null = " (every value is null)" if dtype == pa.null() else ""
        return f"{where}: column {column!r} (source.{field}) has type {dtype}{null}; expected {expected}"
    seen = first.setdefault(column, (f, dtype))
    if _kind(seen[1]) != kind:
        # Athena reads every file as the table's one declared type: a file that disagrees fails there.
        return (f"{where}: column {column!r} (source.{field}) has type {dtype} but {seen[1]} in {seen[0]}; "
                "every file must give it one type")
    return None


def _value_type(dtype):
    """The type of the values, looking through dictionary encoding and the JSON extension type."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if isinstance(dtype, pa.ExtensionType) and dtype.extension_name == "arrow.json":
        dtype = dtype.storage_type
    return dtype


def _kind(dtype) -> str | None:
    """'string', 'integer' or None, looking through dictionary encoding and the JSON extension type."""
    import pyarrow as pa

    dtype = _value_type(dtype)
    is_view = getattr(pa.types, "is_string_view", lambda _: False)  # pyarrow >= 16
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or is_view(dtype):
        return "string"
    if pa.types.is_integer(dtype):
        return "integer"
    return None
