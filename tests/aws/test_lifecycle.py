"""S3 lifecycle rules for the scratch folders: deploy merges them into the bucket's configuration (moto)."""
from __future__ import annotations

import boto3
import pytest

from stepkit.aws import lifecycle
from tests.aws.conftest import BUCKET, REGION
from tests.aws.test_deploy import deploy
from tests.aws.variants import write_variant

USER_RULE = {"ID": "archive-kb", "Filter": {"Prefix": "kb/"}, "Status": "Enabled",
             "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}
PREFIX = "stepkit:ai-agent-predict-age:"


def rules() -> dict[str, dict]:
    s3 = boto3.client("s3", region_name=REGION)
    return {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]}


def expiry(rule: dict) -> tuple[str, int | None]:
    return rule["Filter"]["Prefix"], rule.get("Expiration", {}).get("Days")


def test_deploy_adds_its_rules_and_keeps_the_users(aws):
    boto3.client("s3", region_name=REGION).put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration={"Rules": [USER_RULE]})
    code, out = deploy()
    assert code == 0, out
    assert "lifecycle rules of s3://stepkit-example-bucket: 9 added (1 other rule kept as they are)" in out
    got = rules()
    assert got["archive-kb"]["Transitions"] == USER_RULE["Transitions"]  # the user's rule, untouched
    mine = {k.removeprefix(PREFIX): expiry(r) for k, r in got.items() if k.startswith(PREFIX)}
    assert mine == {
        "athena-results": ("predict-age/athena-results/", 7),
        "map-results": ("predict-age/map-results/", 14),
        # not runs/: its models are what a re-score reads (retention.runs_days expires them, if set)
        # every table some cleanup deletes the files of; never the final results
        **{f"tables/{t}": (f"predict-age/tables/{t}/", 15) for t in (
            "predict_age_staging_parsed_features_2025q3", "predict_age_real_training_features_14m",
            "predict_age_real_training_targets_14m", "predict_age_full_evaluation_features_378m",
            "predict_age_ml_predictions", "predict_age_human_qa")},
        "incomplete-uploads": ("predict-age/", None),
    }
    assert got[PREFIX + "incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert not any("final_results" in k for k in got)


def test_a_second_deploy_writes_nothing_and_a_change_updates_only_its_rules(aws, tmp_path):
    boto3.client("s3", region_name=REGION).put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration={"Rules": [USER_RULE]})
    assert deploy()[0] == 0
    code, out = deploy()
    assert "lifecycle rules of s3://stepkit-example-bucket: up to date (1 other rule kept as they are)" in out
    code, out = deploy(pipeline=write_variant(tmp_path, {"retention": {"athena_results_days": 3}}))
    assert code == 0 and ": 1 changed (1 other rule kept as they are)" in out
    got = rules()
    assert expiry(got[PREFIX + "athena-results"]) == ("predict-age/athena-results/", 3)
    assert got["archive-kb"]["Transitions"] == USER_RULE["Transitions"] and len(got) == 10
    code, out = deploy(pipeline=write_variant(tmp_path, {"retention": {"runs_days": 90}}))
    assert code == 0 and ": 1 added, 1 changed (1 other rule kept as they are)" in out, out
    assert expiry(rules()[PREFIX + "runs"]) == ("predict-age/runs/", 90)


def test_a_dry_run_changes_no_rule(aws):
    code, out = deploy("--dry-run")
    assert code == 0 and "dry run: lifecycle rules of s3://stepkit-example-bucket: 9 added (0 other rules" in out
    with pytest.raises(Exception, match="NoSuchLifecycleConfiguration"):
        rules()


def test_another_pipelines_rules_in_the_same_bucket_are_kept(artifacts):
    other = {"ID": "stepkit:ai-agent-predict-income:runs", "Filter": {"Prefix": "predict-income/runs/"},
             "Status": "Enabled", "Expiration": {"Days": 15}}
    stale = {"ID": PREFIX + "tables/dropped_table", "Filter": {"Prefix": "predict-age/tables/dropped_table/"},
             "Status": "Enabled", "Expiration": {"Days": 15}}
    merged = lifecycle.merge([other, stale], lifecycle.wanted(artifacts.context.p), artifacts.context.p)
    ids = [r["ID"] for r in merged]
    assert ids[0] == other["ID"] and stale["ID"] not in ids  # its own stale rule goes, another pipeline's stays


@pytest.mark.parametrize("days, ok", [(15, True), (14, False)])
def test_failed_run_files_outlive_the_redrive_window(tmp_path, variables, days, ok):
    from stepkit.errors import SpecError
    from tests.aws.variants import compile_variant

    if ok:
        compile_variant(tmp_path, variables, {"retention": {"failed_run_days": days}})
    else:
        with pytest.raises(SpecError, match="retention.failed_run_days"):
            compile_variant(tmp_path, variables, {"retention": {"failed_run_days": days}})
