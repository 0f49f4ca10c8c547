"""What a cleanup payload means, as a plan both executors follow.

The `cleanup` block's payload (see steps/cleanup.py) is executed by the cleanup Lambda on AWS
(Glue + S3 through boto3) and by `stepkit run --local` (local catalog + folders). Both turn the
payload into the same plan here, so the two cannot drift.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    database: str
    drop: list[str]  # table names to drop from the catalog
    delete: list[str]  # location prefixes (ending in "/") whose files to delete


def plan(payload: dict[str, Any], root: str) -> Plan:
    """Read a payload. Every delete stays under `root`'s `tables/` folder, whatever the payload says."""
    run_id = payload.get("run_id") or ""
    scope = payload.get("scope", "run")
    if scope not in ("run", "all"):
        raise ValueError(f"cleanup scope {scope!r}: expected 'run' or 'all'")
    if scope == "run" and (not run_id or "/" in run_id or run_id in (".", "..")):
        raise ValueError(f"cleanup of one run needs a plain run id, got {run_id!r}")
    tables_root = root.rstrip("/") + "/tables/"
    drop, delete = [], []
    for t in payload.get("tables", []):
        name, location = t["name"], t["location"]
        if t.get("drop", True):  # False: its files go, the table stays (another stage declared it)
            drop.append(name)
        if not t.get("delete_data"):
            continue
        if not location.endswith("/"):
            location += "/"
        # Refuse anything outside the pipeline's own tables (a hand-edited payload, a bad root). On
        # local disk `tables/./` and `tables//x` name the folder of every table: no `.`, `..` or
        # empty segment either.
        inside = location[len(tables_root):-1].split("/") if location.startswith(tables_root) else [""]
        if any(part in ("", ".", "..") for part in inside):
            raise ValueError(f"cleanup refuses {location!r}: outside {tables_root}")
        delete.append(location if scope == "all" else f"{location}{run_id}/")
    return Plan(payload["database"], drop, delete)
