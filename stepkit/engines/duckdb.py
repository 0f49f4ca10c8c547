"""The embedded engine: Athena SQL on DuckDB, tables as Parquet folders in a local warehouse.

Statements arrive in Athena's dialect (what the compiler renders for AWS) and are transpiled with
sqlglot (transpile.py, shims.py). CTAS properties are honoured here, since DuckDB has no such
clause: Parquet with the asked compression under `external_location`, Hive `col=value/` folders
for partitions, one file set per bucket. Athena's refusals are reproduced so that a plan that
passes locally does not fail on AWS for them: a non-empty `external_location`, more than 100
partition x bucket writers in one statement, INSERT INTO a bucketed table.
"""
from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import duckdb

from stepkit.ir.sql import MAX_WRITERS
from stepkit.engines import Columns, QueryError, QueryResult, pruning
from stepkit.engines.catalog import Catalog, Table
from stepkit.engines.listing import Schemas, files, listing
from stepkit.engines.shims import MACROS
from stepkit.engines.transpile import ATHENA_TYPES, Statement, parse, summary
from stepkit.errors import DataError

_COMPRESSION = {"snappy": "snappy", "zstd": "zstd", "gzip": "gzip", "none": "uncompressed", "uncompressed": "uncompressed"}
_BUCKET = "__sk_bucket"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def _user_interrupt():
    """A query the user interrupted comes out as KeyboardInterrupt, as an interrupt anywhere else does.

    DuckDB ends a statement cut short by Ctrl-C (SIGINT while it runs) with `RuntimeError: Query
    interrupted` (it takes the KeyboardInterrupt Python's handler raised, and drops it), and one
    cut short by `con.interrupt()` with duckdb.InterruptException, a duckdb.Error that would pass
    for a failed statement. Either way the user stopped the run: the CLI then says `interrupted`
    and exits 130 instead of showing a traceback or a stage failure that retries."""
    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except RuntimeError as e:
        if str(e) != "Query interrupted":
            raise
        raise KeyboardInterrupt from None


class DuckDBEngine:
    """`stepkit.engines.Engine` on DuckDB. One in-memory connection; the data lives in Parquet."""

    def __init__(self, warehouse: Path, threads: int | None = None, memory_limit: str | None = None,
                 roots: dict[str, str] | None = None):
        """`memory_limit` (DuckDB's syntax, e.g. "2GB"): beyond it DuckDB spills to disk instead of
        growing; None keeps DuckDB's default (80% of the RAM). `roots`: S3 prefixes -> the local folders
        that stand for them (the pipeline's `s3://bucket/prefix/` -> the warehouse), so the statements
        the deployed state machine sends run here unchanged."""
        self.roots = dict(roots or {})
        self.warehouse = Path(warehouse).resolve()
        self.warehouse.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.warehouse)
        self.con = duckdb.connect()
        self.schemas = Schemas()
        self._defined: dict[str, tuple] = {}  # table key -> (view body, files) the view was made from
        self.threads = threads
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            try:
                self.con.execute(f"SET memory_limit = {_lit(str(memory_limit))}")
            except duckdb.Error as e:
                self.con.close()
                raise QueryError(f"memory_limit {memory_limit!r}: DuckDB refused it: "
                                 f"{str(e).strip().splitlines()[0]}") from None
        # Trino divides integers by truncation; DuckDB's `/` would give a double.
        self.con.execute("SET integer_division = true")
        # Athena promises no row order either; keeping it costs memory and time on big writes.
        self.con.execute("SET preserve_insertion_order = false")
        # DuckDB draws its own progress bar on long statements, over stepkit's output lines.
        self.con.execute("SET enable_progress_bar = false")
        # Each statement binds its sources' views and DESCRIBEs before it runs: without the cache every
        # bind re-reads every file's footer (898 prediction files). DuckDB checks each cached footer
        # against the file's modification time, so a file replaced under its name is read again.
        self.con.execute("SET parquet_metadata_cache = true")
        self.con.execute(f"SET temp_directory = {_lit(str(self.warehouse / '_tmp' / 'spill'))}")
        for macro in MACROS:
            self.con.execute(macro)

    # --- Engine interface
    def execute(self, sql: str) -> QueryResult:
        start = time.perf_counter()
        st = parse(sql)
        run = {"select": self._select, "ctas": self._ctas, "insert": self._insert,
               "external": self._external, "drop": self._drop}[st.kind]
        try:
            with _user_interrupt():  # inside: an interrupt is not a failed statement (duckdb.Error)
                fields = run(st)
        except duckdb.Error as e:
            what = st.qualified if st.table else summary(sql)
            message = str(e).strip().splitlines()[0]
            raise QueryError(f"{what}: {st.kind.upper()} failed in DuckDB: {message}") from None
        return QueryResult(kind=st.kind, seconds=time.perf_counter() - start, **fields)

    def register_table(self, database: str, name: str, location: str, columns: Columns | None = None,
                       partitioned_by: Sequence[str] = ()) -> None:
        cols = None
        if columns is not None:
            cols = [(c.lower(), ATHENA_TYPES.get(t.lower(), t.upper())) for c, t in columns]
        self.catalog.put(Table(database, name, self._local(location, f"{database}.{name}"), cols,
                               [p.lower() for p in partitioned_by]))

    def drop_table(self, database: str, name: str) -> bool:
        self.con.execute(f"DROP VIEW IF EXISTS {_q(database.lower())}.{_q(name.lower())}")
        self._defined.pop(Catalog.key(database, name), None)
        return self.catalog.remove(database, name)

    def table_location(self, database: str, name: str) -> str | None:
        t = self.catalog.get(database, name)
        return t.location if t else None

    def row_count(self, database: str, name: str) -> int:
        t = self._table(database, name)
        with _user_interrupt():
            self._view(t)
            return int(self.con.execute(f"SELECT count(*) FROM {_q(t.database)}.{_q(t.name)}").fetchone()[0])

    def set_threads(self, threads: int | None) -> None:
        threads = threads or self.threads  # None: back to what the engine was made with
        # `threads` is the database's setting, set here through a cursor of its own: a container task starts
        # while a Parallel branch's statement holds the connection, which refuses a second call meanwhile.
        cur = self.con.cursor()
        try:
            cur.execute(f"SET threads = {int(threads)}" if threads else "RESET threads")
        finally:
            cur.close()

    def interrupt(self) -> None:
        """Stop the statement running now, from another thread (the run was stopped)."""
        self.con.interrupt()

    def close(self) -> None:
        self.con.close()

    # --- statements
    def _select(self, st: Statement) -> dict:
        self._views(st)
        cur = self.con.execute(st.duckdb_sql())
        return {"columns": [d[0] for d in cur.description], "rows": cur.fetchall()}

    def _ctas(self, st: Statement) -> dict:
        if self.catalog.get(st.database, st.table):
            if st.if_exists:
                return {"table": st.qualified}
            raise QueryError(f"{st.qualified}: AlreadyExistsException: table already exists (drop it first)")
        props = st.properties
        fmt = str(props.get("format", "parquet")).lower()
        if fmt != "parquet":
            raise QueryError(f"{st.qualified}: format {fmt.upper()}: the local engine writes PARQUET only")
        compression = str(props.get("write_compression", "snappy")).lower()
        if compression not in _COMPRESSION:
            raise QueryError(f"{st.qualified}: write_compression {compression.upper()} is not one of "
                             f"{', '.join(c.upper() for c in _COMPRESSION)}")
        location = self._local(st.location or str(self.warehouse / "_default" / st.database / st.table), st.qualified)
        if files(Path(location)):
            raise QueryError(f"{st.qualified}: HIVE_PATH_ALREADY_EXISTS: Target directory for table '{st.qualified}' "
                             f"already exists: {location} (a CTAS external_location must be empty)")
        partitioned_by = list(props.get("partitioned_by") or [])
        bucketed_by = [str(c).lower() for c in props.get("bucketed_by") or []]
        bucket_count = props.get("bucket_count")
        if bool(bucketed_by) != bool(bucket_count):
            raise QueryError(f"{st.qualified}: bucketed_by and bucket_count go together")
        if bucket_count and int(bucket_count) > MAX_WRITERS:
            raise self._too_many(st.qualified, int(bucket_count), "buckets")
        self._views(st)
        query = st.duckdb_sql()
        columns = self._describe(query)
        names = [c for c, _ in columns]
        missing = [c for c in partitioned_by + bucketed_by if c not in names]
        if missing:
            raise QueryError(f"{st.qualified}: column {missing[0]} of the table properties is not in the SELECT list "
                             f"({', '.join(names)})")
        if partitioned_by and names[-len(partitioned_by):] != partitioned_by:
            raise QueryError(f"{st.qualified}: HIVE_COLUMN_ORDER_MISMATCH: partition columns "
                             f"{', '.join(partitioned_by)} must be the last columns of the SELECT list, in that order")
        table = Table(st.database, st.table, location, columns, partitioned_by, bucketed_by,
                      int(bucket_count) if bucket_count else None, "parquet", compression,
                      {k: str(v) for k, v in props.items() if k not in ("partitioned_by", "bucketed_by")})
        rows, writers = self._write(table, query)
        self.catalog.put(table)
        return {"rows_written": rows, "writers": writers, "table": st.qualified}

    def _insert(self, st: Statement) -> dict:
        table = self._table(st.database, st.table)
        if table.bucketed_by:
            raise QueryError(f"{table.key}: NOT_SUPPORTED: INSERT INTO a bucketed table; Athena cannot add rows to "
                             f"bucketed tables (write the table in one CTAS, or partition it instead)")
        self._views(st)
        query = st.duckdb_sql()
        got = self._describe(query)
        if table.columns is None:
            table.columns = self._describe(f"SELECT * FROM {_q(table.database)}.{_q(table.name)}")
        if len(got) != len(table.columns):
            raise QueryError(f"{table.key}: TYPE_MISMATCH: insert query has {len(got)} columns, "
                             f"the table has {len(table.columns)} ({', '.join(table.column_names)})")
        # Athena matches INSERT INTO columns by position and coerces to the table's types.
        alias = ", ".join(_q(c) for c, _ in table.columns)
        casts = ", ".join(f"CAST({_q(c)} AS {t}) AS {_q(c)}" for c, t in table.columns)
        rows, writers = self._write(table, f"SELECT {casts} FROM ({query}) AS __sk_q({alias})")
        self.catalog.put(table)
        return {"rows_written": rows, "writers": writers, "table": table.key}

    def _external(self, st: Statement) -> dict:
        if self.catalog.get(st.database, st.table):
            if st.if_exists:
                return {"table": st.qualified}
            raise QueryError(f"{st.qualified}: AlreadyExistsException: table already exists (drop it first)")
        fmt = str(st.properties.get("format", "parquet")).lower()
        if fmt != "parquet":
            raise QueryError(f"{st.qualified}: STORED AS {fmt.upper()}: the local engine reads PARQUET only")
        props = {k: str(v) for k, v in st.properties.items() if k != "format"}
        self.catalog.put(Table(st.database, st.table, self._local(st.location, st.qualified),
                               st.columns + st.partition_columns, [c for c, _ in st.partition_columns],
                               properties=props))
        return {"table": st.qualified}

    def _drop(self, st: Statement) -> dict:
        if not self.drop_table(st.database, st.table) and not st.if_exists:
            raise QueryError(f"{st.qualified}: TABLE_NOT_FOUND: table does not exist (use DROP TABLE IF EXISTS)")
        return {"table": st.qualified}

    # --- helpers
    def _table(self, database: str, name: str) -> Table:
        t = self.catalog.get(database, name)
        if t is None:
            raise QueryError(f"{database}.{name}: TABLE_NOT_FOUND: no such table in the local catalog")
        return t

    def _local(self, location: str | None, what: str) -> str:
        for prefix, folder in self.roots.items():
            if location and location.startswith(prefix):
                location = folder.rstrip("/") + "/" + location[len(prefix):]
                break
        if not location or not location.startswith("/"):
            roots = ", ".join(self.roots) or "none given"
            raise QueryError(f"{what}: location {location!r}: the local engine reads and writes local folders, "
                             f"and the pipeline's S3 root ({roots}) as one")
        return location if location.endswith(("/", ".parquet")) else location + "/"

    def _too_many(self, table: str, writers: int, what: str) -> QueryError:
        return QueryError(f"{table}: HIVE_TOO_MANY_OPEN_PARTITIONS: the statement writes {writers} {what}; "
                          f"Athena writes at most {MAX_WRITERS} partition x bucket combinations per CTAS or INSERT INTO")

    def _describe(self, query: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE {query}").fetchall()]

    def _views(self, st: Statement) -> None:
        for db, name in st.source_tables():
            t = self._table(db, name)
            self._view(t, pruning.wanted(st.query, (db, name), t.partitioned_by) if st.query is not None else {})

    def _view(self, t: Table, only: pruning.Values | None = None) -> None:
        """(Re)define the table's view from the files there now: workers add files between statements.
        Unchanged files and table keep the view as it is (binding it reads every file's footer).
        `only`: the partition values the statement reads (pruning.py); the view then lists only the
        files that can hold them (all of them, if none can: the statement's WHERE still decides)."""
        loc = Path(t.location)
        data = listing(loc, ".parquet") if not loc.is_file() else ()
        # Athena reads Parquet columns by name; DuckDB does too, from the first file's schema,
        # which is right only when every file has that schema: else union_by_name.
        by_name = len(data) > 1 and not self.schemas.uniform(self.con, data)
        # Pruned only with the table's columns declared and one schema in all its files: a subset of
        # files could otherwise bind other columns, or other types, than the whole table does.
        if only and data and t.columns is not None and not by_name:
            keep = set(pruning.kept([f.path for f in data], str(loc), t.partitioned_by, only, dict(t.columns)))
            data = tuple(f for f in data if f.path in keep)
        if not data and not loc.is_file():
            if t.columns is None:
                raise DataError(f"{t.key}: no Parquet files under {t.location} (0 rows); the table cannot be read")
            body = "SELECT " + ", ".join(f"CAST(NULL AS {ty}) AS {_q(c)}" for c, ty in t.columns) + " WHERE false"
        else:
            # The files listed, not globbed: a glob would also read hidden ones (see listing.hidden).
            paths = [str(loc)] if loc.is_file() else [f.path for f in data]
            pattern = "[" + ", ".join(_lit(p) for p in paths) + "]"
            types = dict(t.columns or [])
            hive = ", ".join(f"{_q(c)}: {_lit(types.get(c, 'VARCHAR'))}" for c in t.partitioned_by)
            options = "hive_partitioning = true, hive_types = {" + hive + "}" if t.partitioned_by else "hive_partitioning = false"
            if by_name:
                options += ", union_by_name = true"
            select = "*" if t.columns is None else ", ".join(f"CAST({_q(c)} AS {ty}) AS {_q(c)}" for c, ty in t.columns)
            body = f"SELECT {select} FROM read_parquet({pattern}, {options})"
        if self._defined.get(t.key) == (body, data):
            return
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(t.database)}")
        self.con.execute(f"CREATE OR REPLACE VIEW {_q(t.database)}.{_q(t.name)} AS {body}")
        self._defined[t.key] = (body, data)

    def _write(self, table: Table, query: str) -> tuple[int, int]:
        """Write the query's rows as the table's next file set; return (rows, writers)."""
        table.writes += 1
        tmp = self.warehouse / "_tmp" / uuid.uuid4().hex
        tmp.mkdir(parents=True)
        try:
            pattern = f"part{table.writes:05d}_{{i}}"
            options = f"FORMAT parquet, COMPRESSION {_COMPRESSION[table.compression]}"
            parts = list(table.partitioned_by)
            if table.bucketed_by:
                # Stable bucket of each row: DuckDB's hash of the bucket columns, modulo the count.
                query = (f"SELECT *, CAST(hash({', '.join(_q(c) for c in table.bucketed_by)}) % {table.bucket_count} "
                         f"AS INTEGER) AS {_BUCKET} FROM ({query})")
                parts.append(_BUCKET)
            if parts:
                target = str(tmp)
                options += f", PARTITION_BY ({', '.join(_q(c) for c in parts)}), FILENAME_PATTERN {_lit(pattern)}"
            else:
                target = str(tmp / (pattern.format(i=0) + ".parquet"))
            rows = int(self.con.execute(f"COPY ({query}) TO {_lit(target)} ({options})").fetchone()[0])
            # Not listing(): the staging folder's bucket folders (`__sk_bucket=k/`) look hidden.
            files = sorted(f for f in tmp.rglob("*") if f.is_file())
            partitions = {f.parent.relative_to(tmp).parts[: len(table.partitioned_by)] for f in files}
            writers = max(len(partitions), 1) * (table.bucket_count or 1)
            if writers > MAX_WRITERS:
                raise self._too_many(table.key, writers, "partitions" if not table.bucket_count
                                     else f"partition x bucket combinations ({len(partitions)} x {table.bucket_count})")
            if table.bucketed_by:
                _unbucket(files)
            _merge(tmp, Path(table.location))
            return rows, writers if files else 0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _unbucket(files: list[Path]) -> None:
    """Bucket k's files sit beside the partition's other buckets, named by bucket (as Trino does)."""
    for f in files:
        bucket = f.parent
        if bucket.name.startswith(_BUCKET + "="):
            os.replace(f, bucket.parent / f"{int(bucket.name.split('=', 1)[1]):05d}_{f.name}")
            if not any(bucket.iterdir()):
                bucket.rmdir()


def _merge(src: Path, dest: Path) -> None:
    """Move everything under `src` into `dest`. A partition folder `dest` lacks moves whole: one
    rename instead of a mkdir and a rename per file, and no folder left behind to delete."""
    dest.mkdir(parents=True, exist_ok=True)
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        target = dest / entry.name
        if entry.is_dir(follow_symlinks=False) and target.is_dir():
            _merge(Path(entry.path), target)
            continue
        try:
            os.replace(entry.path, target)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            shutil.move(entry.path, target)  # the table lives on another file system than the warehouse
