"""The one feature encoding, shared by training and prediction (no train/serve skew).

Input: Arrow columns as the feature tables hold them (numeric, boolean, category text already
lower-cased and mapped to a known category, 'other' or NULL by the SQL). Output: a float32
matrix in one of two encodings:
- `raw` (one-hot): one column per numeric/boolean feature and one per category value (+ 'other');
  what linear models need, and what a model kind gets unless it asks for codes.
- `codes`: one column per feature, a category as its place in its list (+ 'other' last), for
  trees that split on categories themselves (xgboost's categorical splits, `feature_types`):
  half the columns at the demo's 21 features, so binning and every histogram cost less.

- Tree models get NaN for a missing numeric/boolean value (XGBoost learns where to send it).
- The linear model gets every NaN filled per the feature's `missing` policy: `zero`, or the
  median learned on training rows (`median`, and `keep`, which only trees can honour).
A missing category is all zeros in its one-hot block for both, and NaN as a code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

OTHER = "other"


@dataclass
class Encoder:
    """Everything needed to encode rows the same way later: stored in the model artifact."""

    features: list[dict[str, Any]]  # name, type, categories, missing (from the spec)
    medians: dict[str, float] = field(default_factory=dict)  # learned on training rows
    # Built once per column type, not per batch (not part of the artifact).
    _lookups: dict[tuple[str, str], pc.SetLookupOptions] = field(default_factory=dict, repr=False, compare=False)
    _codes: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_spec(cls, features: list[Any]) -> "Encoder":
        out = []
        for f in features:
            cats = [c.lower() for c in f.categories] if f.categories else None
            out.append({"name": f.name, "type": f.type, "categories": cats, "missing": f.missing})
        return cls(out)

    @property
    def input_columns(self) -> list[str]:
        return [f["name"] for f in self.features]

    @property
    def columns(self) -> list[str]:
        """Names of the encoded matrix's columns, in order."""
        out = []
        for f in self.features:
            if f["type"] == "category":
                out += [f"{f['name']}={c}" for c in [*f["categories"], OTHER]]
            else:
                out.append(f["name"])
        return out

    def raw(self, data: pa.Table | pa.RecordBatch) -> np.ndarray:
        """The one-hot matrix: NaN where a numeric/boolean value is missing."""
        n = data.num_rows
        # Column-major: each column is written contiguously (3.5x faster than into a row-major
        # array), and xgboost's inplace_predict reads strided arrays without a copy.
        out = np.empty((n, self.width), dtype=np.float32, order="F")
        j = 0
        # Every Arrow call costs microseconds whatever the row count: at ~1,000-row batches those
        # fixed costs were most of the encoding, so each column takes as few calls as it can.
        for f in self.features:
            col = data.column(f["name"])
            if f["type"] == "category":
                k = len(f["categories"]) + 1
                # A missing category is NaN (nulls become NaN in numpy): all zeros in its block.
                np.equal(self._category_codes(f["name"], col)[:, None], self._codes[k],
                         out=out[:, j:j + k])  # no bool temporary
                j += k
            else:
                out[:, j] = _floats(col)
                j += 1
        return out

    def codes(self, data: pa.Table | pa.RecordBatch) -> np.ndarray:
        """One column per feature (`feature_types` says which are categories): a category's code,
        0..len(categories) ('other' last), NaN where it or a numeric/boolean value is missing."""
        out = np.empty((data.num_rows, len(self.features)), dtype=np.float32, order="F")
        for j, f in enumerate(self.features):
            col = data.column(f["name"])
            out[:, j] = self._category_codes(f["name"], col) if f["type"] == "category" else _floats(col)
        return out

    @property
    def feature_types(self) -> list[str]:
        """xgboost's `feature_types` of the `codes` matrix: "c" a category, "q" a number."""
        return ["c" if f["type"] == "category" else "q" for f in self.features]

    def _category_codes(self, name: str, col: pa.ChunkedArray | pa.Array) -> np.ndarray:
        # One hash lookup per row (or per distinct value of a dictionary column), not a string
        # compare per value and category. Float, NaN where the row is null or its value unknown.
        if pa.types.is_dictionary(col.type):
            return self._dictionary_codes(name, col)
        return _to_numpy(pc.index_in(col, options=self._lookup(name, col.type)))

    def _dictionary_codes(self, name: str, col: pa.ChunkedArray | pa.Array) -> np.ndarray:
        # A category read as a dictionary (as Parquet stores it): look up its few distinct values,
        # not every row. NaN where the row is null or its value unknown.
        parts = []
        for chunk in col.chunks if isinstance(col, pa.ChunkedArray) else [col]:
            values = chunk.dictionary
            known = _to_numpy(pc.index_in(values, options=self._lookup(name, values.type))).astype(np.float64)
            known = np.append(known, np.nan)  # the last entry stands for a null row
            rows = chunk.indices.to_numpy(zero_copy_only=False)  # float, NaN where null
            if chunk.null_count:
                rows = np.where(np.isnan(rows), len(values), rows).astype(np.intp)
            parts.append(known[rows])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @property
    def category_columns(self) -> list[str]:
        return [f["name"] for f in self.features if f["type"] == "category"]

    @cached_property
    def width(self) -> int:
        return len(self.columns)

    def _lookup(self, name: str, type_: pa.DataType) -> pc.SetLookupOptions:
        key = (name, str(type_))
        if key not in self._lookups:
            f = next(f for f in self.features if f["name"] == name)
            self._lookups[key] = pc.SetLookupOptions(pa.array([*f["categories"], OTHER], type_))
            k = len(f["categories"]) + 1
            self._codes.setdefault(k, np.arange(k, dtype=np.int32))
        return self._lookups[key]

    def fit(self, data: pa.Table) -> "Encoder":
        """Learn the medians the linear model fills missing values with."""
        x = self.raw(data)
        self.medians = {}
        for j, name in self._numeric_columns():
            values = x[:, j]
            values = values[~np.isnan(values)]
            self.medians[name] = float(np.median(values)) if values.size else 0.0
        return self

    def fill(self, x: np.ndarray) -> np.ndarray:
        """The linear model's matrix: the raw matrix with NaN filled per policy (in place)."""
        # One vectorised call over the whole matrix (one-hot columns are never NaN): a loop per
        # column cost more than the model at a thousand rows.
        np.copyto(x, self._fill_values(), where=np.isnan(x))
        return x

    def _fill_values(self) -> np.ndarray:
        by_name = {f["name"]: f for f in self.features}
        row = np.zeros(self.width, dtype=np.float32)
        for j, name in self._numeric_columns():
            row[j] = 0.0 if by_name[name]["missing"] == "zero" else self.medians.get(name, 0.0)
        return row

    def _numeric_columns(self) -> list[tuple[int, str]]:
        out, j = [], 0
        for f in self.features:
            if f["type"] == "category":
                j += len(f["categories"]) + 1
            else:
                out.append((j, f["name"]))
                j += 1
        return out

    def missing_indicators(self, x: np.ndarray, codes: bool = False) -> np.ndarray:
        """0/1 per input feature: is it unknown on this row (NaN, or no known category)? `x` is the
        one-hot matrix, or with `codes` the codes matrix."""
        out = np.empty((x.shape[0], len(self.features)), dtype=np.float32, order="F")
        if codes:
            for j, f in enumerate(self.features):
                # 'other' (the last code) tells no more than a missing value about the target.
                out[:, j] = np.isnan(x[:, j]) | (x[:, j] == len(f["categories"])) if f["type"] == "category" \
                    else np.isnan(x[:, j])
            return out
        j = 0
        for i, f in enumerate(self.features):
            if f["type"] == "category":
                k = len(f["categories"]) + 1
                # 'other' tells no more than a missing value about the target.
                known = x[:, j]
                for c in range(j + 1, j + k - 1):
                    known = known + x[:, c]
                out[:, i] = known == 0
                j += k
            else:
                out[:, i] = np.isnan(x[:, j])
                j += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "medians": self.medians, "columns": self.columns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Encoder":
        return cls(d["features"], dict(d["medians"]))


def _floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric/boolean column as numbers numpy can store into float32, nulls as NaN."""
    t = col.type
    if pa.types.is_floating(t) or (pa.types.is_integer(t) and t.bit_width <= 32):
        # Arrow turns nulls into NaN when it converts (integers with nulls become float64, exact);
        # numpy then rounds once to float32, as the cast through float64 did.
        return _to_numpy(col)
    if pa.types.is_boolean(t):
        return _to_numpy(pc.cast(col, pa.float32()))  # 0/1, exact
    return _to_numpy(pc.cast(col, pa.float64()))


def _to_numpy(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr.to_numpy(zero_copy_only=False)
