"""Every rendered statement must parse as exactly one Athena statement (sqlglot).

Importing sqlglot's Athena dialect costs ~0.15 s and the parses ~0.04 s: a third of a
compile. `Background` runs the same check in a child interpreter, started before the spec is
loaded, so the import happens on the second core while this one loads pydantic and the spec;
statements stream to the child as they are rendered and the verdicts come back at the end.
The verdicts are those of `check()`, which is also the fallback whenever the child cannot
start or answer: no check is skipped, only moved.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Protocol

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
    return None


class Checker(Protocol):
    def submit(self, text: str) -> None: ...

    def results(self) -> list[str | None]: ...

    def close(self) -> None: ...


class InProcess:
    """Parse here, when the verdicts are asked for."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def submit(self, text: str) -> None:
        self.texts.append(text)

    def results(self) -> list[str | None]:
        return [check(t) for t in self.texts]

    def close(self) -> None:
        pass


class Background(InProcess):
    """Parse in a child interpreter started now (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._proc: subprocess.Popen[str] | None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
            )
        except OSError:
            self._proc = None

    def submit(self, text: str) -> None:
        super().submit(text)
        if self._proc is None:
            return
        try:
            self._proc.stdin.write(json.dumps(text) + "\n")  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            self.close()

    def results(self) -> list[str | None]:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                out, _ = proc.communicate(timeout=CHILD_TIMEOUT_SECONDS)
                verdicts = json.loads(out) if proc.returncode == 0 else None
                if isinstance(verdicts, list) and len(verdicts) == len(self.texts):
                    return verdicts
            except (OSError, ValueError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        return super().results()

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
