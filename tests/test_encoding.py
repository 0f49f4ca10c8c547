"""Encoder.raw against a plain-Python reference: every Arrow layout a feature column can arrive in
(types, nulls, slices, several chunks, record batch or table) encodes to the same matrix."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from stepkit.ml.encoding import OTHER, Encoder

CATS = ["red", "blue", "green"]


def _encoder(type_: str) -> Encoder:
    return Encoder.from_spec([SimpleNamespace(name="f", type=type_, categories=CATS if type_ == "category" else None,
                                              missing="zero")])


def _reference(type_: str, values: list) -> np.ndarray:
    """What the encoding means, value by value."""
    rows = []
    for v in values:
        if type_ == "category":
            rows.append([float(v == c) for c in [*CATS, OTHER]])
        else:
            rows.append([math.nan if v is None else float(np.float32(float(v)))])
    width = len(CATS) + 1 if type_ == "category" else 1
    return np.array(rows, dtype=np.float32).reshape(len(values), width)


VALUES = {
    "double": [1.5, None, -2.25, 1e6 + 0.1, None, 0.0],
    "integer": [4, None, 7, -3, 16_777_217, None],  # 2^24 + 1 rounds in float32, as before
    "boolean": [True, None, False, True, False, None],
    "category": ["red", None, "other", "blue", "green", "red"],
}
LAYOUTS = [
    ("double", pa.float64()), ("double", pa.float32()),
    ("integer", pa.int32()), ("integer", pa.int64()), ("integer", pa.int8()), ("integer", pa.int16()),
    ("boolean", pa.bool_()),
    ("category", pa.string()), ("category", pa.large_string()),
    ("category", pa.dictionary(pa.int32(), pa.string())),  # as prediction reads categories
]


@pytest.mark.parametrize("shape", ["array", "sliced", "chunks", "record batch"])
@pytest.mark.parametrize("type_, arrow", LAYOUTS, ids=[str(a) for _, a in LAYOUTS])
def test_raw_matches_the_reference(type_, arrow, shape):
    values = VALUES[type_]
    if pa.types.is_integer(arrow) and arrow.bit_width < 32:
        values = [v if v is None else v % 100 for v in values]
    if shape == "sliced":  # an offset into a longer buffer (a record batch of a bigger read)
        col = pa.array([values[-1], *values, values[0]], arrow).slice(1, len(values))
    elif shape == "chunks":  # a table read from several files
        col = pa.chunked_array([pa.array(values[:2], arrow), pa.array(values[2:], arrow)])
    else:
        col = pa.array(values, arrow)
    data = pa.record_batch([col], names=["f"]) if shape == "record batch" else pa.table({"f": col})
    enc = _encoder(type_)
    for _ in range(2):  # the second call runs on the cached lookups
        x = enc.raw(data)
        assert x.dtype == np.float32 and x.flags.f_contiguous
        np.testing.assert_array_equal(x, _reference(type_, values))


@pytest.mark.parametrize("type_, values", [
    ("double", []), ("category", []), ("boolean", [None, None]), ("category", [None, None]),
])
def test_raw_of_empty_and_all_null_columns(type_, values):
    arrow = {"double": pa.float64(), "boolean": pa.bool_(), "category": pa.string()}[type_]
    x = _encoder(type_).raw(pa.table({"f": pa.array(values, arrow)}))
    np.testing.assert_array_equal(x, _reference(type_, values))


def test_fill_replaces_only_missing_numbers_per_policy():
    spec = [SimpleNamespace(name="a", type="double", categories=None, missing="median"),
            SimpleNamespace(name="k", type="integer", categories=None, missing="zero"),
            SimpleNamespace(name="c", type="category", categories=["x"], missing="median")]
    rows = pa.table({"a": pa.array([1.0, None, 3.0, 8.0]), "k": pa.array([None, 2, 3, None], pa.int32()),
                     "c": pa.array(["x", None, "other", "x"])})
    enc = Encoder.from_spec(spec).fit(rows)
    raw = enc.raw(rows)
    filled = enc.fill(raw.copy(order="K"))
    assert enc.medians["a"] == 3.0
    np.testing.assert_array_equal(filled, [[1, 0, 1, 0], [3, 2, 0, 0], [3, 3, 0, 1], [8, 0, 1, 0]])
    assert filled.flags.f_contiguous and np.isnan(raw).sum() == 3  # the raw matrix is left alone


def _reference_codes(type_: str, values: list) -> np.ndarray:
    """The codes encoding, value by value: a category's place in its list ('other' last), NaN if missing."""
    if type_ != "category":
        return _reference(type_, values)
    return np.array([[math.nan if v is None else float([*CATS, OTHER].index(v))] for v in values],
                    dtype=np.float32).reshape(len(values), 1)


@pytest.mark.parametrize("shape", ["array", "chunks", "record batch"])
@pytest.mark.parametrize("type_, arrow", LAYOUTS, ids=[str(a) for _, a in LAYOUTS])
def test_codes_match_the_reference(type_, arrow, shape):
    values = VALUES[type_]
    if pa.types.is_integer(arrow) and arrow.bit_width < 32:
        values = [v if v is None else v % 100 for v in values]
    col = pa.chunked_array([pa.array(values[:2], arrow), pa.array(values[2:], arrow)]) if shape == "chunks" \
        else pa.array(values, arrow)
    data = pa.record_batch([col], names=["f"]) if shape == "record batch" else pa.table({"f": col})
    enc = _encoder(type_)
    for _ in range(2):
        x = enc.codes(data)
        assert x.dtype == np.float32 and x.flags.f_contiguous
        np.testing.assert_array_equal(x, _reference_codes(type_, values))
    assert enc.feature_types == ["c" if type_ == "category" else "q"]


def test_both_encodings_tell_the_same_missing_values():
    """The interval's scale reads which inputs are unknown; a model on codes must see what a one-hot one does."""
    spec = [SimpleNamespace(name="a", type="double", categories=None, missing="zero"),
            SimpleNamespace(name="c", type="category", categories=["x", "y"], missing="zero"),
            SimpleNamespace(name="b", type="boolean", categories=None, missing="zero")]
    rows = pa.table({"a": pa.array([1.0, None, 3.0, None]), "c": pa.array(["x", None, "other", "y"]),
                     "b": pa.array([None, True, False, True])})
    enc = Encoder.from_spec(spec)
    expected = [[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 0, 0]]  # 'other' tells no more than a missing value
    np.testing.assert_array_equal(enc.missing_indicators(enc.raw(rows)), expected)
    np.testing.assert_array_equal(enc.missing_indicators(enc.codes(rows), codes=True), expected)
    assert enc.codes(rows).shape == (4, 3) and enc.raw(rows).shape == (4, 5)
