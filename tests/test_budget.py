"""validate warns when the schedule's runs a month cost more than the cost alarm's monthly budget."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stepkit.cli import main
from stepkit.compiler import budget

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
ENV = ROOT / "pipelines" / "example.env"


@pytest.mark.parametrize("expression, runs", [
    ("cron(0 6 ? * MON *)", 4.35),        # the seed's: weekly
    ("cron(0 6 ? * MON-FRI *)", 21.74),   # weekdays
    ("cron(0 6 * * ? *)", 30.44),         # daily
    ("cron(0 6 1 * ? *)", 1.0),           # monthly
    ("cron(0 6 1,15 * ? *)", 2.0),
    ("cron(0 */6 * * ? *)", 121.75),      # every 6 hours
    ("cron(0/30 8-17 ? * MON-FRI *)", 434.82),
    ("cron(0 6 ? * 2#1 *)", 1.0),         # the first Monday of the month
    ("cron(0 6 L * ? *)", 1.0),           # the last day of the month
    ("cron(0 6 1 1,7 ? *)", 0.17),        # twice a year
    ("rate(1 day)", 30.44),
    ("rate(12 hours)", 60.88),
    ("rate(30 minutes)", 1461.0),
])
def test_runs_a_month(expression, runs):
    assert budget.runs_per_month(expression) == pytest.approx(runs, abs=0.01)


def variant(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(PIPELINE.read_text())
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value}
    out = tmp_path / "p.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def validate(path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["validate", str(path), "--env-file", str(ENV)])
    return result.exit_code, result.output.splitlines()


@pytest.mark.parametrize("cost, schedule, warned", [
    (12.0, {"enabled": True}, True),                                       # the seed: ~$52 a month over $20
    (4.0, {"enabled": True}, False),                                       # ~$17: fits
    (12.0, {"enabled": False}, False),                                     # nothing scheduled
    (None, {"enabled": True}, False),                                      # no estimate yet: nothing said
    (12.0, {"enabled": True, "expression": "cron(0 6 1 * ? *)"}, False),    # monthly: $12
], ids=["weekly-over", "weekly-fits", "disabled", "no-estimate", "monthly"])
def test_validate_warns_when_the_schedule_outspends_the_budget(tmp_path, monkeypatch, cost, schedule, warned):
    monkeypatch.setattr(budget, "estimated_run_cost", lambda artifacts: cost)
    path = variant(tmp_path, schedule=schedule)
    code, lines = validate(path)
    assert code == 0  # a warning, not an error
    found = [line for line in lines if "cost_alarm.threshold_usd" in line]
    if not warned:
        assert found == []
        return
    threshold_line = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if "threshold_usd" in line)
    assert found == [f"{path}:{threshold_line}:3: cost_alarm.threshold_usd: warning: schedule cron(0 6 ? * MON *) "
                     "starts ~4.3 runs a month at ~$12.00 a run: ~$52 a month, over the $20 budget, whose forecast "
                     "alert will then fire every month; raise threshold_usd to at least 53 or run less often"]


def test_the_hook_says_nothing_until_the_plan_is_wired():
    assert budget.estimated_run_cost(None) is None
