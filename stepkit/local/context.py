"""What a block's `run_local` receives. The runner builds one per run.

Contract between the runner (stepkit/local/runner.py), the engine (stepkit/engines/) and the
blocks (stepkit/steps/*.run_local): blocks use only what is here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stepkit.ir.context import Context


@dataclass
class LocalContext:
    compile: Context  # compile context whose root is the local warehouse (ctx.names.* are local paths)
    run_id: str
    workdir: Path  # the --workdir; the warehouse is workdir / "warehouse"
    run_dir: Path  # workdir / "runs" / run_id
    config_path: Path  # the worker config (stepkit.config) for this run
    engine: Any  # stepkit.engines.Engine: runs Athena SQL locally
    concurrency: int  # fan-out processes at once: min(spec, cores)
    # progress(stage, done, total): the runner shows it
    progress: Callable[[str, int, int], None] = lambda stage, done, total: None
    log: Callable[[str], None] = print
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self):
        return self.compile.names
