"""Intrinsic functions: each function's example from AWS's "Intrinsic functions" page, the escaping rules,
and the argument errors that end in States.IntrinsicFailure."""
from __future__ import annotations

import re

import pytest

from stepkit.interpreter.errors import StatesError
from stepkit.interpreter.intrinsics import evaluate
from tests.interpreter._helpers import one, run

CONTEXT = {"Execution": {"Name": "run-42"}}

CASES = [
    ("format", "States.Format('Hello, my name is {}.', $.name)", {"name": "Arnav"}, "Hello, my name is Arnav."),
    ("format_numbers_and_booleans", "States.Format('{} {} {}', 7, true, null)", {}, "7 true null"),
    ("format_escaped_quote_braces_backslash", r"States.Format('it\'s \{\} {} \\', $$.Execution.Name)", {},
     "it's {} run-42 \\"),
    ("format_nested_in_array", "States.Array('--batch-id', States.Format('{}', $.batch_id))", {"batch_id": 7},
     ["--batch-id", "7"]),
    ("string_to_json", "States.StringToJson($.escapedJsonString)", {"escapedJsonString": "{\"foo\": \"bar\"}"},
     {"foo": "bar"}),
    ("json_to_string", "States.JsonToString($.unescapedJson)", {"unescapedJson": {"foo": "bar"}}, '{"foo":"bar"}'),
    ("array", "States.Array($.Id)", {"Id": 123456}, [123456]),
    ("array_partition", "States.ArrayPartition($.inputArray, 4)", {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]},
     [[1, 2, 3, 4], [5, 6, 7, 8], [9]]),
    ("array_contains", "States.ArrayContains($.inputArray, $.lookingFor)",
     {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5}, True),
    ("array_range", "States.ArrayRange(1, 9, 2)", {}, [1, 3, 5, 7, 9]),
    ("array_range_golden_batches_length", "States.ArrayLength(States.ArrayRange(0, 897, 1))", {}, 898),
    ("array_get_item", "States.ArrayGetItem($.inputArray, $.index)",
     {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "index": 5}, 6),
    ("array_length", "States.ArrayLength($.inputArray)", {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]}, 9),
    ("array_unique", "States.ArrayUnique($.inputArray)", {"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]}, [1, 2, 3, 4]),
    ("base64_encode", "States.Base64Encode($.input)", {"input": "Data to encode"}, "RGF0YSB0byBlbmNvZGU="),
    ("base64_decode", "States.Base64Decode($.base64)", {"base64": "RGF0YSB0byBlbmNvZGU="}, "Data to encode"),
    ("hash_sha1", "States.Hash($.Data, $.Algorithm)", {"Data": "input data", "Algorithm": "SHA-1"},
     "aaff4a450a104cd177d28d18d74485e8cae074b7"),
    ("json_merge_shallow", "States.JsonMerge($.json1, $.json2, false)",
     {"json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}},
     {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3}),
    ("math_add", "States.MathAdd($.value1, $.step)", {"value1": 111, "step": -1}, 110),
    ("string_split", "States.StringSplit($.inputString, $.splitter)", {"inputString": "1,2,3,4,5", "splitter": ","},
     ["1", "2", "3", "4", "5"]),
    ("string_split_any_of_several_characters", "States.StringSplit($.inputString, $.splitter)",
     {"inputString": "This.is+a,test=string", "splitter": ".+,="}, ["This", "is", "a", "test", "string"]),
    # The docs' nesting example, with as many '{}' as values (the page's has three for two values).
    ("nested_functions_as_in_the_docs",
     "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit("
     "$.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
     "States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))",
     {"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/test-ami/1.0.0"}}, "1.0"),
]


@pytest.mark.parametrize("name,expression,data,expected", CASES, ids=[c[0] for c in CASES])
def test_documented_example(name, expression, data, expected):
    assert evaluate(expression, data, CONTEXT) == expected


def test_math_random_is_in_range_and_seeded():
    values = {evaluate("States.MathRandom($.start, $.end)", {"start": 1, "end": 999}, {}) for _ in range(50)}
    assert all(1 <= v < 999 for v in values) and len(values) > 1
    assert evaluate("States.MathRandom(1, 999, 7)", {}, {}) == evaluate("States.MathRandom(1, 999, 7)", {}, {})


def test_uuid_is_a_version_4_uuid():
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        evaluate("States.UUID()", {}, {}))


FAILURES = [
    ("format_placeholder_count", "States.Format('{} {}', 1)"),
    ("array_range_over_1000_items", "States.ArrayRange(0, 1000, 1)"),
    ("array_range_zero_step", "States.ArrayRange(0, 10, 0)"),
    ("array_get_item_out_of_range", "States.ArrayGetItem(States.Array(1, 2), 5)"),
    ("array_partition_zero_chunk", "States.ArrayPartition(States.Array(1, 2), 0)"),
    ("array_length_of_a_string", "States.ArrayLength('abc')"),
    ("hash_unknown_algorithm", "States.Hash('x', 'SHA-3')"),
    ("json_merge_deep_mode", "States.JsonMerge(States.StringToJson('{}'), States.StringToJson('{}'), true)"),
    ("string_to_json_not_json", "States.StringToJson('{nope')"),
    ("math_add_too_few_arguments", "States.MathAdd(1)"),
    ("unknown_function", "States.Nope(1)"),
    ("uuid_with_an_argument", "States.UUID(1)"),
]


@pytest.mark.parametrize("name,expression", FAILURES, ids=[c[0] for c in FAILURES])
def test_bad_arguments_are_intrinsic_failure(name, expression):
    with pytest.raises(StatesError) as caught:
        evaluate(expression, {}, {})
    assert caught.value.error == "States.IntrinsicFailure"


def test_intrinsic_failure_is_catchable_in_a_task_but_fails_a_pass():
    out = run(one({"Type": "Pass", "Parameters": {"x.$": "States.ArrayRange(0, 5000, 1)"}}))
    assert (out.status, out.error, out.failed_state) == ("FAILED", "States.IntrinsicFailure", "S")
