"""A pipeline's target: a number to predict (regression) or a class (classification)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from stepkit.spec.metrics import CLASSIFICATION, REGRESSION
from stepkit.spec.models import Category, Model, _check_json_path
from stepkit.spec.names import ColumnName


class Target(Model):
    """What the pipeline predicts: a number (regression) or a class (classification)."""

    name: ColumnName = Field(description="Column name of the target, e.g. `age`.")
    json_path: str = Field(description="Where the known value sits in the JSON document.")
    type: Literal["integer", "double", "boolean", "category"] = Field(
        description="`integer`/`double`: a number (regression); `boolean` (true/false) or `category` (one of "
        "`categories`): a class (classification).")
    min: float | None = Field(None, description="Numeric targets: smallest valid value; known values outside "
                              "[min, max] are treated as unknown.")
    max: float | None = Field(None, description="Numeric targets: largest valid value.")
    categories: list[Category] | None = Field(
        None, description="`category` targets: the classes (compared lower-cased). A known value not listed is "
        "treated as unknown (it teaches no class).")
    default: float | bool | str = Field(
        description="Given to records no model could score (unparseable JSON): a number in [min, max], "
        "true/false, or one of `categories`.")
    probabilities: Literal["predicted", "all"] = Field(
        "predicted", description="Classification targets: `predicted` writes the predicted class and its "
        "calibrated probability; `all` also writes every class's probability (a map class -> probability).")

    _path = field_validator("json_path")(_check_json_path)

    @property
    def task(self) -> str:
        return CLASSIFICATION if self.type in ("boolean", "category") else REGRESSION

    @property
    def classes(self) -> list[str] | None:
        """The classes in order (the model's output columns); None for a numeric target."""
        if self.type == "boolean":
            return ["false", "true"]
        if self.type == "category":
            return [c.lower() for c in self.categories or []]
        return None

    @model_validator(mode="after")
    def _range(self) -> "Target":
        if self.task == REGRESSION:
            if self.min is None or self.max is None:
                raise ValueError(f"a numeric target ({self.type}) needs `min` and `max`")
            if self.categories:
                raise ValueError("`categories` is only for type: category")
            if isinstance(self.default, (bool, str)):
                raise ValueError(f"default {self.default!r}: a numeric target's default is a number")
            if self.min >= self.max:
                raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
            if not self.min <= self.default <= self.max:
                raise ValueError(f"default {self.default:g} is outside [{self.min:g}, {self.max:g}]")
            if self.probabilities != "predicted":
                raise ValueError("`probabilities` is only for boolean and category targets")
            return self
        if self.min is not None or self.max is not None:
            raise ValueError("`min`/`max` are only for numeric targets")
        if self.type == "boolean":
            if self.categories:
                raise ValueError("`categories` is only for type: category")
            if not isinstance(self.default, bool):
                raise ValueError(f"default {self.default!r}: a boolean target's default is true or false")
            return self
        if not self.categories or len(self.categories) < 2:
            raise ValueError("a category target needs `categories`, at least two")
        lowered = [c.lower() for c in self.categories]
        dupes = sorted({c for c in lowered if lowered.count(c) > 1})
        if dupes:
            raise ValueError(f"categories are compared lower-cased and must be distinct: {', '.join(map(repr, dupes))}")
        if not isinstance(self.default, str) or self.default.lower() not in lowered:
            raise ValueError(f"default {self.default!r} is not one of the categories ({', '.join(self.categories)})")
        return self
