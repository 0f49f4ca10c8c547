"""S3 lifecycle rules for the pipeline's scratch folders, written by `stepkit deploy`.

The bucket is the user's, not the stack's, so the rules cannot be a template resource: deploy reads
the bucket's lifecycle configuration, replaces the rules it owns (IDs `stepkit:PREFIX:...`) and puts
it back with every other rule unchanged. PutBucketLifecycleConfiguration replaces the whole
configuration, so a rule of the user's is never dropped only because it is carried over here.

What expires (spec `retention`): athena-results/, map-results/, and the folders of the tables a
cleanup stage deletes (a successful run removes its own at its end; these take what failed runs
leave, after the 14 days a redrive may still need them); runs/ (models, metrics, a task's files)
only when `retention.runs_days` says so: a re-score reads an earlier run's model from there. Incomplete multipart uploads under the
prefix (a failed CTAS can leave them) are aborted after a week. The final results are never touched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ABORT_UPLOADS_DAYS = 7
FAILED_RUN_DAYS_LEAST = 15  # retention.failed_run_days' least value


def rule_id(pipeline: Any, what: str) -> str:
    return f"stepkit:{pipeline.resource_prefix}:{what}"


def _expire(pipeline: Any, what: str, prefix: str, days: int) -> dict[str, Any]:
    return {"ID": rule_id(pipeline, what), "Filter": {"Prefix": prefix}, "Status": "Enabled",
            "Expiration": {"Days": days}}


def scratch_tables(pipeline: Any) -> list[str]:
    """Table keys some cleanup deletes the files of (a stage's delete_data, or on_failure's)."""
    keys = set(pipeline.on_failure.delete_data)
    for stage in pipeline.stages:
        keys |= set(getattr(stage, "delete_data", None) or [])
    return sorted(keys)


def wanted(pipeline: Any) -> list[dict[str, Any]]:
    """The rules stepkit owns for this pipeline, in a stable order."""
    root = pipeline.aws.prefix + "/"
    r = pipeline.retention
    names = pipeline.tables.names()
    rules = [
        _expire(pipeline, "athena-results", f"{root}athena-results/", r.athena_results_days),
        _expire(pipeline, "map-results", f"{root}map-results/", r.map_results_days),
        *([_expire(pipeline, "runs", f"{root}runs/", r.runs_days)] if r.runs_days else []),
        *[_expire(pipeline, f"tables/{names[k]}", f"{root}tables/{names[k]}/", r.failed_run_days)
          for k in scratch_tables(pipeline)],
        {"ID": rule_id(pipeline, "incomplete-uploads"), "Filter": {"Prefix": root}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_DAYS}},
    ]
    return rules


def merge(existing: list[dict[str, Any]], ours: list[dict[str, Any]], pipeline: Any) -> list[dict[str, Any]]:
    """Every rule that is not this pipeline's, as it was, then this pipeline's."""
    mine = rule_id(pipeline, "")
    return [r for r in existing if not str(r.get("ID", "")).startswith(mine)] + ours


@dataclass
class Plan:
    existing: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    extra: dict[str, Any]  # other top-level settings of the configuration, put back as they were

    @property
    def changed(self) -> bool:
        return _normal(self.existing) != _normal(self.rules)

    def summary(self, pipeline: Any) -> str:
        mine = rule_id(pipeline, "")
        before = {r["ID"]: r for r in self.existing if str(r.get("ID", "")).startswith(mine)}
        after = {r["ID"]: r for r in self.rules if r["ID"].startswith(mine)}
        added = sorted(set(after) - set(before))
        changed = sorted(k for k in set(after) & set(before) if _normal([after[k]]) != _normal([before[k]]))
        removed = sorted(set(before) - set(after))
        kept = len(self.rules) - len(after)
        parts = [f"{len(x)} {word}" for x, word in ((added, "added"), (changed, "changed"), (removed, "removed")) if x]
        return (f"lifecycle rules of s3://{pipeline.aws.bucket}: " + (", ".join(parts) or "up to date")
                + f" ({kept} other rule{'s' if kept != 1 else ''} kept as they are)")


def _normal(rules: list[dict[str, Any]]) -> list[str]:
    import json

    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rules)


def plan(s3: Any, pipeline: Any) -> Plan:
    from botocore.exceptions import ClientError

    from stepkit.aws.session import explain

    try:
        current = s3.raw.get_bucket_lifecycle_configuration(Bucket=pipeline.aws.bucket)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise explain(e, "s3:GetLifecycleConfiguration") or e from None
        current = {}
    existing = current.get("Rules", [])
    extra = {k: current[k] for k in ("TransitionDefaultMinimumObjectSize",) if k in current}
    return Plan(existing, merge(existing, wanted(pipeline), pipeline), extra)


def apply(s3: Any, pipeline: Any, p: Plan) -> None:
    if p.changed:
        s3.put_bucket_lifecycle_configuration(Bucket=pipeline.aws.bucket, LifecycleConfiguration={"Rules": p.rules},
                                              **p.extra)


def expiry(s3: Any, bucket: str, folders: list[str]) -> tuple[int, str] | None:
    """(days, prefix) of the enabled rule of `bucket` that expires files under one of `folders` (keys ending
    in '/') soonest: a rule whose prefix holds such a folder or lies within one. None when no rule does. A
    configuration that cannot be read counts as stepkit's own rules at their shortest (15 days)."""
    from botocore.exceptions import ClientError

    try:
        rules = s3.raw.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "NoSuchLifecycleConfiguration":
            return None
        return FAILED_RUN_DAYS_LEAST, f"{folders[0]} (its lifecycle rules could not be read: {code})"
    found = []
    for r in rules:
        days = (r.get("Expiration") or {}).get("Days")
        where = r.get("Filter") or {}
        where = where.get("And", where)
        if r.get("Status") != "Enabled" or not days or where.get("Tag") or where.get("Tags"):
            continue  # stepkit's files carry no tags
        prefix = where.get("Prefix", r.get("Prefix", ""))
        if any(f.startswith(prefix) or prefix.startswith(f) for f in folders):
            found.append((days, prefix))
    return min(found) if found else None
