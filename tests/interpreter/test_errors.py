"""Error names, Retry and Catch (AWS "Error handling in Step Functions")."""
from __future__ import annotations

import pytest

from stepkit.interpreter import TaskFailure
from stepkit.interpreter.errors import matches
from stepkit.interpreter.retry import Retries
from tests.interpreter._helpers import LAMBDA, Recorder, one, run

MATCHING = [
    ("all_matches_a_custom_error", "States.ALL", "MyError", True),
    ("all_matches_timeout", "States.ALL", "States.Timeout", True),
    ("all_does_not_match_runtime", "States.ALL", "States.Runtime", False),
    ("all_does_not_match_data_limit_exceeded", "States.ALL", "States.DataLimitExceeded", False),
    ("taskfailed_matches_a_custom_error", "States.TaskFailed", "Lambda.ServiceException", True),
    ("taskfailed_matches_heartbeat_timeout", "States.TaskFailed", "States.HeartbeatTimeout", True),
    ("taskfailed_does_not_match_timeout", "States.TaskFailed", "States.Timeout", False),
    ("taskfailed_does_not_match_runtime", "States.TaskFailed", "States.Runtime", False),
    ("exact_name_matches", "States.Timeout", "States.Timeout", True),
    ("names_are_case_sensitive", "myerror", "MyError", False),
    ("runtime_not_even_by_name", "States.Runtime", "States.Runtime", False),
]


@pytest.mark.parametrize("name,pattern,error,expected", MATCHING, ids=[c[0] for c in MATCHING])
def test_error_name_matching(name, pattern, error, expected):
    assert matches(pattern, error) is expected


def _errors(*sequence):
    """An adapter failing with the given error names in turn, then returning "done"."""
    remaining = list(sequence)

    def answer(call):
        if remaining:
            raise TaskFailure(remaining.pop(0), f"attempt {call.attempt}")
        return "done"
    return answer


RETRY = [
    # (name, Retry, errors the task raises in turn, expected status, expected attempts)
    ("retried_until_success", [{"ErrorEquals": ["E"], "MaxAttempts": 3}], ["E", "E"], "SUCCEEDED", 3),
    ("max_attempts_exhausted", [{"ErrorEquals": ["E"], "MaxAttempts": 2}], ["E", "E", "E"], "FAILED", 3),
    ("max_attempts_zero_never_retries", [{"ErrorEquals": ["E"], "MaxAttempts": 0}], ["E"], "FAILED", 1),
    ("default_max_attempts_is_three", [{"ErrorEquals": ["E"]}], ["E"] * 4, "FAILED", 4),
    ("unmatched_error_not_retried", [{"ErrorEquals": ["Other"]}], ["E"], "FAILED", 1),
    ("separate_counter_per_retrier",
     [{"ErrorEquals": ["A"], "MaxAttempts": 1}, {"ErrorEquals": ["B"], "MaxAttempts": 1}],
     ["A", "B"], "SUCCEEDED", 3),
    ("first_matching_retrier_decides_even_when_exhausted",
     [{"ErrorEquals": ["A"], "MaxAttempts": 1}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}],
     ["A", "A"], "FAILED", 2),
    ("taskfailed_retrier_skips_timeout", [{"ErrorEquals": ["States.TaskFailed"]}], ["States.Timeout"], "FAILED", 1),
]


@pytest.mark.parametrize("name,retry,sequence,status,attempts", RETRY, ids=[c[0] for c in RETRY])
def test_retry(name, retry, sequence, status, attempts):
    task = Recorder(_errors(*sequence))
    out = run(one({"Type": "Task", "Resource": LAMBDA, "Retry": retry}), {}, {LAMBDA: task})
    assert out.status == status
    assert [c.attempt for c in task.calls] == list(range(attempts))
    assert [c.context["State"]["RetryCount"] for c in task.calls] == list(range(attempts))


def test_backoff_delays_and_max_delay():
    retries = Retries([{"ErrorEquals": ["E"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 5,
                        "MaxDelaySeconds": 10}])
    assert [retries.next_delay("E") for _ in range(6)] == [2, 4, 8, 10, 10, None]


def test_full_jitter_stays_below_the_backoff():
    retries = Retries([{"ErrorEquals": ["E"], "IntervalSeconds": 4, "MaxAttempts": 50, "JitterStrategy": "FULL",
                        "BackoffRate": 1.0}])
    delays = [retries.next_delay("E") for _ in range(50)]
    assert all(0 <= d <= 4 for d in delays) and len(set(delays)) > 1


def test_retry_delay_is_shortened_and_reported():
    lines = []
    task = Recorder(_errors("E"))
    run(one({"Type": "Task", "Resource": LAMBDA, "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 30}]}), {},
        {LAMBDA: task}, log=lines.append)
    assert lines == ["S: E (attempt 0); retry 1 in 0.001 s (AWS would wait 30 s)"]


CATCH = [
    ("first_matching_catcher_wins",
     [{"ErrorEquals": ["E"], "Next": "One"}, {"ErrorEquals": ["States.ALL"], "Next": "Two"}], "E", "one"),
    ("all_catches_the_rest", [{"ErrorEquals": ["X"], "Next": "One"}, {"ErrorEquals": ["States.ALL"], "Next": "Two"}],
     "E", "two"),
    ("catch_after_retries_exhausted", [{"ErrorEquals": ["States.TaskFailed"], "Next": "One"}], "E", "one"),
]


@pytest.mark.parametrize("name,catch,error,expected", CATCH, ids=[c[0] for c in CATCH])
def test_catch(name, catch, error, expected):
    definition = one({"Type": "Task", "Resource": LAMBDA, "Retry": [{"ErrorEquals": [error], "MaxAttempts": 1}],
                      "Catch": catch})
    definition["States"].update({"One": {"Type": "Pass", "Result": "one", "End": True},
                                 "Two": {"Type": "Pass", "Result": "two", "End": True}})
    task = Recorder(_errors(error, error))
    out = run(definition, {}, {LAMBDA: task})
    assert (out.status, out.output, len(task.calls)) == ("SUCCEEDED", expected, 2)


def test_uncaught_error_fails_the_execution_naming_the_state():
    out = run(one({"Type": "Task", "Resource": LAMBDA}), {}, {LAMBDA: Recorder(_errors("Boom"))})
    assert (out.status, out.error, out.cause, out.failed_state) == ("FAILED", "Boom", "attempt 0", "S")


FAIL = [
    ("error_and_cause", {"Error": "E", "Cause": "C"}, {}, ("E", "C")),
    ("error_path_and_cause_path", {"ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
     {"error": {"Error": "Athena.X", "Cause": "bad sql"}}, ("Athena.X", "bad sql")),
    ("cause_path_intrinsic", {"Error": "E", "CausePath": "States.Format('run {} failed', $.run)"}, {"run": 7},
     ("E", "run 7 failed")),
]


@pytest.mark.parametrize("name,fields,data,expected", FAIL, ids=[c[0] for c in FAIL])
def test_fail_state(name, fields, data, expected):
    out = run(one({"Type": "Fail", **fields}), data)
    assert (out.status, out.error, out.cause) == ("FAILED", *expected)
