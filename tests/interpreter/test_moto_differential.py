"""Differential test: the same definitions through moto's Step Functions executor (moto server mode, the
executor switched on through moto's config API) and through the interpreter; same status and output, or
same error (and cause where both word it the same way).

Cases where moto departs from AWS's documentation run against the interpreter only; the table says why.
"""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.interpreter._helpers import run

ROLE = "arn:aws:iam::123456789012:role/stepkit-test"


class NotCompared(tuple):
    """Not run through moto: (why, (status, output or error)) -- the interpreter follows AWS's documentation."""

    def __new__(cls, why: str, expected: tuple):
        return super().__new__(cls, (why, expected))


def _pass(**fields):
    return {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True, **fields}}}


def _chain(*states):
    names = [f"S{i}" for i in range(len(states))]
    out = {}
    for i, state in enumerate(states):
        state = dict(state)
        if state["Type"] not in ("Choice", "Succeed", "Fail"):
            state.update({"Next": names[i + 1]} if i + 1 < len(states) else {"End": True})
        out[names[i]] = state
    return {"StartAt": names[0], "States": out}


def _choice(*rules, default=True):
    state = {"Type": "Choice", "Choices": [{**rule, "Next": f"R{i}"} for i, rule in enumerate(rules)]}
    states = {f"R{i}": {"Type": "Pass", "Result": {"rule": i}, "End": True} for i in range(len(rules))}
    if default:
        state["Default"] = "D"
        states["D"] = {"Type": "Pass", "Result": {"rule": "default"}, "End": True}
    return {"StartAt": "C", "States": {"C": state, **states}}


def _map(processor_states, **fields):
    start = next(iter(processor_states))
    return {"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, "ItemProcessor": {
        "ProcessorConfig": {"Mode": "INLINE"}, "StartAt": start, "States": processor_states}, **fields}}}


CASES = [
    # (name, definition, input, True to compare with moto, or NotCompared(why, what AWS documents))
    ("pass_result", _pass(Result={"a": [1, 2]}), {"x": 1}, True),
    ("pass_resultpath_nested", _pass(Result="r", ResultPath="$.a.b"), {"x": 1}, True),
    ("pass_resultpath_null", _pass(Result="r", ResultPath=None), {"x": 1}, True),
    ("inputpath_outputpath", _pass(InputPath="$.in", OutputPath="$.keep"), {"in": {"keep": [3], "drop": 1}}, True),
    ("parameters_paths_and_context", _pass(Parameters={"v.$": "$.a.b[1]", "name.$": "$$.Execution.Name",
                                                       "state.$": "$$.State.Name", "static": {"k": [1]}}),
     {"a": {"b": [10, 20]}}, True),
    ("intrinsics_arrays", _pass(Parameters={
        "range.$": "States.ArrayRange(1, 9, 2)", "part.$": "States.ArrayPartition($.a, 2)",
        "has.$": "States.ArrayContains($.a, 3)", "item.$": "States.ArrayGetItem($.a, 1)",
        "len.$": "States.ArrayLength($.a)", "uniq.$": "States.ArrayUnique($.d)", "arr.$": "States.Array($.a, 'x', 1)"}),
     {"a": [1, 2, 3], "d": [1, 1, 2]}, True),
    ("intrinsics_strings_and_json", _pass(Parameters={
        "fmt.$": "States.Format('{} and {}', $.s, $.n)", "split.$": "States.StringSplit($.csv, ',')",
        "json.$": "States.StringToJson($.text)", "text.$": "States.JsonToString($.obj)",
        "merged.$": "States.JsonMerge($.obj, $.obj2, false)", "b64.$": "States.Base64Encode($.s)",
        "unb64.$": "States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "sum.$": "States.MathAdd($.n, -1)",
        "sha.$": "States.Hash($.s, 'SHA-256')"}),
     {"s": "Data to encode", "n": 111, "csv": "1,2,3", "text": "{\"foo\": \"bar\"}", "obj": {"a": 1, "b": 2},
      "obj2": {"b": 3}}, True),
    ("format_with_escapes", _pass(Parameters={"q.$": r"States.Format('it\'s {} \{literal\}', $.x)"}), {"x": "ok"},
     NotCompared("moto's intrinsic parser rejects the escapes \\' \\{ \\} that AWS documents for string "
                 "literals (token recognition error) and returns a cut string",
                 ("SUCCEEDED", {"q": "it's ok {literal}"}))),
    ("format_nested_in_array", _pass(Parameters={
        "cmd.$": "States.Array('--run-id', $$.Execution.Name, '--batch-id', States.Format('{}', $.batch_id))"}),
     {"batch_id": 7}, True),
    ("choice_numeric_and_string", _choice({"Variable": "$.n", "NumericGreaterThan": 5},
                                          {"Variable": "$.s", "StringEquals": "go"}), {"n": 3, "s": "go"}, True),
    ("choice_and_or_not", _choice({"And": [{"Variable": "$.n", "NumericGreaterThanEquals": 1},
                                           {"Not": {"Variable": "$.s", "StringEquals": "stop"}}]}),
     {"n": 1, "s": "go"}, True),
    ("choice_type_tests", _choice({"Variable": "$.missing", "IsPresent": True}, {"Variable": "$.z", "IsNull": True},
                                  {"Variable": "$.n", "IsString": True}), {"z": None, "n": 1}, True),
    ("choice_string_matches", _choice({"Variable": "$.f", "StringMatches": "log-*.txt"}), {"f": "log-1.txt"}, True),
    ("choice_timestamp", _choice({"Variable": "$.t", "TimestampLessThan": "2020-01-01T00:00:00Z"}),
     {"t": "2019-12-31T23:59:59Z"}, True),
    ("choice_default", _choice({"Variable": "$.n", "NumericEquals": 2}), {"n": 1}, True),
    ("choice_no_match", _choice({"Variable": "$.n", "NumericEquals": 2}, default=False), {"n": 1},
     NotCompared("moto fails with States.Runtime; AWS documents States.NoChoiceMatched for a Choice state "
                 "with no matching rule and no Default", ("FAILED", "States.NoChoiceMatched"))),
    ("wait_then_pass", _chain({"Type": "Wait", "Seconds": 0}, {"Type": "Pass", "Result": {"after": 1}}), {}, True),
    ("wait_timestamp_in_the_past", _chain({"Type": "Wait", "Timestamp": "2020-01-01T00:00:00Z"}, {"Type": "Pass"}),
     {"k": 1}, True),
    ("parallel_branches_and_result_selector", {"StartAt": "Par", "States": {"Par": {
        "Type": "Parallel", "End": True, "ResultSelector": {"first.$": "$[0]", "both.$": "$"},
        "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": True}}},
                     {"StartAt": "B", "States": {"B": {"Type": "Pass", "InputPath": "$.x", "End": True}}}]}}},
     {"x": "bx"}, True),
    ("map_item_selector_and_context", _map({"I": {"Type": "Pass", "End": True}}, ItemsPath="$.items",
                                           ItemSelector={"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value",
                                                         "tag.$": "$.tag"}, MaxConcurrency=2),
     {"items": ["a", "b", "c"], "tag": "t"}, True),
    ("map_result_path", _map({"I": {"Type": "Pass", "Result": "done", "End": True}}, ItemsPath="$.items",
                             ResultPath="$.results"), {"items": [1, 2]}, True),
    ("fail_error_cause", {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "MyError", "Cause": "because"}}},
     {}, True),
    ("fail_error_path_cause_path", {"StartAt": "F", "States": {"F": {
        "Type": "Fail", "ErrorPath": "$.e.Error", "CausePath": "$.e.Cause"}}},
     {"e": {"Error": "Athena.X", "Cause": "bad"}}, True),
    ("parallel_branch_fail_caught", {"StartAt": "Par", "States": {
        "Par": {"Type": "Parallel", "Next": "Done", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
            {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "BranchError", "Cause": "b failed"}}}],
            "Catch": [{"ErrorEquals": ["BranchError"], "ResultPath": "$.err", "Next": "Done"}]},
        "Done": {"Type": "Pass", "End": True}}}, {"in": 1}, True),
    ("map_iteration_fail_fails_the_map", _map({"I": {"Type": "Fail", "Error": "ItemError", "Cause": "item"}}),
     [1, 2], True),
    ("parameters_path_not_found", _pass(Parameters={"x.$": "$.missing"}), {}, True),
]


@pytest.fixture
def sfn(aws_env):
    import boto3

    def set_executor(on: bool) -> None:
        request = urllib.request.Request(f"{aws_env}/moto-api/config", method="POST",
                                         data=json.dumps({"stepfunctions": {"execute_state_machine": on}}).encode())
        urllib.request.urlopen(request).read()

    set_executor(True)
    yield boto3.client("stepfunctions")
    set_executor(False)


def _moto_run(client, name: str, definition: dict, data) -> dict:
    arn = client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=arn, name="exec-1", input=json.dumps(data))["executionArn"]
    deadline = time.monotonic() + 20
    while True:
        described = client.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


@pytest.mark.parametrize("name,definition,data,compare", CASES, ids=[c[0] for c in CASES])
def test_same_result_as_moto(request, name, definition, data, compare):
    ours = run(definition, data, name="exec-1")
    if isinstance(compare, NotCompared):
        status, value = compare[1]
        assert (ours.status, ours.output if status == "SUCCEEDED" else ours.error) == (status, value)
        return
    sfn = request.getfixturevalue("sfn")
    theirs = _moto_run(sfn, f"diff-{name.replace('_', '-')}"[:80], definition, data)
    assert ours.status == theirs["status"]
    if ours.status == "SUCCEEDED":
        assert ours.output == json.loads(theirs["output"])
    else:
        assert (ours.error, ours.cause or "") == (theirs.get("error"), theirs.get("cause") or "")
