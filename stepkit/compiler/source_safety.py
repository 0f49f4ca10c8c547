"""A pipeline must not write or delete its own source.

Every run drops and rewrites the pipeline's tables (PreCleanup, the CTAS stages) and writes and
deletes files under `s3://BUCKET/PREFIX/`: tables/ (cleanups delete there), runs/ (models),
map-results/ (the fan-out's results), athena-results/ (query results), stepkit/ (what deploy
uploads, replaced on every deploy). A source that is one of those tables, or whose location
shares any of that folder, would be lost or mixed with the pipeline's own output.

S3 keys are compared as written: S3 does not normalise `.`, `..` or `//` in a key.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from stepkit.steps.base import Finding

if TYPE_CHECKING:
    from stepkit.ir.context import Context


def check(ctx: "Context") -> list[Finding]:
    """Findings located from the top of the file (source.table, source.location)."""
    p = ctx.p
    found = []
    database = p.source.database or p.aws.database
    if database == p.aws.database:
        for key, name in p.tables.names().items():
            if name == p.source.table:
                found.append(Finding("error", ("source", "table"), f"the source {database}.{name} is the pipeline's own table "
                                     f"`tables.{key}`, which every run drops and rewrites: read the source from a "
                                     "table the pipeline does not write", root=True))
    root = f"s3://{p.aws.bucket}/{p.aws.prefix}/"  # the AWS root, also when a local run compiles
    location = p.source.location
    if location.startswith(root):
        found.append(Finding("error", ("source", "location"), f"{location} lies under the pipeline's own {root}, "
                             "where every run writes and deletes files (tables/, runs/, map-results/, "
                             "athena-results/, stepkit/): keep the source outside aws.prefix", root=True))
    elif root.startswith(location):
        found.append(Finding("error", ("source", "location"), f"{location} holds the pipeline's own {root} "
                             "(aws.bucket and aws.prefix): every run would write and delete files inside the "
                             "source's location; choose an aws.prefix outside it", root=True))
    return found
