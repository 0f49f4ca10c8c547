"""Container entrypoints: `python -m stepkit.workers.<task> --config URI --run-id ID [...]`.

Each task module also exposes `run(...)`, which the local runner calls in long-lived worker
processes. What they share is here: reading the worker config and the command-line contract
(one JSON summary line on stdout and exit 0; a user-facing error as one line on stderr and
exit 2, or 3 for a missed quality gate).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable


def load_config(config_uri: str) -> tuple[Any, Any]:
    """(pipeline, names) from the worker config at a local path or s3:// URI.

    A local run's worker process scores hundreds of batches with one config: parsing and
    validating it again each time cost more than reading it, so the result is kept per content.
    """
    from stepkit import config, storage
    from stepkit.errors import DataError

    data = storage.read_bytes(config_uri)
    cached = _CONFIGS.get(data)
    if cached is not None:
        return cached
    try:
        parsed = config.parse(data.decode())
    except (ValueError, KeyError) as e:
        raise DataError(f"{config_uri}: not a stepkit worker config: {str(e).splitlines()[0]}") from None
    _CONFIGS.clear()  # one run's config at a time
    _CONFIGS[data] = parsed
    return parsed


_CONFIGS: dict[bytes, tuple[Any, Any]] = {}


def stage_of(pipeline: Any, name: str | None) -> dict[str, Any]:
    """The stage `--stage` names, as the config holds it (its type, roles and settings); {} without one."""
    from stepkit.errors import DataError

    if name is None:
        return {}
    for stage in pipeline.stages:
        if stage.get("name") == name:
            return stage
    raise DataError(f"--stage {name!r}: the pipeline has no such stage (its config is older than the state "
                    "machine? deploy again)")


def main(prog: str, run: Callable[..., dict[str, Any]], batch: bool = False, argv: list[str] | None = None) -> int:
    from stepkit.errors import QualityGateError, StepkitError

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--config", required=True, help="Worker config (local path or s3:// URI).")
    parser.add_argument("--run-id", required=True, help="The execution name; selects the run's tables.")
    if batch:
        parser.add_argument("--batch-id", required=True, type=int, help="The batch to score.")
    parser.add_argument("--stage", default=None, help="The stage that runs this task (its roles and settings).")
    args = parser.parse_args(argv)
    extra = ((args.batch_id,) if batch else ()) + ((args.stage,) if args.stage is not None else ())
    try:
        summary = run(args.config, args.run_id, *extra)
    except QualityGateError as e:
        print(str(e), file=sys.stderr)
        return 3
    except StepkitError as e:
        print(str(e), file=sys.stderr)
        return 2
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0
