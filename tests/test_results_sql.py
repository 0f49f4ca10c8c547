"""`stepkit results`' summary query for every example: one Athena statement over the results table,
with each target's figures (a number's mean, a class's share of its default class and mean probability)."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from stepkit.aws.ops import summary_sql
from stepkit.cli import _variables
from stepkit.compiler.load import load_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, table, columns", [
    ("predict_age", "predict_age_final_results",
     ["total_predictions", "avg_age", "avg_confidence", "null_predictions"]),
    ("classify_seniority", "seniority_final_results",
     ["total_predictions", "share_seniority_level_default", "avg_confidence", "null_predictions"]),
    ("predict_profile", "profile_results",
     ["total_predictions", "avg_age", "avg_confidence_age", "null_predictions_age", "share_homeowner_default",
      "avg_confidence_homeowner", "null_predictions_homeowner"]),
    ("etl_device_activity", "device_activity_by_segment", ["total_predictions"]),
])
def test_summary_query_per_target(name, table, columns):
    p, _ = load_pipeline(ROOT / "pipelines" / f"{name}.yaml", _variables((), str(ROOT / "pipelines" / "example.env")))
    sql = summary_sql(p)
    (tree,) = sqlglot.parse(sql, read="trino")
    assert tree.named_selects == columns
    assert tree.find(sqlglot.exp.Table).name == table
