"""Jinja rendering of the Athena SQL templates, and the checks every statement passes."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from stepkit.ir import jinja_cache
from stepkit.ir.names import RUN_ID
from stepkit.errors import SpecError
from stepkit.spec.reserved import reserved

# The templates live in the repository's templates/sql/, which a built wheel installs as
# stepkit/templates/sql/ (pyproject.toml). An installed wheel has that copy and no checkout beside
# it; an editable install has the checkout and no copy: the one that exists is the place.
_PACKAGED = Path(__file__).resolve().parents[1] / "templates" / "sql"
_BUILTIN_DIRS = [_PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "templates" / "sql"]

# Athena accepts at most this many partition x bucket writers per CTAS or INSERT INTO
# (HIVE_TOO_MANY_OPEN_PARTITIONS; docs: ctas-considerations-limitations).
MAX_WRITERS = 100


@dataclass(frozen=True)
class SqlStatement:
    """One Athena statement. `sql` may hold RUN_ID inside string literals."""

    name: str  # file stem under sql/, e.g. "EvaluationFeatures" or "EvaluationFeatures.03"
    stage: str
    kind: str  # "ctas", "insert", "ddl", "query"
    sql: str
    table: str | None = None  # the table key written, if any

    def text(self, run_id: str = RUN_ID) -> str:
        return self.sql.replace(RUN_ID, run_id)


def sql_string(value: Any) -> str:
    """A SQL string literal: single quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A name in a query, double-quoted when Athena reserves the word (the source's table and
    columns: the user cannot rename them). Names stepkit creates are refused instead (spec/names.py)."""
    return f'"{name}"' if reserved(name) else name


def sql_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def template_dirs(extra: list[Path] | None = None) -> list[str]:
    return [str(d) for d in (extra or []) + _BUILTIN_DIRS if d.is_dir()]


@lru_cache(maxsize=8)
def environment(dirs: tuple[str, ...]) -> jinja2.Environment:
    settings = {"undefined": "strict", "autoescape": False, "keep_trailing_newline": True,
                "trim_blocks": True, "lstrip_blocks": True}
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(dirs)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=jinja_cache.bytecode_cache(settings),
    )
    env.filters["sql_string"] = sql_string
    env.filters["sql_number"] = sql_number
    env.filters["ident"] = sql_identifier
    return env


class TemplateError(SpecError):
    """A template that cannot render for this pipeline; `build()` locates it at the stage's `template`."""

    def __init__(self, where: str, detail: str):
        self.where = where
        self.detail = detail
        super().__init__(f"{where}: {detail}")


def render(template: str, context: dict[str, Any], dirs: list[str], where: str) -> str:
    env = environment(tuple(dirs))
    try:
        text = env.get_template(template).render(**context)
    except jinja2.TemplateNotFound:
        raise TemplateError(where, f"template {template!r} not found in "
                            f"{', '.join(dirs) or '(no template folder)'}") from None
    except jinja2.UndefinedError as e:
        raise TemplateError(where, f"template {template}: {e.message}") from None
    except jinja2.TemplateSyntaxError as e:
        raise SpecError(f"{e.filename or template}:{e.lineno}:1: template syntax: {e.message}") from None
    except TypeError as e:
        raise TemplateError(where, f"template {template}: {e}") from None
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"

