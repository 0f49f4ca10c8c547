"""What a block sees while compiling: the pipeline, its names, and SQL rendering."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2

from stepkit.ir import sql as sqlmod
from stepkit.ir.names import RUN_ID, Names
from stepkit.spec.columns import Columns
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

    def template_context(self, roles: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        """What a template sees. `roles`: the stage's role -> table key map (`tables.ROLE` is that table).
        A section the pipeline leaves out (target, features, sample, batching) is there as an undefined
        value that names the section when the template uses it."""
        p = self.p
        targets = p.target_list
        keys = p.tables.names()
        ctx = {
            "p": p,
            "source": p.source,
            "source_table": sqlmod.sql_identifier(p.source.database or p.aws.database) + "."
                            + sqlmod.sql_identifier(p.source.table),
            "target": targets[0] if len(targets) == 1 else _missing(
                "target", "the pipeline lists several `targets`: the template names them as `targets`"
                if targets else "the pipeline has no `target`"),
            "targets": targets or _missing("targets", "the pipeline has no `target`"),
            "columns": Columns(targets),
            "features": p.features or _missing("features", "the pipeline has no `features`"),
            "tables": _Recorder({k: self.table(k) for k in keys}, roles),
            "locations": _Recorder({k: self.names.table_location(k) for k in keys}, roles),
            "database": p.aws.database,
            "batches": p.batching.batches if p.batching else _missing("batches", "the pipeline has no `batching`"),
            "batch_groups": self.batch_groups if p.batching else _missing("batch_groups",
                                                                           "the pipeline has no `batching`"),
            "sample": p.sample or _missing("sample", "the pipeline has no `sample`"),
            "run_id": RUN_ID,
            "chunk": None,
        }
        ctx.update(extra)
        return ctx

    def render(self, template: str, where: str, roles: dict[str, str] | None = None, **extra: Any) -> str:
        key = (template, where, repr(sorted((roles or {}).items())), repr(sorted(extra.items())))
        if key not in self._rendered:
            context = self.template_context(roles, **extra)
            self._rendered[key] = sqlmod.render(template, context, self.template_dirs, where)
            self._used[key] = frozenset(context["tables"].used | context["locations"].used)
        return self._rendered[key]

    def tables_used(self, template: str, where: str, roles: dict[str, str] | None = None,
                    **extra: Any) -> frozenset[str]:
        """The table keys a template's statement names (rendered first if need be)."""
        self.render(template, where, roles, **extra)
        return self._used[(template, where, repr(sorted((roles or {}).items())), repr(sorted(extra.items())))]


def _missing(name: str, why: str) -> Any:
    return jinja2.StrictUndefined(hint=f"{why} (the template uses `{name}`)", name=name)


class _Recorder(dict):
    """A dict that remembers which keys a template read (the template's tables, for the data flow).
    `roles`: names the template uses that stand for another key (the stage's `roles`)."""

    def __init__(self, data: dict[str, str], roles: dict[str, str] | None = None):
        super().__init__(data)
        self.roles = dict(roles or {})
        self.used: set[str] = set()

    def __getitem__(self, name: str) -> str:
        key = self.roles.get(name, name)
        if not super().__contains__(key):
            # Raised as Jinja's own error: the build locates it at the stage's `template`.
            mapped = f" (the stage's roles map {name!r} to {key!r})" if key != name else ""
            raise jinja2.UndefinedError(f"no table {key!r} in `tables`{mapped}: add it to `tables`, or map the "
                                        f"role with the stage's `roles: {{{name}: KEY}}` (keys: "
                                        f"{', '.join(dict.keys(self)) or 'none'})")
        self.used.add(key)
        return super().__getitem__(key)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(self.roles.get(name, name))  # type: ignore[arg-type]

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __iter__(self):  # a template that walks every table uses every table
        self.used.update(self.keys())
        return super().__iter__()

    def items(self):  # type: ignore[override]
        self.used.update(self.keys())
        return super().items()

    def values(self):  # type: ignore[override]
        self.used.update(self.keys())
        return super().values()
