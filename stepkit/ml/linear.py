"""`x @ coef + bias` for a linear model's predictions, the same for a row wherever it sits in its batch.

BLAS kernels (numpy's `@`) round the rows at the edge of a block differently from the rows inside
it, so a row's prediction changed in its last bits with its place in the batch; and a batch's row
order is not fixed (Parquet written by several threads). A run resumed after a kill then gave 266 of
5,933 final rows a prediction 1e-6 away from the clean run's (tests/test_local_kill.py, under load).
Here the sum runs one column at a time with numpy's elementwise multiply and add, which round every
row alike, in float64 (the rows arrive as float32; the products and sums then lose nothing to it).
"""
from __future__ import annotations

import numpy as np


def affine(x: np.ndarray, coef: np.ndarray, bias: float | np.ndarray = 0.0) -> np.ndarray:
    """`x @ coef + bias` in float64: `coef` is (columns,) for one output, (columns, k) for k."""
    coef = np.asarray(coef, dtype=np.float64)
    out = np.zeros((x.shape[0], *coef.shape[1:]), dtype=np.float64)
    term = np.empty_like(out)  # one buffer: the product is cast to float64 as it is written
    for j in range(x.shape[1]):
        np.multiply(x[:, j, None] if coef.ndim > 1 else x[:, j], coef[j], out=term)
        out += term
    return out + bias
