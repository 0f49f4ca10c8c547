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


@dataclass(frozen=True)
class Source:
    path: Path
    files: list[Path]
    rows: int
    columns: list[str]

    @property
    def location(self) -> str:
        """A folder ends in '/', as table locations do; a single file is its own location."""
        return self.path.as_posix().rstrip("/") + "/" if self.path.is_dir() else self.path.as_posix()


def check_source(path: Path, table: str, id_column: str, document_column: str) -> Source:
    """Exists, is Parquet, has the id and document columns, has rows: else one DataError line."""
    # Footers only (no pyarrow.dataset: it imports pandas, 1.3 s of a run's start-up).
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = path.resolve()
    if not path.exists():
        raise DataError(f"{path}: no such source file or folder (source table {table})")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise DataError(f"{path}: source table {table} has 0 rows: no Parquet files in the folder")
    try:
        metadata = [pq.read_metadata(f) for f in files]
        columns = list(metadata[0].schema.to_arrow_schema().names)
        missing = [c for c in (id_column, document_column) if c not in columns]
        if missing:
            raise DataError(f"{path}: source table {table} has no column {missing[0]!r} "
                            f"(source.{'id_column' if missing[0] == id_column else 'document_column'}); "
                            f"its columns: {', '.join(columns) or 'none'}")
        rows = sum(m.num_rows for m in metadata)
    except (pa.ArrowInvalid, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: source table {table} is not readable Parquet: {first}") from None
    if rows == 0:
        raise DataError(f"{path}: source table {table} is empty (0 rows)")
    return Source(path, files, rows, columns)
