"""The columns stepkit's prediction, QA and result tables give each target, named in one place.

With one target the per-target columns keep their plain names (`lower_bound`, `probability`,
`model_version`); with several, each takes the target's name as a suffix (`lower_bound_age`,
`probability_homeowner`), so one row per id holds every target's prediction. The prediction's own
column is always `predicted_<target>`, the known value's `known_<target>`.
"""
from __future__ import annotations

from typing import Any, Sequence

# Per-target columns, by the task they belong to (regression: a number; classification: a class).
REGRESSION_COLUMNS = ("lower_bound", "upper_bound", "confidence_score")
CLASSIFICATION_COLUMNS = ("probability", "class_probabilities")
MODEL_COLUMNS = ("model_name", "model_version")
QA_COLUMNS = {"regression": ("abs_error", "known_in_interval"), "classification": ("correct",)}
EVERY_PER_TARGET = (*REGRESSION_COLUMNS, *CLASSIFICATION_COLUMNS, *MODEL_COLUMNS,
                    *QA_COLUMNS["regression"], *QA_COLUMNS["classification"])


class Columns:
    """Column names for a pipeline's targets (Target models, or anything with .name/.type/.task)."""

    def __init__(self, targets: Sequence[Any]):
        self.targets = list(targets)
        self.several = len(self.targets) > 1

    def of(self, base: str, target: Any) -> str:
        """A per-target column's name: `base`, or `base_<target>` when the pipeline has several targets."""
        return f"{base}_{target.name}" if self.several else base

    @staticmethod
    def predicted(target: Any) -> str:
        return f"predicted_{target.name}"

    @staticmethod
    def known(target: Any) -> str:
        return f"known_{target.name}"

    def predictions(self, id_type: str) -> list[tuple[str, str]]:
        """(name, Athena DDL type) of the predictions table's columns, before `run_id` and the partition."""
        out = [("id", id_type)]
        for t in self.targets:
            if t.task == "regression":
                out += [(self.predicted(t), "double"), *[(self.of(c, t), "double") for c in REGRESSION_COLUMNS]]
            else:
                out += [(self.predicted(t), "boolean" if t.type == "boolean" else "string"),
                        (self.of("probability", t), "double")]
                if t.probabilities == "all":
                    out.append((self.of("class_probabilities", t), "map<string,double>"))
            out += [(self.of(c, t), "string") for c in MODEL_COLUMNS]
        return out

    def reserved(self) -> set[str]:
        """Every column name these targets add to the result tables."""
        out = {self.predicted(t) for t in self.targets} | {self.known(t) for t in self.targets}
        out |= {self.of(c, t) for t in self.targets for c in EVERY_PER_TARGET}
        return out
