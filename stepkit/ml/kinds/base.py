"""What a model kind provides: its fits, the model they make, and that model's predictions."""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np


class ModelKind:
    """One kind of model (`training.models[].kind`), registered by name in stepkit/ml/kinds/__init__.py.

    Rows arrive encoded (stepkit/ml/encoding.py), as float32 columns: `raw` keeps NaN where a
    value is missing (trees handle it), `filled` has it imputed (what a linear model needs).
    The model a kind makes is stored in the artifact as it is (joblib): plain data or library
    objects, so an artifact outlives changes to this code. `spec` is the spec's ModelSpec.
    """

    name: ClassVar[str]
    # "regression": predict() gives numbers; "classification": logits() gives one score per class
    # (calibrated into probabilities by stepkit/ml/calibration.py), and fits() get `y` as class codes
    # 0..classes-1.
    task: ClassVar[str] = "regression"
    # True: predict() reads `filled`, so prediction imputes each batch (work the others skip).
    needs_filled: ClassVar[bool] = False
    # Training starts fits in rank order, lowest first: the longest first, so the last to end is short.
    rank: ClassVar[int] = 1
    # True: `raw` is the codes matrix (Encoder.codes: one column per feature, a category as its
    # code), in fits() and in predict()/logits(), and fits() also get `feature_types` ("c" a
    # category, "q" a number): for trees that split on categories themselves. The artifact records
    # the encoding a model was fitted on, so it is always scored on that one.
    category_codes: ClassVar[bool] = False

    def fit_count(self, spec: Any) -> int:
        """How many fits `fits` gives (training shares the cores out before making them)."""
        return 1

    def fits(self, spec: Any, raw: np.ndarray, filled: np.ndarray, y: np.ndarray, nthread: int,
             classes: int | None = None) -> list[Callable[[], Any]]:
        """The model's fits, each a callable that may run in its own thread; `nthread`: the
        threads each may use; `classes`: the number of classes (classification); with
        `category_codes`, a `feature_types` keyword too. Their results, in order, go to `assemble`."""
        raise NotImplementedError

    def assemble(self, spec: Any, parts: list[Any]) -> tuple[Any, list[float] | None]:
        """(model, quantiles): the model the fits make, and the quantiles it predicts (None: none)."""
        return parts[0], None

    def predict(self, model: Any, quantiles: list[float] | None, raw: np.ndarray, filled: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """(point, quantiles or None): quantiles are columns (lower, median, upper), increasing in
        each row; with them the interval is conformalised quantile regression, without them it is
        the point plus a calibrated, row-scaled width."""
        raise NotImplementedError

    def logits(self, model: Any, raw: np.ndarray, filled: np.ndarray | None) -> np.ndarray:
        """Classification: one score per class (rows x classes, float), any monotone scale: softmax of
        a calibrated slope and bias of them gives the probabilities."""
        raise NotImplementedError
