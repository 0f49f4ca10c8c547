"""Choice rules (AWS "Choice workflow state"): every comparison operator, the *Path variants, And/Or/Not,
the type tests, StringMatches, Default and States.NoChoiceMatched."""
from __future__ import annotations

import pytest

from stepkit.interpreter.choice import evaluate
from stepkit.interpreter.errors import StatesError
from tests.interpreter._helpers import run

DATA = {"type": "Private", "value": 20, "flag": True, "nothing": None, "ts": "2016-03-14T01:59:00Z",
        "ts2": "2016-03-14T02:00:00+00:00", "name": "log-2023.txt", "star": "a*b", "other": 20, "word": "b"}

CASES = [
    ("string_equals", {"Variable": "$.type", "StringEquals": "Private"}, True),
    ("string_equals_is_case_sensitive", {"Variable": "$.type", "StringEquals": "private"}, False),
    ("string_less_than", {"Variable": "$.word", "StringLessThan": "c"}, True),
    ("string_greater_than_equals", {"Variable": "$.word", "StringGreaterThanEquals": "b"}, True),
    ("string_equals_path", {"Variable": "$.word", "StringEqualsPath": "$.word"}, True),
    ("numeric_equals", {"Variable": "$.value", "NumericEquals": 20}, True),
    ("numeric_equals_float", {"Variable": "$.value", "NumericEquals": 20.0}, True),
    ("numeric_less_than", {"Variable": "$.value", "NumericLessThan": 20}, False),
    ("numeric_greater_than_equals", {"Variable": "$.value", "NumericGreaterThanEquals": 20}, True),
    ("numeric_less_than_equals_path", {"Variable": "$.value", "NumericLessThanEqualsPath": "$.other"}, True),
    ("numeric_on_a_string_is_false", {"Variable": "$.type", "NumericEquals": 20}, False),
    ("string_on_a_number_is_false", {"Variable": "$.value", "StringEquals": "20"}, False),
    ("boolean_equals", {"Variable": "$.flag", "BooleanEquals": True}, True),
    ("boolean_equals_path", {"Variable": "$.flag", "BooleanEqualsPath": "$.flag"}, True),
    ("timestamp_equals_across_offsets", {"Variable": "$.ts2", "TimestampEquals": "2016-03-14T02:00:00Z"}, True),
    ("timestamp_less_than", {"Variable": "$.ts", "TimestampLessThan": "2016-03-14T02:00:00Z"}, True),
    ("timestamp_greater_than_path", {"Variable": "$.ts2", "TimestampGreaterThanPath": "$.ts"}, True),
    ("timestamp_on_a_non_timestamp_is_false", {"Variable": "$.type", "TimestampEquals": "2016-03-14T02:00:00Z"}, False),
    ("is_null", {"Variable": "$.nothing", "IsNull": True}, True),
    ("is_present", {"Variable": "$.absent", "IsPresent": False}, True),
    ("is_numeric", {"Variable": "$.value", "IsNumeric": True}, True),
    ("is_numeric_not_for_booleans", {"Variable": "$.flag", "IsNumeric": True}, False),
    ("is_string", {"Variable": "$.type", "IsString": True}, True),
    ("is_boolean", {"Variable": "$.flag", "IsBoolean": True}, True),
    ("is_timestamp", {"Variable": "$.ts", "IsTimestamp": True}, True),
    ("is_timestamp_false_for_plain_text", {"Variable": "$.type", "IsTimestamp": True}, False),
    ("string_matches_wildcard", {"Variable": "$.name", "StringMatches": "log-*.txt"}, True),
    ("string_matches_whole_string_only", {"Variable": "$.name", "StringMatches": "log-*"}, True),
    ("string_matches_no_match", {"Variable": "$.name", "StringMatches": "*.csv"}, False),
    ("string_matches_escaped_star", {"Variable": "$.star", "StringMatches": "a\\*b"}, True),
    ("string_matches_escaped_star_is_literal", {"Variable": "$.name", "StringMatches": "log\\*"}, False),
    ("and", {"And": [{"Variable": "$.value", "NumericGreaterThanEquals": 20},
                     {"Variable": "$.value", "NumericLessThan": 30}]}, True),
    ("or", {"Or": [{"Variable": "$.value", "NumericLessThan": 0}, {"Variable": "$.type", "StringEquals": "Private"}]},
     True),
    ("not", {"Not": {"Variable": "$.type", "StringEquals": "Private"}}, False),
]


@pytest.mark.parametrize("name,rule,expected", CASES, ids=[c[0] for c in CASES])
def test_rule(name, rule, expected):
    assert evaluate(rule, DATA) is expected


def test_missing_variable_is_a_runtime_error():
    with pytest.raises(StatesError) as caught:
        evaluate({"Variable": "$.absent", "StringEquals": "x"}, DATA)
    assert caught.value.error == "States.Runtime"


def _choice(default: str | None) -> dict:
    state = {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}],
             "OutputPath": "$.n"}
    if default:
        state["Default"] = default
    return {"StartAt": "C", "States": {"C": state, "Big": {"Type": "Pass", "Result": "big", "End": True},
                                       "Small": {"Type": "Pass", "Result": "small", "End": True}}}


@pytest.mark.parametrize("n,default,status,output,error", [
    (11, "Small", "SUCCEEDED", "big", None),
    (3, "Small", "SUCCEEDED", "small", None),
    (3, None, "FAILED", None, "States.NoChoiceMatched"),
], ids=["first_matching_rule", "default_when_none_matches", "no_match_no_default_fails"])
def test_choice_state(n, default, status, output, error):
    out = run(_choice(default), {"n": n})
    assert (out.status, out.output, out.error) == (status, output, error)
