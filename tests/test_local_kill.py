"""A local run killed with `kill -9` at any instant, then resumed, ends with the final results of a
clean run; a killed or terminated run leaves no process behind.

Each case kills the run's own process (SIGKILL, stepkit/local/faults.py) at one moment: as a stage
starts, after a service did a state's work but before the history says so (a CTAS the engine wrote,
a container task that ended, a cleanup that deleted), or as a stage ends. `--resume` then redrives
the execution or continues the run in a new one (stepkit/compiler/recovery.py). STEPKIT_KILL_EVERY=1
runs one case per state of the definition instead of the representative table (a few minutes).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stepkit.local.faults import ENV as KILL_ENV
from tests._local_runs import ENV, ROOT, SMALL, default_sigint, make_source, once, query, shared_dir, table

ROWS = 6_000
# The small pipeline with 250 batches: EvaluationFeatures is then written in 3 statements (a CTAS and
# two INSERT INTO, 100 partitions each), the case where a re-run could add rows twice.
BATCHES = 250


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    return shared_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def small_source(shared):
    return once(shared, "kill-source", lambda folder: make_source(folder, ROWS))


@pytest.fixture(scope="session")
def pipeline(shared) -> Path:
    def build(folder: Path) -> str:
        text = SMALL.read_text()
        assert "  batches: 7\n" in text
        path = folder / "pipeline.yaml"
        path.write_text(text.replace("  batches: 7\n", f"  batches: {BATCHES}\n"))
        return str(path)
    return Path(once(shared, "kill-pipeline", build))


def stepkit(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stepkit", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "STEPKIT_THREADS": "1", **(env or {})}, timeout=timeout,
                          start_new_session=True, preexec_fn=default_sigint)


def run(pipeline: Path, source: str, workdir: Path, *extra: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return stepkit("run", str(pipeline), "--local", "--source", source, "--workdir", str(workdir),
                   "--env-file", str(ENV), *extra, env=env)


def final_rows(workdir: Path, run_id: str) -> list[tuple]:
    """The final results, but what names the run rather than the result (its id; the model's version,
    a hash of an artifact that records the run id)."""
    location = workdir / "warehouse" / "tables" / "predict_age_final_results" / run_id
    return query(f"SELECT * EXCLUDE (run_id, model_version) FROM {table(str(location))} ORDER BY id")


@pytest.fixture(scope="session")
def clean_rows(shared, pipeline, small_source):
    def build(folder: Path) -> list:
        done = run(pipeline, small_source, folder / "work")
        assert done.returncode == 0, done.stdout + done.stderr
        (run_id,) = [p.name for p in (folder / "work" / "runs").iterdir()]
        return [list(r) for r in final_rows(folder / "work", run_id)]
    return [tuple(r) for r in once(shared, "kill-clean", build)]


# (when, state): a stage boundary, or the work of a state done and not yet recorded.
CASES = [
    ("enter", "PreCleanup"),                   # before anything
    ("commit", "StagingFeatures"),             # the CTAS wrote its table; the history never says so
    ("enter", "EvaluationFeatures_Insert01"),  # mid-stage: one of three statements written
    ("commit", "EvaluationFeatures_Insert02"), # an INSERT INTO done and unrecorded: must not add rows twice
    ("commit", "Training"),                    # the model written, the task's end unrecorded
    ("commit", "ParallelPredictionBatch"),     # a batch written, the others not started
    ("commit", "CreatePredictionsTable"),      # DDL done, unrecorded
    ("exit", "FinalResults"),                  # every table whole, the clean-up not run
    ("commit", "Cleanup"),                     # the clean-up done, the run's end unrecorded
    ("exit", "Cleanup"),                       # the last state ended, the execution's end unrecorded
]


def _every_state() -> list[tuple[str, str]]:
    from stepkit.compiler.build import compile_file
    from stepkit.local.adapters import tasks
    from stepkit.local.source import PLACEHOLDERS

    text = SMALL.read_text().replace("  batches: 7\n", f"  batches: {BATCHES}\n")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"stepkit-kill-{os.getpid()}.yaml"
    path.write_text(text)
    definition = compile_file(path, dict(PLACEHOLDERS)).definition
    out = []
    for path, _ in tasks.walk(definition):
        out += [("commit", path.rsplit("/", 1)[-1])]
    for name in definition["States"]:
        out += [("enter", name), ("exit", name)]
    return out


@pytest.mark.parametrize("when, state", _every_state() if os.environ.get("STEPKIT_KILL_EVERY") else CASES,
                         ids=lambda v: str(v))
def test_killed_at_any_instant_resume_ends_as_a_clean_run(tmp_path, pipeline, small_source, clean_rows, when, state):
    work = tmp_path / "work"
    killed = run(pipeline, small_source, work, env={KILL_ENV: f"{when}:{state}"})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stdout[-2000:], killed.stderr[-2000:])
    (run_id,) = [p.name for p in (work / "runs").iterdir()]
    status = stepkit("status", "--local", "--workdir", str(work))
    assert status.stdout.startswith(f"execution {run_id}: ABORTED") and f"--resume {run_id}" in status.stdout, status
    resumed = run(pipeline, small_source, work, "--resume", run_id)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stdout + resumed.stderr
    rec = json.loads((work / "runs" / run_id / "run.json").read_text())
    assert rec["status"] == "succeeded" and len(rec["executions"]) >= 2
    got = final_rows(work, run_id)
    # On a mismatch, say how the rows differ and what the resume did. Seen under load until ridge's and
    # the interval scale's sums stopped depending on a row's place in its batch (stepkit/ml/linear.py).
    assert got == clean_rows, (len(got), len(clean_rows), [r for r in got if r not in set(clean_rows)][:3],
                               resumed.stdout[-3000:])


def _group_gone(pgid: int, within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _started(work: Path, source: str, wait_for: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stepkit", "run", str(SMALL), "--local", "--source", source, "--workdir", str(work),
         "--env-file", str(ENV)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "STEPKIT_THREADS": "1", "PYTHONUNBUFFERED": "1"}, start_new_session=True,
        preexec_fn=default_sigint)
    assert proc.stdout is not None
    for line in proc.stdout:  # until the fan-out runs: workers, the forkserver and its resource tracker live
        if wait_for in line:
            return proc
    raise AssertionError(f"the run ended before {wait_for!r}")


@pytest.mark.parametrize("signum, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 130)],
                         ids=["kill -9", "SIGTERM"])
def test_a_killed_or_terminated_run_leaves_no_process_behind(tmp_path, small_source, signum, code):
    """Only the run's own process gets the signal (not its group): its workers, the forkserver and
    the resource tracker must notice and end by themselves."""
    proc = _started(tmp_path / "work", small_source, "ParallelPrediction (fan_out)")
    try:
        os.kill(proc.pid, signal.SIGSTOP)  # held still (and holding its lock) while status looks
        status = stepkit("status", "--local", "--workdir", str(tmp_path / "work"))
        os.kill(proc.pid, signal.SIGCONT)
        assert " RUNNING (started " in status.stdout.splitlines()[0], status  # the lock names the run
        os.kill(proc.pid, signum)
        assert proc.wait(30) == code, proc.stdout.read()[-3000:] if proc.stdout else ""
        assert _group_gone(proc.pid, 15), "processes of the run are still alive"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
