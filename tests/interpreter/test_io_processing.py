"""Input and output processing, case by case from the examples of AWS's "Input and output processing"
pages (InputPath, Parameters, ResultSelector, ResultPath, OutputPath) and the Pass / Map state pages."""
from __future__ import annotations

import pytest

from tests.interpreter._helpers import LAMBDA, Recorder, one, run

ECHO = object()  # the task returns the parameters it got
HELLO = "Hello, AWS Step Functions!"
RESULTPATH_INPUT = {"comment": "This is a test of the input and output of a Task state.",
                    "details": "Default example", "who": "AWS Step Functions"}

TASK_CASES = [
    # (name, state fields, input, task result, expected output)
    ("inputpath_selects_dataset2_for_the_task", {"InputPath": "$.dataset2"},
     {"comment": "Example for InputPath.", "dataset1": {"val1": 1, "val2": 2, "val3": 3},
      "dataset2": {"val1": "a", "val2": "b", "val3": "c"}}, ECHO, {"val1": "a", "val2": "b", "val3": "c"}),
    ("resultpath_default_replaces_input", {}, RESULTPATH_INPUT, HELLO, HELLO),
    ("resultpath_null_keeps_input", {"ResultPath": None}, RESULTPATH_INPUT, HELLO, RESULTPATH_INPUT),
    ("resultpath_adds_taskresult", {"ResultPath": "$.taskresult"}, RESULTPATH_INPUT, HELLO,
     {**RESULTPATH_INPUT, "taskresult": HELLO}),
    ("resultpath_creates_nested_objects", {"ResultPath": "$.strings.lambdaresult"}, RESULTPATH_INPUT, HELLO,
     {**RESULTPATH_INPUT, "strings": {"lambdaresult": HELLO}}),
    ("resultpath_overwrites_a_field", {"ResultPath": "$.details"}, RESULTPATH_INPUT, HELLO,
     {**RESULTPATH_INPUT, "details": HELLO}),
    ("inputpath_resultpath_outputpath_together",
     {"InputPath": "$.lambda", "ResultPath": "$.data.lambdaresult", "OutputPath": "$.data"},
     {"comment": "An input comment.", "data": {"val1": 23, "val2": 17}, "extra": "foo",
      "lambda": {"who": "AWS Step Functions"}}, HELLO, {"val1": 23, "val2": 17, "lambdaresult": HELLO}),
    ("resultselector_picks_from_the_result",
     {"ResultSelector": {"ClusterId.$": "$.output.ClusterId", "ResourceType.$": "$.resourceType"}}, {},
     {"resourceType": "elasticmapreduce", "resource": "createCluster.sync",
      "output": {"SdkHttpMetadata": {"HttpStatusCode": 200}, "ClusterId": "AKIAIOSFODNN7EXAMPLE"}},
     {"ClusterId": "AKIAIOSFODNN7EXAMPLE", "ResourceType": "elasticmapreduce"}),
    ("outputpath_null_gives_empty_object", {"OutputPath": None}, {"a": 1}, {"b": 2}, {}),
    ("inputpath_null_gives_empty_object_to_the_task", {"InputPath": None, "ResultPath": "$.r"}, {"a": 1},
     ECHO, {"a": 1, "r": {}}),
]


@pytest.mark.parametrize("name,fields,data,result,expected", TASK_CASES, ids=[c[0] for c in TASK_CASES])
def test_task_io(name, fields, data, result, expected):
    task = Recorder((lambda call: call.parameters) if result is ECHO else result)
    out = run(one({"Type": "Task", "Resource": LAMBDA, **fields}), data, {LAMBDA: task})
    assert (out.status, out.output) == ("SUCCEEDED", expected)


def test_parameters_example_selects_what_the_task_gets():
    task = Recorder(None)
    data = {"comment": "Example for Parameters.",
            "product": {"details": {"color": "blue", "size": "small", "material": "cotton"},
                        "availability": "in stock", "sku": "2317", "cost": "$23"}}
    params = {"comment": "Selecting what I care about.",
              "MyDetails": {"size.$": "$.product.details.size", "exists.$": "$.product.availability",
                            "StaticValue": "foo"}}
    run(one({"Type": "Task", "Resource": LAMBDA, "Parameters": params}), data, {LAMBDA: task})
    assert task.calls[0].parameters == {"comment": "Selecting what I care about.",
                                        "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"}}


PASS_CASES = [
    ("pass_result_into_resultpath",
     {"Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355}, "ResultPath": "$.coords"},
     {"georefOf": "Home"},
     {"georefOf": "Home", "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355}}),
    ("pass_without_result_passes_input", {}, {"a": [1, 2]}, {"a": [1, 2]}),
    ("pass_parameters_with_context_and_intrinsic",
     {"Parameters": {"name.$": "$$.Execution.Name", "state.$": "$$.State.Name", "n.$": "States.ArrayLength($.a)"}},
     {"a": [1, 2, 3]}, {"name": "exec-1", "state": "S", "n": 3}),
    ("pass_parameters_bracket_and_index_paths",
     {"Parameters": {"first.$": "$['a'][0]", "last.$": "$.a[-1]", "all.$": "$.a[*]", "slice.$": "$.a[0:2]"}},
     {"a": [1, 2, 3]}, {"first": 1, "last": 3, "all": [1, 2, 3], "slice": [1, 2]}),
    ("pass_parameters_filter_expression",
     {"Parameters": {"big.$": "$.items[?(@.n > 1)].id"}},
     {"items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}]}, {"big": ["b"]}),
    ("pass_indefinite_path_matching_nothing_is_empty_list",
     {"Parameters": {"none.$": "$.items[*].missing"}}, {"items": [{"id": "a"}]}, {"none": []}),
    ("pass_context_object_fields",
     {"Parameters": {"id.$": "$$.Execution.Id", "sm.$": "$$.StateMachine.Name", "rc.$": "$$.Execution.RedriveCount",
                     "retries.$": "$$.State.RetryCount", "input.$": "$$.Execution.Input"}}, {"k": 1},
     {"id": "arn:aws:states:us-east-1:123456789012:execution:local:exec-1", "sm": "local", "rc": 0,
      "retries": 0, "input": {"k": 1}}),
]


@pytest.mark.parametrize("name,fields,data,expected", PASS_CASES, ids=[c[0] for c in PASS_CASES])
def test_pass_io(name, fields, data, expected):
    out = run(one({"Type": "Pass", **fields}), data)
    assert (out.status, out.output) == ("SUCCEEDED", expected)


RUNTIME_CASES = [
    # Paths that select nothing end the execution with States.Runtime; a Catch on States.ALL does not help.
    ("parameters_path_not_found", {"Type": "Pass", "Parameters": {"x.$": "$.missing"}}),
    ("inputpath_not_found", {"Type": "Pass", "InputPath": "$.missing"}),
    ("outputpath_not_found", {"Type": "Pass", "OutputPath": "$.missing"}),
    ("context_path_not_found", {"Type": "Pass", "Parameters": {"x.$": "$$.Execution.Nope"}}),
    ("task_parameters_path_not_found_is_not_caught",
     {"Type": "Task", "Resource": LAMBDA, "Parameters": {"x.$": "$.missing"},
      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]}),
    ("items_path_not_an_array", {"Type": "Map", "ItemsPath": "$.a", "ItemProcessor": {
        "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}),
]


@pytest.mark.parametrize("name,state", RUNTIME_CASES, ids=[c[0] for c in RUNTIME_CASES])
def test_runtime_errors(name, state):
    definition = one(state)
    definition["States"]["Caught"] = {"Type": "Succeed"}
    out = run(definition, {"a": 1}, {LAMBDA: Recorder({})})
    assert (out.status, out.error, out.failed_state) == ("FAILED", "States.Runtime", "S")


def test_resultpath_into_a_non_object_is_resultpathmatchfailure_and_catchable():
    definition = one({"Type": "Task", "Resource": LAMBDA, "ResultPath": "$.a.b",
                      "Catch": [{"ErrorEquals": ["States.ResultPathMatchFailure"], "Next": "Caught",
                                 "ResultPath": "$.err"}]})
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    out = run(definition, {"a": 5}, {LAMBDA: Recorder("r")})
    assert out.status == "SUCCEEDED"
    assert out.output["err"]["Error"] == "States.ResultPathMatchFailure"


def test_map_itemselector_example_from_the_map_state_page():
    data = {"ship-date": "2016-03-14T01:59:00Z",
            "detail": {"delivery-partner": "UQS",
                       "shipped": [{"prod": "R31", "dest-code": 9511, "quantity": 1344},
                                   {"prod": "S39", "dest-code": 9511, "quantity": 40}]}}
    definition = one({"Type": "Map", "InputPath": "$.detail", "ItemsPath": "$.shipped",
                      "ItemSelector": {"parcel.$": "$$.Map.Item.Value", "courier.$": "$.delivery-partner",
                                       "index.$": "$$.Map.Item.Index"},
                      "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                      "ResultPath": "$.detail.shipped"})
    out = run(definition, data)
    assert out.output["detail"]["shipped"] == [
        {"parcel": {"prod": "R31", "dest-code": 9511, "quantity": 1344}, "courier": "UQS", "index": 0},
        {"parcel": {"prod": "S39", "dest-code": 9511, "quantity": 40}, "courier": "UQS", "index": 1}]


def test_catch_resultpath_puts_error_output_into_the_input():
    definition = one({"Type": "Task", "Resource": LAMBDA,
                      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]})
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}

    def boom(call):
        from stepkit.interpreter import TaskFailure
        raise TaskFailure("CustomError", "it broke")

    out = run(definition, {"in": 1}, {LAMBDA: Recorder(boom)})
    assert out.output == {"in": 1, "error": {"Error": "CustomError", "Cause": "it broke"}}
