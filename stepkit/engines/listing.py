"""A table's files as Athena sees them, and whether they all share one schema.

Reading 898 prediction files with DuckDB's `union_by_name = true` reads every file's footer at
every bind (the view, the DESCRIBE, the statement: ~0.1 s each at 898 files). Without it DuckDB
takes the first file's schema for all, which gives the same rows only when the files agree. So
the engine asks once per file (cached by path, size and mtime) what its schema is, and reads
by name only the tables whose files disagree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb


def hidden(name: str) -> bool:
    # Athena (Hive) skips files and folders named `_...` or `.…`: _SUCCESS markers, temporary
    # files of a writer that died. DuckDB's globs do not, and one torn file fails every read.
    return name.startswith((".", "_"))


@dataclass(frozen=True)
class DataFile:
    path: str
    size: int
    mtime_ns: int


def listing(folder: Path, suffix: str = "") -> tuple[DataFile, ...]:
    """The table's data files under `folder` (nothing hidden, at any depth), sorted by path.
    Size and mtime come along: a file replaced under the same name is a different file."""
    out: list[DataFile] = []
    stack = [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if hidden(e.name):  # a hidden folder is not walked at all
                continue
            if e.is_dir(follow_symlinks=False):  # as os.walk: a linked folder is not walked
                stack.append(e.path)
            elif e.name.endswith(suffix) and not e.is_dir():
                try:
                    st = e.stat()
                except FileNotFoundError:  # deleted since the folder was read: not there
                    continue
                out.append(DataFile(e.path, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out, key=lambda f: f.path))


def files(folder: Path, suffix: str = "") -> list[Path]:
    return [Path(f.path) for f in listing(folder, suffix)]


class Schemas:
    """Each file's Parquet schema, remembered by (path, size, mtime)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int, tuple | None]] = {}

    def uniform(self, con: duckdb.DuckDBPyConnection, data: tuple[DataFile, ...]) -> bool:
        """Do all these files have one flat schema (same column names and types)? Nested
        columns count as different: their names alone do not describe them."""
        new = [f for f in data if self._seen.get(f.path, (None, None))[:2] != (f.size, f.mtime_ns)]
        if new:
            try:
                found = self._read(con, [f.path for f in new])
            except duckdb.Error:  # unreadable: the statement itself will say so, by union_by_name
                return False
            for f in new:
                self._seen[f.path] = (f.size, f.mtime_ns, found.get(f.path))
        shapes = {self._seen[f.path][2] for f in data}
        return len(shapes) <= 1 and None not in shapes

    @staticmethod
    def _read(con: duckdb.DuckDBPyConnection, paths: list[str]) -> dict[str, tuple | None]:
        listed = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
        # Every file has one group row, its root; a second one is a nested column. The leaves
        # describe a flat file whole (DuckDB matches files' columns by name, so name order).
        rows = con.execute(
            "SELECT file_name, count(*) FILTER (WHERE num_children > 0) > 1 AS nested, "
            "list(CAST((name, type, repetition_type, converted_type, scale, precision, logical_type) AS VARCHAR) "
            "ORDER BY name) FILTER (WHERE coalesce(num_children, 0) = 0) AS columns "
            f"FROM parquet_schema({listed}) GROUP BY file_name").fetchall()
        return {name: None if nested else tuple(cols or ()) for name, nested, cols in rows}
