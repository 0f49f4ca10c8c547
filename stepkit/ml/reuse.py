"""Re-scoring with the model of an earlier run: pick the run, check its models against the spec,
copy them into this run's models folder (where prediction reads), so no training runs.

The check comes first, before anything is copied: a feature list, a feature's type, categories or
missing-value policy, or a target that differs from what the model was trained on is one error
naming the first difference. The model's bytes are copied as they are: its version stays.
"""
from __future__ import annotations

from typing import Any

from stepkit import storage
from stepkit.errors import DataError
from stepkit.ml import artifacts
from stepkit.ml.encoding import Encoder

LATEST = "latest"


def runs_with_models(names: Any) -> list[tuple[str, dict[str, Any]]]:
    """(run id, its models' summary) of every run under the pipeline's root that trained models."""
    out = []
    for run in storage.list_folders(f"{names.root}runs/"):
        uri = storage.join(names.models_location(run), artifacts.METRICS_FILE)
        if storage.exists(uri):
            out.append((run, storage.read_json(uri)))
    return out


def latest_passed(names: Any, current: str) -> str:
    """The run whose models passed the quality gate most recently (by when training finished)."""
    # Runs that trained (a re-scoring run's copy is not a newer model), passed, and say when.
    passed = [(summary.get("finished", ""), run) for run, summary in runs_with_models(names)
              if run != current and (summary.get("gate") or {}).get("passed") and summary.get("finished")
              and not summary.get("source_run")]
    if not passed:
        raise DataError(f"{names.root}runs/: no earlier run has a model that passed the quality gate: train one "
                        "first (a pipeline with a training stage), or name a run")
    return max(passed)[1]


def _difference(trained: list[dict[str, Any]], spec: list[dict[str, Any]]) -> str | None:
    """The first way the pipeline's features differ from the model's, in words; None when they agree."""
    have, want = [f["name"] for f in trained], [f["name"] for f in spec]
    missing = [n for n in have if n not in want]
    added = [n for n in want if n not in have]
    if missing or added:
        parts = ([f"lacks {', '.join(map(repr, missing))}"] if missing else []) + \
                ([f"adds {', '.join(map(repr, added))}"] if added else [])
        return f"the pipeline {' and '.join(parts)} ({len(have)} features trained, {len(want)} listed)"
    for i, (a, b) in enumerate(zip(trained, spec)):
        if a["name"] != b["name"]:
            return f"features[{i}] is {b['name']!r} where the model has {a['name']!r} (the order differs)"
        for k in ("type", "categories", "missing"):
            if a.get(k) != b.get(k):
                return f"features[{i}] {b['name']!r} has {k} {b.get(k)!r} where the model has {a.get(k)!r}"
    return None


def check(pipeline: Any, target: Any, artifact: dict[str, Any], where: str) -> None:
    """The model fits this pipeline: the same encoding of the same features, the same kind of target."""
    spec = Encoder.from_spec(pipeline.feature_list).features
    trained = artifact["encoder"]["features"]
    diff = _difference(trained, spec)
    if diff:
        raise DataError(f"{where}: the model was trained on another feature encoding: {diff}; re-train, or use "
                        "the features the model was trained on")
    have = artifact.get("target") or {}
    task = artifact.get("task", "regression")
    if task != target.task or have.get("type") != target.type:
        raise DataError(f"{where}: the model predicts a target of type {have.get('type')}; {target.name} is {target.type}")
    if task == "classification" and list(artifact.get("classes") or []) != target.classes:
        raise DataError(f"{where}: the model's classes {artifact.get('classes')} are not the target's {target.classes}")


def source_names(pipeline: Any, names: Any, from_prefix: str | None) -> Any:
    """Where the earlier runs are: this pipeline's root, or (on AWS) another prefix of its bucket. A
    local run's root is its work folder's warehouse, which every pipeline run there shares."""
    from stepkit.ir.names import Names

    aws_root = f"s3://{pipeline.aws.bucket}/{pipeline.aws.prefix}/"
    if not from_prefix or names.root != aws_root:
        return names
    return Names(pipeline, f"s3://{pipeline.aws.bucket}/{from_prefix.strip('/')}/")


def run(pipeline: Any, names: Any, run_id: str, source: str, from_prefix: str | None = None) -> dict[str, Any]:
    """Copy the models of run `source` (or the latest that passed the gate) into run `run_id`."""
    mine, names = names, source_names(pipeline, names, from_prefix)
    chosen = latest_passed(names, run_id) if source == LATEST else source
    summary_uri = storage.join(names.models_location(chosen), artifacts.METRICS_FILE)
    if not storage.exists(summary_uri):
        raise DataError(f"{names.models_location(chosen)}: run {chosen!r} has no models (no such run, or it "
                        "trained none)")
    summary = storage.read_json(summary_uri)
    if not (summary.get("gate") or {}).get("passed"):
        raise DataError(f"{summary_uri}: the models of run {chosen!r} missed the quality gate: "
                        f"{'; '.join((summary.get('gate') or {}).get('failures') or []) or 'no gate result'}")
    loaded = {}
    for t in pipeline.target_list:  # every check before any copy
        found = artifacts.load_target(names.models_location(chosen), t.name)
        check(pipeline, t, found.artifact, f"run {chosen}, target {t.name}")
        loaded[t.name] = found
    targets = {}
    for t in pipeline.target_list:
        src = storage.join(names.model_location(t.name, chosen), artifacts.MODEL_FILE)
        if not storage.exists(src):  # a run from before models had a folder per target
            src = storage.join(names.models_location(chosen), artifacts.MODEL_FILE)
        dest = mine.model_location(t.name, run_id)
        storage.write_bytes(storage.join(dest, artifacts.MODEL_FILE), storage.read_bytes(src))
        own = (summary.get("targets") or {}).get(t.name) or summary
        targets[t.name] = {**own, "model_version": loaded[t.name].version, "source_run": chosen}
        storage.write_json(storage.join(dest, artifacts.METRICS_FILE), targets[t.name])
    out = {"run_id": run_id, "source_run": chosen, "targets": targets, "gate": summary["gate"],
           "finished": summary.get("finished")}
    storage.write_json(storage.join(mine.models_location(run_id), artifacts.METRICS_FILE), out)
    return out
