"""The local engine's table catalog: what Glue holds on AWS, as one JSON file in the warehouse.

Written atomically (temporary file + rename) so a crash mid-write leaves the previous catalog,
and with sorted keys so two runs that did the same work leave the same file.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

CATALOG_FILE = "_catalog.json"


@dataclass
class Table:
    database: str
    name: str
    location: str  # local folder, absolute, ending in "/"
    columns: list[tuple[str, str]] | None = None  # (name, DuckDB type), partition columns last; None: read from files
    partitioned_by: list[str] = field(default_factory=list)
    bucketed_by: list[str] = field(default_factory=list)
    bucket_count: int | None = None
    format: str = "parquet"
    compression: str = "snappy"
    properties: dict[str, str] = field(default_factory=dict)  # TBLPROPERTIES, e.g. partition projection
    writes: int = 0  # statements that wrote files; numbers the files so a later INSERT never overwrites

    @property
    def key(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns or []]


class Catalog:
    def __init__(self, warehouse: Path):
        self.path = Path(warehouse) / CATALOG_FILE
        self.tables: dict[str, Table] = {}
        if self.path.exists():
            raw = json.loads(self.path.read_text())
            for key, t in raw.get("tables", {}).items():
                cols = t.get("columns")
                t["columns"] = [tuple(c) for c in cols] if cols is not None else None
                self.tables[key] = Table(**t)

    @staticmethod
    def key(database: str, name: str) -> str:
        # Athena identifiers are case-insensitive; Glue stores them lower-case.
        return f"{database.lower()}.{name.lower()}"

    def get(self, database: str, name: str) -> Table | None:
        return self.tables.get(self.key(database, name))

    def put(self, table: Table) -> None:
        table.database, table.name = table.database.lower(), table.name.lower()
        self.tables[table.key] = table
        self.save()

    def remove(self, database: str, name: str) -> bool:
        found = self.tables.pop(self.key(database, name), None) is not None
        if found:
            self.save()
        return found

    def save(self) -> None:
        data = {"tables": {k: asdict(t) for k, t in sorted(self.tables.items())}}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)
