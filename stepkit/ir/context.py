"""What a block sees while compiling: the pipeline, its names, and SQL rendering."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from stepkit.ir import sql as sqlmod
from stepkit.ir.names import RUN_ID, Names
from stepkit.spec.pipeline import Pipeline


@dataclass
class Context:
    pipeline: Pipeline
    file: Path = Path("pipeline.yaml")
    extra_template_dirs: list[Path] = field(default_factory=list)
    # A local run's warehouse folder; None on AWS (see Names.root_override).
    root: str | None = None
    # Rendered SQL by (template, where, extra): blocks ask for the same statement from sql() and
    # fragment(); the pipeline is frozen, so a second render would give the same text.
    _rendered: dict[tuple[str, str, str], str] = field(default_factory=dict, repr=False, compare=False)
    # Table keys each render looked up in `tables` / `locations`: what the statement reads or writes.
    _used: dict[tuple[str, str, str], frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def names(self) -> Names:
        return Names(self.pipeline, self.root)

    @property
    def p(self) -> Pipeline:
        return self.pipeline

    @cached_property
    def template_dirs(self) -> list[str]:
        extra = list(self.extra_template_dirs)
        if self.p.templates:
            extra.insert(0, (self.file.parent / self.p.templates).resolve())
        return sqlmod.template_dirs(extra)

    @property
    def batch_groups(self) -> int:
        """Groups of at most 100 batches: one Athena statement writes one group's partitions."""
        return math.ceil(self.p.batching.batches / sqlmod.MAX_WRITERS)

    def table(self, key: str) -> str:
        """Qualified Athena name of a table key."""
        return f"{self.p.aws.database}.{self.p.tables.names()[key]}"

    def template_context(self, **extra: Any) -> dict[str, Any]:
        p = self.p
        ctx = {
            "p": p,
            "source": p.source,
            "source_table": sqlmod.sql_identifier(p.source.database or p.aws.database) + "."
                            + sqlmod.sql_identifier(p.source.table),
            "target": p.target,
            "features": p.features,
            "tables": _Recorder({k: self.table(k) for k in p.tables.names()}),
            "locations": _Recorder({k: self.names.table_location(k) for k in p.tables.names()}),
            "database": p.aws.database,
            "batches": p.batching.batches,
            "batch_groups": self.batch_groups,
            "sample": p.sample,
            "run_id": RUN_ID,
            "chunk": None,
        }
        ctx.update(extra)
        return ctx

    def render(self, template: str, where: str, **extra: Any) -> str:
        key = (template, where, repr(sorted(extra.items())))
        if key not in self._rendered:
            context = self.template_context(**extra)
            self._rendered[key] = sqlmod.render(template, context, self.template_dirs, where)
            self._used[key] = frozenset(context["tables"].used | context["locations"].used)
        return self._rendered[key]

    def tables_used(self, template: str, where: str, **extra: Any) -> frozenset[str]:
        """The table keys a template's statement names (rendered first if need be)."""
        self.render(template, where, **extra)
        return self._used[(template, where, repr(sorted(extra.items())))]


class _Recorder(dict):
    """A dict that remembers which keys a template read (the template's tables, for the data flow)."""

    def __init__(self, data: dict[str, str]):
        super().__init__(data)
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.used.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            self.used.add(key)
        return super().get(key, default)

    def __iter__(self):  # a template that walks every table uses every table
        self.used.update(self.keys())
        return super().__iter__()

    def items(self):  # type: ignore[override]
        self.used.update(self.keys())
        return super().items()

    def values(self):  # type: ignore[override]
        self.used.update(self.keys())
        return super().values()
