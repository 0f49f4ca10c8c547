"""Ctrl-C: the engine reports an interrupted query as KeyboardInterrupt, workers die quietly, and
`stepkit run --local` says `interrupted`, exits 130 and records the run as failed."""
from __future__ import annotations

import linecache
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stepkit.engines import QueryError
from stepkit.engines.duckdb import DuckDBEngine
from tests._local_runs import ENV, ROOT, SMALL, default_sigint, make_source, record

# ~1.6e9 pairs: about 25 s on one thread, so an interrupt after 0.3 s always lands inside it.
PAIRS = "FROM UNNEST(sequence(0, 39999)) AS a(i) CROSS JOIN UNNEST(sequence(0, 39999)) AS b(j) WHERE (i * j) % 7 = 3"
LONG = {
    "select": f"SELECT count(*) AS n {PAIRS}",
    "ctas": f"CREATE TABLE db.t WITH (format = 'PARQUET', external_location = '{{loc}}/') AS SELECT count(*) AS n {PAIRS}",
}


def _sigint_now(engine: DuckDBEngine) -> None:
    os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C does to this process


def _interrupt_call(engine: DuckDBEngine) -> None:
    engine.con.interrupt()  # DuckDB's own API, from another thread


def _in_duckdb(thread_id: int) -> bool:
    """The thread is inside the engine's DuckDB call that runs the statement (not still parsing)."""
    frame = sys._current_frames().get(thread_id)
    return (frame is not None and frame.f_code.co_name in ("_select", "_write")
            and "self.con.execute(" in linecache.getline(frame.f_code.co_filename, frame.f_lineno))


def _once_running(how, engine: DuckDBEngine, thread_id: int) -> None:
    _until(lambda: _in_duckdb(thread_id), 20)
    time.sleep(0.2)
    how(engine)


@pytest.mark.parametrize("how", [_sigint_now, _interrupt_call], ids=["SIGINT", "con.interrupt"])
@pytest.mark.parametrize("kind", ["select", "ctas"])
def test_an_interrupted_query_raises_keyboard_interrupt_and_leaves_nothing_behind(tmp_path, how, kind):
    wh, loc = tmp_path / "warehouse", tmp_path / "tables" / "t"
    engine = DuckDBEngine(wh, threads=1)
    # Python's own handler, as in the CLI (pytest or xdist may have put theirs there).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sender = threading.Thread(target=_once_running, args=(how, engine, threading.get_ident()), daemon=True)
    try:
        sender.start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            engine.execute(LONG[kind].format(loc=loc))
        assert time.perf_counter() - start < 10  # stopped, not run to its end (~25 s)
    finally:
        sender.join(30)
        signal.signal(signal.SIGINT, previous)
    # _write's staging folder is gone, nothing reached the table's location, no table was made,
    # and the connection still answers.
    assert [p.name for p in (wh / "_tmp").glob("*") if p.name != "spill"] == []
    assert not loc.exists() or list(loc.rglob("*")) == []
    assert engine.table_location("db", "t") is None
    assert engine.execute("SELECT 41 + 1 AS n").rows == [(42,)]
    engine.close()


@pytest.mark.parametrize("sql, message", [
    ("SELECT CAST('x' AS integer) AS n", "SELECT failed in DuckDB: Conversion Error"),
    ("SELECT nope(1) AS n", "SELECT failed in DuckDB: Catalog Error"),
])
def test_other_duckdb_errors_stay_query_errors(tmp_path, sql, message):
    engine = DuckDBEngine(tmp_path / "warehouse", threads=1)
    with pytest.raises(QueryError, match=message):
        engine.execute(sql)
    engine.close()


PROBE = '''
import os, signal, time


def run(action):
    if action == "report":
        handler = signal.getsignal(signal.SIGINT)
        return getattr(handler, "name", repr(handler))
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaching this worker
    time.sleep(5)
    return "survived SIGINT"
'''


@pytest.fixture
def probe(tmp_path, monkeypatch):
    (tmp_path / "sk_sigint_probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))  # workers receive the parent's sys.path
    return "sk_sigint_probe"


def test_workers_have_sigint_at_its_default(probe):
    """The forkserver hands its workers the SIGINT handler preload.py set: the default action."""
    import threading

    from stepkit.local.pool import Workers

    assert Workers(1).single(probe, ("report",), 1, threading.Event()) == "SIG_DFL"


def test_a_worker_ends_at_once_on_sigint(probe):
    """No KeyboardInterrupt raised in the worker (Python's handler would send it back as the
    task's exception): the process just ends, which the pool reports as a dead worker."""
    import threading
    from concurrent.futures.process import BrokenProcessPool

    from stepkit.local.pool import Workers

    start = time.perf_counter()
    with pytest.raises(BrokenProcessPool):
        Workers(1).single(probe, ("die",), 1, threading.Event())
    assert time.perf_counter() - start < 4  # not after the 5 s sleep


def _sigint_action(pid: int) -> str:
    """What the process does with SIGINT now, from the kernel's view (/proc/PID/status)."""
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    bit = 1 << (signal.SIGINT - 1)
    if int(fields["SigIgn"], 16) & bit:
        return "ignored"
    return "caught" if int(fields["SigCgt"], 16) & bit else "default"


def _forkserver(parent: int) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"forkserver" in cmdline:
            return int(entry.name)
    return None


def _until(what, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("when", ["forkserver starting", "forkserver importing"])
def test_ctrl_c_during_a_sql_stage_ends_the_run_quietly(tmp_path, when):
    """Ctrl-C (SIGINT to the process group) while StagingFeatures runs: at once (the forkserver's
    interpreter most likely still starting, before preload.py), or once preload.py runs."""
    source = make_source(tmp_path)
    workdir = tmp_path / "work"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STEPKIT_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stepkit", "run", str(SMALL), "--local", "--source", source,
         "--workdir", str(workdir), "--env-file", str(ENV)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
        start_new_session=True,  # its own process group, as a terminal gives a command
        preexec_fn=default_sigint)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        _until(lambda: any("StagingFeatures (athena_ctas)" in line for line in lines), 60)
        if when == "forkserver importing":  # preload.py has set SIGINT to its default
            server = _until(lambda: _forkserver(proc.pid), 10)
            _until(lambda: _sigint_action(server) != "caught", 10)
        # "starting": pool.start() spawns the forkserver with SIGINT blocked, so a Ctrl-C in its
        # interpreter's start-up (a fatal-error traceback before) waits for preload.py's handler.
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(10)
    out = "".join(lines)
    assert rc == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert out.rstrip().endswith("interrupted"), out
    assert "StagingFeatures: done" not in out, out  # it landed in the stage
    assert record(workdir)["status"] == "failed"

    def group_gone() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False

    _until(group_gone, 10)  # the forkserver and its workers ended too
