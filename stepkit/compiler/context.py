"""What a block sees while compiling: the pipeline, its names, and SQL rendering."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from stepkit.compiler import sql as sqlmod
from stepkit.compiler.names import RUN_ID, Names
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
            "tables": {k: self.table(k) for k in p.tables.names()},
            "locations": {k: self.names.table_location(k) for k in p.tables.names()},
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
            self._rendered[key] = sqlmod.render(template, self.template_context(**extra), self.template_dirs, where)
        return self._rendered[key]
