"""Compiled SQL templates kept on disk between runs: Jinja's parse and code generation are a
fifth of a compile, and the templates rarely change.

Correct across processes because every input of the compiled code is in the key: Jinja
itself compares a checksum of the template source on load (a changed template recompiles),
and the folder is named for the rest (Jinja and Python versions, the environment's settings).
Writes go to a temporary file renamed into place, and an unreadable entry is recompiled, so
parallel compiles (pytest -n, CI) never read half a file. STEPKIT_NO_CACHE=1 turns it off.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jinja2
from jinja2.bccache import Bucket

from stepkit import cache


def folder(settings: dict[str, Any]) -> Path | None:
    """Where compiled templates with these settings live, or None when caching is off or impossible."""
    return cache.folder("jinja", jinja2.__version__, sys.version, sorted(settings.items()))


class DiskCache(jinja2.BytecodeCache):
    def __init__(self, path: Path):
        self.path = path

    def _file(self, bucket: Bucket) -> Path:
        return self.path / f"{bucket.key}.cache"

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            with open(self._file(bucket), "rb") as f:
                bucket.load_bytecode(f)  # resets itself on a checksum or version mismatch
        except FileNotFoundError:
            pass
        except Exception:  # truncated or foreign (pickle, marshal and OS errors alike): compile again
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        target = self._file(bucket)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                bucket.write_bytecode(f)
            os.replace(tmp, target)
        except OSError:
            tmp.unlink(missing_ok=True)  # a read-only home: no cache, same result


def bytecode_cache(settings: dict[str, Any]) -> DiskCache | None:
    path = folder(settings)
    return DiskCache(path) if path else None
