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

# kind name -> "module:Class". The order is the one the schema and error messages list.
KINDS = {
    "ridge": "stepkit.ml.kinds.ridge:RidgeKind",
    "xgboost": "stepkit.ml.kinds.xgboost:XGBoostKind",
    "xgboost_quantile": "stepkit.ml.kinds.xgboost_quantile:XGBoostQuantileKind",
    "logistic": "stepkit.ml.kinds.logistic:LogisticKind",
    "xgboost_classifier": "stepkit.ml.kinds.xgboost_classifier:XGBoostClassifierKind",
}
# What the built-in kinds predict (a package's kind says so itself, in its class's `task`): the spec
# reads it to pair models with targets, without importing the kinds' modules.
TASKS = {"ridge": "regression", "xgboost": "regression", "xgboost_quantile": "regression",
         "logistic": "classification", "xgboost_classifier": "classification"}
GROUP = "stepkit.models"


class UnknownKind(StepkitError):
    """A kind name no installed package provides (an artifact from elsewhere, a plugin removed)."""


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """Every kind a spec may name: the built-in ones, then those installed packages register."""
    return [*KINDS, *sorted(n for n in _plugins() if n not in KINDS)]


def known(name: str) -> bool:
    # Installed packages are looked up only for a name that is not built in: the common case reads no metadata.
    return name in KINDS or name in _plugins()


def task(name: str) -> str:
    """`regression` or `classification`: what a kind's models predict."""
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
