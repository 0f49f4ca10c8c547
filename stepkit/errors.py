"""Errors a user can cause, each rendered as one located line (`FILE:LINE:COL: field: message`).

The CLI catches `StepkitError` and prints `str(error)`; anything else is a bug in stepkit
and keeps its traceback.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One located problem in a user's file."""

    file: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {field}{self.message}"


class StepkitError(Exception):
    """A mistake in user input. `str()` is what the user sees: one line per problem."""

    def __init__(self, message: str | None = None, problems: list[Problem] | None = None):
        self.problems = list(problems or [])
        super().__init__(message or "\n".join(str(p) for p in self.problems))


class SpecError(StepkitError):
    """The pipeline YAML is malformed or invalid."""


class DataError(StepkitError):
    """Input data is unusable (names the table and the row count)."""


class AwsError(StepkitError):
    """An AWS call failed (names the action)."""


class QualityGateError(StepkitError):
    """A trained model missed the spec's quality gate."""
