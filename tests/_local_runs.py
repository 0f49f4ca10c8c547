"""Shared pieces of the local-run tests: a small demo source and runs made once per session.

With `pytest -n 2` each xdist worker has its own session; `once()` builds a run in one of
them and lets the other reuse it (an flock in the shared temp folder), so the suite pays for
each end-to-end run once.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
from pathlib import Path
from typing import Any, Callable

import duckdb
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "data" / "small_pipeline.yaml"
ENV = ROOT / "pipelines" / "example.env"
SOURCE_ROWS = 20_000


def shared_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # Under xdist the base is .../popen-gwN; its parent is shared by the workers of this session.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "stepkit-local-runs"
    path.mkdir(exist_ok=True)
    return path


def once(shared: Path, name: str, build: Callable[[Path], Any]) -> Any:
    """`build(folder)` the first time any worker asks for `name`; its JSON result afterwards."""
    folder = shared / name
    done = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return json.loads(done.read_text())
        folder.mkdir(exist_ok=True)
        result = build(folder)
        done.write_text(json.dumps(result))
        return result


def make_source(folder: Path, rows: int = SOURCE_ROWS) -> str:
    from stepkit import demo_data
    from stepkit.local.source import PLACEHOLDERS
    from stepkit.compiler.load import load_pipeline

    pipeline, _ = load_pipeline(SMALL, dict(PLACEHOLDERS))
    path = folder / "source.parquet"
    demo_data.write(str(path), pipeline, rows=rows)
    return str(path)


def cli(*args: str, env: dict[str, str] | None = None):
    from stepkit.cli import main

    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def run_local(pipeline: Path, source: str, workdir: Path, *extra: str, env: dict[str, str] | None = None):
    # One thread per model fit: with pytest -n 2 the other core is busy, and two OpenMP threads
    # fighting over one core make a tiny xgboost fit ten times slower.
    env = {"STEPKIT_THREADS": "1", **(env or {})}
    return cli("run", str(pipeline), "--local", "--source", source, "--workdir", str(workdir),
               "--env-file", str(ENV), *extra, env=env)


def record(workdir: Path, run_id: str | None = None) -> dict[str, Any]:
    runs = sorted((workdir / "runs").glob("*/run.json"))
    if run_id:
        runs = [workdir / "runs" / run_id / "run.json"]
    assert len(runs) == 1, runs
    return json.loads(runs[0].read_text())


def query(sql: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def table(location: str) -> str:
    return f"read_parquet('{location.rstrip('/')}/**/*.parquet', hive_partitioning = false)"


def default_sigint() -> None:
    """In the child, before exec: a shell's background job (CI may start tests so) has SIGINT
    ignored, which exec keeps, and Python then never raises KeyboardInterrupt; a terminal's
    command has it at the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
