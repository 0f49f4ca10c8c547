"""The names of the model kinds a spec may name (`training.models[].kind`): the built-in ones, then
those installed packages register in the `stepkit.models` entry-point group. Each names the class
that implements it (stepkit/ml/kinds/); nothing here imports it, so the spec stays free of ML code.
"""
from __future__ import annotations

# kind name -> "module:Class". The order is the one the schema and error messages list.
KINDS = {
    "ridge": "stepkit.ml.kinds.ridge:RidgeKind",
    "xgboost": "stepkit.ml.kinds.xgboost:XGBoostKind",
    "xgboost_quantile": "stepkit.ml.kinds.xgboost_quantile:XGBoostQuantileKind",
    "logistic": "stepkit.ml.kinds.logistic:LogisticKind",
    "xgboost_classifier": "stepkit.ml.kinds.xgboost_classifier:XGBoostClassifierKind",
}
# What the built-in kinds predict (a package's kind says so itself, in its class's `task`): the
# compiler reads it to pair models with targets without importing the kinds' modules.
TASKS = {"ridge": "regression", "xgboost": "regression", "xgboost_quantile": "regression",
         "logistic": "classification", "xgboost_classifier": "classification"}
# The built-in kinds that read category codes (ModelKind.category_codes): `category_splits` applies to them.
CODES = ("xgboost", "xgboost_quantile", "xgboost_classifier")
GROUP = "stepkit.models"


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """Every kind a spec may name: the built-in ones, then those installed packages register."""
    return [*KINDS, *sorted(n for n in _plugins() if n not in KINDS)]


def known(name: str) -> bool:
    # Installed packages are looked up only for a name that is not built in: the common case reads no metadata.
    return name in KINDS or name in _plugins()
