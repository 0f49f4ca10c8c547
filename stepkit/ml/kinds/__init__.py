"""Model kinds: one class per kind (`training.models[].kind`), one module per class.

A kind says how its models are fitted on encoded rows and how a fitted model scores rows
(stepkit/ml/kinds/base.py). Adding a built-in kind is its module plus one line in KINDS; a
package adds its own through the `stepkit.models` entry-point group:

    [project.entry-points."stepkit.models"]
    my_kind = "my_package.kinds:MyKind"

This module imports nothing heavy (the standard library, stepkit.errors): the spec reads the
names from it without loading numpy or xgboost, and stays fast to import.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from stepkit.errors import StepkitError
# The names (what a spec may say) live in the spec, which imports no ML code.
from stepkit.spec.kinds import GROUP, KINDS, TASKS, _plugins, known, names  # noqa: F401

class UnknownKind(StepkitError):
    """A kind name no installed package provides (an artifact from elsewhere, a plugin removed)."""


def task(name: str) -> str:
    """`regression` or `classification`: what a kind's models predict (a package's kind: its class's `task`)."""
    return TASKS.get(name) or getattr(get(name), "task", "regression")


_LOADED: dict[str, Any] = {}


def get(name: str) -> Any:
    """The kind's instance (a stepkit.ml.kinds.base.ModelKind), its module imported on first use."""
    target = KINDS.get(name) or _plugins().get(name)
    if target is None:
        raise UnknownKind(f"model kind {name!r} is not installed here (known: {', '.join(names())})")
    kind = _LOADED.get(target)
    if kind is None:
        module, _, attr = target.partition(":")
        kind = _LOADED[target] = getattr(import_module(module), attr)()
    return kind
