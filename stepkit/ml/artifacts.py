"""The model artifact: joblib of the chosen model with everything prediction needs, plus metadata.

`model.joblib` holds a plain dict (no stepkit classes pickled by reference other than the small
dataclasses in stepkit.ml), so an artifact outlives refactors of the training code. Its
version is a hash of its bytes: the same training data and settings give the same version.
"""
from __future__ import annotations

import hashlib
import io
import platform
from dataclasses import dataclass
from typing import Any

import numpy as np

from stepkit import storage
from stepkit.errors import DataError

MODEL_FILE = "model.joblib"
METRICS_FILE = "metrics.json"
FORMAT = 1


def library_versions() -> dict[str, str]:
    import joblib
    import pyarrow
    import xgboost

    return {"python": platform.python_version(), "numpy": np.__version__, "pyarrow": pyarrow.__version__,
            "xgboost": xgboost.__version__, "joblib": joblib.__version__}


def dumps(artifact: dict[str, Any]) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(artifact, buf, compress=3)
    return buf.getvalue()


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def save(models_location: str, artifact: dict[str, Any], metrics: dict[str, Any]) -> str:
    """Write model.joblib then metrics.json (which names the version). Returns the version."""
    data = dumps(artifact)
    version = version_of(data)
    storage.write_bytes(storage.join(models_location, MODEL_FILE), data)
    storage.write_json(storage.join(models_location, METRICS_FILE), {**metrics, "model_version": version})
    return version


@dataclass
class Loaded:
    artifact: dict[str, Any]
    version: str


_CACHE: dict[tuple[str, int], Loaded] = {}
_KEEP = 8  # artifacts kept loaded per process: a worker scores every target of a pipeline


def load(models_location: str) -> Loaded:
    """The artifact of a run; cached per process (a worker scores many batches with one model)."""
    import joblib

    uri = storage.join(models_location, MODEL_FILE)
    data = storage.read_bytes(uri)
    key = (uri, hash(data))
    if key not in _CACHE:
        try:
            artifact = joblib.load(io.BytesIO(data))
        except Exception as e:  # noqa: BLE001 - any unpickling failure means the same to the user
            raise DataError(f"{uri}: not a stepkit model artifact ({type(e).__name__}: {e})") from None
        if not isinstance(artifact, dict) or artifact.get("format") != FORMAT:
            raise DataError(f"{uri}: not a stepkit model artifact of format {FORMAT}")
        if len(_CACHE) >= _KEEP:
            _CACHE.clear()
        _CACHE[key] = Loaded(artifact, version_of(data))
    return _CACHE[key]


def load_target(models_location: str, target: str) -> Loaded:
    """A target's artifact in a run's models folder: `<target>/model.joblib`, or (a run from before
    models had a folder per target) `model.joblib` itself when it is that target's."""
    own = storage.join(models_location, f"{target}/")
    if storage.exists(storage.join(own, MODEL_FILE)) or not storage.exists(storage.join(models_location, MODEL_FILE)):
        return load(own)
    loaded = load(models_location)
    named = (loaded.artifact.get("target") or {}).get("name")
    if named != target:
        raise DataError(f"{storage.join(models_location, MODEL_FILE)}: a model of {named!r}, not of {target!r}")
    return loaded
