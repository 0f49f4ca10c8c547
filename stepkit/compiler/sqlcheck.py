"""Every rendered statement must parse as exactly one Athena statement (sqlglot).

Importing sqlglot's Athena dialect costs ~0.15 s and the parses ~0.05 s: a third of a compile.
Two things keep that off a compile's critical path without skipping any statement:

- `Verdicts`: a statement sqlglot has read once is remembered on disk. A verdict depends only
  on the text, sqlglot's version and `check()` (this file), so entries are keyed by a hash of
  the text in a folder named for the other two. Only passes are kept: a failing statement is
  parsed again every time, for its message.
- `Background`: the statements not remembered are parsed in a child interpreter, started when
  compile starts, so sqlglot loads on the second core while this one loads the spec. When the
  last compile of the same file needed no parse, the child is started only at the first
  statement not remembered (a guess that is only about speed: nothing is skipped either way).

`check()` is also the fallback whenever the child cannot start or answer.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from stepkit.spec.reserved import DDL, QUERY

# What `${run_id}` becomes while parsing: any plain identifier-like text would do.
SAMPLE_RUN_ID = "run_0000"
# A child that has not answered by then is presumed stuck; the parse is redone here.
CHILD_TIMEOUT_SECONDS = 120


def check(text: str) -> str | None:
    """None when sqlglot reads exactly one Athena statement from `text`, else why not."""
    import sqlglot  # imported here: only the checker pays for it
    from sqlglot.errors import ParseError, SqlglotError

    try:
        trees = [t for t in sqlglot.parse(text, read="athena") if t is not None]
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        return f"does not parse as Athena SQL: {first.get('description', str(e))} (line {first.get('line', '?')})"
    except SqlglotError as e:  # the tokenizer's (an unclosed quote), which is not a ParseError
        return f"does not parse as Athena SQL: {str(e).splitlines()[0]}"
    if len(trees) != 1:
        return f"holds {len(trees)} statements; Athena runs exactly one per query"
    return refusal(trees[0])


def refusal(tree) -> str | None:
    """What Athena refuses in a statement sqlglot reads, or None: a reserved word as a bare
    identifier (sqlglot reads `x AS order`; Athena does not), partition columns that are not the
    SELECT's last (Athena fails the CTAS). The local engine asks the same (engines/transpile.py)."""
    return _reserved_identifier(tree) or _partition_order(tree)


def _is_ddl(tree) -> bool:
    """Athena runs these with Hive's grammar (backticks); queries and CTAS with Trino's (double quotes)."""
    from sqlglot import exp

    if isinstance(tree, exp.Create):
        return tree.expression is None
    return isinstance(tree, (exp.Drop, exp.Alter, exp.Describe))


def _reserved_identifier(tree) -> str | None:
    from sqlglot import exp

    ddl = _is_ddl(tree)
    words, kind, quote = (DDL, "DDL", "`{}`") if ddl else (QUERY, "queries", '"{}"')
    for ident in tree.find_all(exp.Identifier):
        if not ident.quoted and ident.name.upper() in words:
            return (f"does not run on Athena: {ident.name!r} is a reserved word in Athena {kind}; "
                    f"quote it as {quote.format(ident.name)} or choose another name")
    return None


def _partition_order(tree) -> str | None:
    from sqlglot import exp

    if not isinstance(tree, exp.Create) or tree.expression is None:
        return None
    props = tree.args.get("properties")
    columns: dict[str, list[str]] = {}
    for p in props.expressions if props else []:
        if isinstance(p, exp.PartitionedByProperty) and isinstance(p.this, exp.Array):
            columns["partitioned_by"] = [e.name.lower() for e in p.this.expressions]
        elif isinstance(p, exp.Property) and p.name.lower() == "bucketed_by" and isinstance(p.args.get("value"), exp.Array):
            columns["bucketed_by"] = [e.name.lower() for e in p.args["value"].expressions]
    query = tree.expression
    while isinstance(query, exp.SetOperation):  # a UNION's columns are its first SELECT's
        query = query.this
    if not columns or not isinstance(query, exp.Select) or query.is_star:
        return None
    names = [n.lower() for n in query.named_selects]
    for prop, wanted in columns.items():
        missing = [c for c in wanted if c not in names]
        if missing:
            return (f"does not run on Athena: column {missing[0]} of the table properties is not in the SELECT "
                    f"list ({', '.join(names)}); {prop} names it")
    parts = columns.get("partitioned_by", [])
    if parts and names[-len(parts):] != parts:
        return (f"does not run on Athena: HIVE_COLUMN_ORDER_MISMATCH: partition columns {', '.join(parts)} must be "
                f"the last columns of the SELECT list, in that order (it ends with {', '.join(names[-len(parts):])})")
    return None


class Verdicts:
    """Statements that passed `check()` before (see the module docstring)."""

    def __init__(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        from stepkit import cache

        try:
            sqlglot_version = version("sqlglot")
        except PackageNotFoundError:  # no version to key on: remember nothing
            self.path = None
            return
        # Verdicts depend on this file and on the reserved words it checks for.
        reserved = Path(__file__).parents[1] / "spec" / "reserved.py"
        self.path = cache.folder("sqlcheck", sqlglot_version, Path(__file__).read_bytes(), reserved.read_bytes())

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def passed(self, key: str) -> bool:
        return self.path is not None and (self.path / key[:2] / key).exists()

    def remember(self, keys: list[str]) -> None:
        if self.path is None:
            return
        try:
            for key in keys:
                (self.path / key[:2]).mkdir(parents=True, exist_ok=True)
                (self.path / key[:2] / key).touch()  # an empty marker: nothing to read half-written
        except OSError:
            pass  # a read-only cache: the next compile parses again

    def hint(self, name: str) -> Path | None:
        return self.path / "last" / self.key(name) if self.path is not None else None


class InProcess:
    """Parse here, when the verdicts are asked for; remembered passes are not parsed again."""

    def __init__(self) -> None:
        self.verdicts = Verdicts()
        self.keys: list[str] = []
        self.known: list[bool] = []
        self.pending: list[str] = []  # texts not remembered, in order

    def submit(self, text: str) -> None:
        key = Verdicts.key(text)
        self.keys.append(key)
        self.known.append(self.verdicts.passed(key))
        if not self.known[-1]:
            self.pending.append(text)

    def _parse_pending(self) -> list[str | None]:
        return [check(t) for t in self.pending]

    def results(self) -> list[str | None]:
        parsed = iter(self._parse_pending())
        out = [None if known else next(parsed) for known in self.known]
        self.verdicts.remember([k for k, known, v in zip(self.keys, self.known, out) if not known and v is None])
        return out

    def close(self) -> None:
        pass


Checker = InProcess  # what `build()` accepts: an InProcess or a Background


class Background(InProcess):
    """Parse what is not remembered in a child interpreter (see the module docstring).

    `name` identifies what is compiled (the pipeline file): it keys the guess whether a child
    will be needed at all."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self._proc: subprocess.Popen[str] | None = None
        self._failed = False
        self._hint = self.verdicts.hint(name) if name else None
        if not self._all_remembered_last_time():
            self._start()

    def _all_remembered_last_time(self) -> bool:
        try:
            keys = self._hint.read_text().split() if self._hint else []
        except OSError:
            return False
        return bool(keys) and all(self.verdicts.passed(k) for k in keys)

    def _start(self) -> None:
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
            )
        except OSError:
            self._failed = True

    def submit(self, text: str) -> None:
        super().submit(text)
        if self.known[-1] or self._failed:
            return
        if self._proc is None:
            self._start()
        try:
            self._proc.stdin.write(json.dumps(text) + "\n")  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
        except (OSError, AttributeError):
            self._failed = True
            self.close()

    def _parse_pending(self) -> list[str | None]:
        proc, self._proc = self._proc, None
        if proc is not None and not self._failed:
            try:
                out, _ = proc.communicate(timeout=CHILD_TIMEOUT_SECONDS)
                verdicts = json.loads(out) if proc.returncode == 0 else None
                if isinstance(verdicts, list) and len(verdicts) == len(self.pending):
                    return verdicts
            except (OSError, ValueError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        elif proc is not None:
            proc.kill()
            proc.wait()
        return super()._parse_pending()

    def results(self) -> list[str | None]:
        out = super().results()
        if self._hint is not None:
            try:
                self._hint.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._hint.with_name(f"{self._hint.name}.{os.getpid()}.tmp")
                tmp.write_text("\n".join(self.keys) + "\n")
                tmp.replace(self._hint)
            except OSError:
                pass
        return out

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> None:
    """Child side: warm the dialect up at once, then check one JSON string a line until EOF."""
    import sqlglot.dialects.athena  # noqa: F401  (the expensive import, while the parent loads the spec)

    verdicts = [check(json.loads(line)) for line in sys.stdin if line.strip()]
    # Answered only at EOF: the parent is then reading, so a long answer cannot block on a full pipe.
    sys.stdout.write(json.dumps(verdicts))


if __name__ == "__main__":
    _serve()
