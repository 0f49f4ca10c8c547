"""Where stepkit keeps what it may reuse between runs, and when it may not.

Each cache lives in a folder named for everything its entries depend on besides their own key,
so a new library version or setting starts an empty folder instead of reading stale entries.
STEPKIT_NO_CACHE=1 turns every cache off (the benchmark's cold runs, debugging).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def folder(kind: str, *depends_on: object) -> Path | None:
    """`<cache home>/stepkit/<kind>-<hash of depends_on>`, or None when caching is off or impossible."""
    if os.environ.get("STEPKIT_NO_CACHE"):
        return None
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory
        return None
    key = hashlib.sha256(repr(depends_on).encode()).hexdigest()[:16]
    return base / "stepkit" / f"{kind}-{key}"
