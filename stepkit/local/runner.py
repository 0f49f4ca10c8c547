"""`stepkit run --local`: the compiled state machine, executed on this machine.

Stages run in the order of the compiled ASL (StartAt, then Next), each through its block's
`run_local`. A failure runs the pipeline's failure path (as `CleanupOnFailure` does on AWS)
and leaves the run record `failed`; `--resume RUN_ID` continues from the failed stage, first
re-running any finished stage whose tables are gone (the failure clean-up drops them).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stepkit.errors import StepkitError
from stepkit.local.progress import Progress
from stepkit.local.retry import TASK_FAILED, Attempts, RetryPolicy
from stepkit.local.runs import RunRecord, StageRecord, check_writable, new_run_id, write_atomic
from stepkit.local.source import check_source, fill_placeholders

ENGINE_MEMORY = os.environ.get("STEPKIT_ENGINE_MEMORY", "3GB")
# Fault injection for tests: a stage name. As that stage starts, SIGINT goes to the run's whole
# process group, as a terminal's Ctrl-C does (run it in a process group of its own).
INTERRUPT_ENV = "STEPKIT_FAULT_INTERRUPT_AT"
# Stages whose work lives only in memory: cheap, always run again on --resume.
RERUN_ON_RESUME = {"batch_ids"}
# Stages that must not run again on --resume once done (they delete things).
NEVER_RERUN = {"cleanup", "wait"}


@dataclass
class Outcome:
    run_id: str
    run_dir: Path
    record: RunRecord

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def stage_order(ctx, definition: dict[str, Any]) -> list[tuple[Any, list[str]]]:
    """(stage, its state names) in the order the state machine reaches them from StartAt."""
    owner: dict[str, Any] = {}
    for stage in ctx.p.stages:
        for name in stage.fragment(ctx).states:
            owner[name] = stage
    order: list[tuple[Any, list[str]]] = []
    name, seen = definition["StartAt"], set()
    while name and name not in seen:
        seen.add(name)
        stage = owner.get(name)
        if stage is None:
            break  # the failure path: reached only by Catch, never by Next
        if order and order[-1][0] is stage:
            order[-1][1].append(name)
        else:
            order.append((stage, [name]))
        name = definition["States"][name].get("Next")
    return order


class Runner:
    def __init__(self, pipeline_path: str | Path, variables: dict[str, str], workdir: Path,
                 source: Path | None = None, resume: str | None = None, progress: Progress | None = None,
                 demo_rows: int = 1_000_000):
        self.pipeline_path = Path(pipeline_path)
        self.variables = dict(variables)
        self.workdir = Path(workdir).resolve()
        self.source_arg = source
        self.resume = resume
        self.out = progress or Progress()
        self.demo_rows = demo_rows

    # --- set-up: every user error is found here, before anything is written
    def _load(self):
        from stepkit.compiler.build import build
        from stepkit.compiler.context import Context
        from stepkit.spec.loader import load_pipeline

        filled = fill_placeholders(self.variables)
        pipeline, positions = load_pipeline(self.pipeline_path, self.variables)
        self.warehouse = self.workdir / "warehouse"
        ctx = Context(pipeline, self.pipeline_path, root=self.warehouse.as_posix() + "/")
        artifacts = build(ctx, positions)
        return ctx, artifacts, filled

    def _source(self, ctx, record: RunRecord | None):
        p = ctx.p
        table = f"{p.source.database or p.aws.database}.{p.source.table}"
        path = self.source_arg or (Path(record.source) if record else None)
        if path is None:
            path = self._demo_source(ctx.p)
        return check_source(Path(path), table, p.source.id_column, p.source.document_column)

    def _demo_source(self, pipeline) -> Path:
        # Cached per pipeline and size; written atomically, so a cached file is always whole.
        path = self.workdir / "demo" / f"{self.pipeline_path.stem}-{self.demo_rows}.parquet"
        if not path.exists():
            from stepkit import demo_data  # only here: it imports pandas (1.3 s) through pyarrow.dataset

            self.out.log(f"no --source: generating a demo source of {self.demo_rows:,} rows at {path}")
            demo_data.write(str(path), pipeline, rows=self.demo_rows)
        else:
            self.out.log(f"no --source: using the demo source {path}")
        return path

    # --- the run
    def run(self) -> Outcome:
        try:
            return self._run()
        except OSError as e:  # the work folder's own trouble (a read-only sub-folder, a full disk)
            raise StepkitError(_os_message(e)) from None

    def _run(self) -> Outcome:
        check_writable(self.workdir)
        runs = self.workdir / "runs"
        if self.resume is not None and not _plain_name(self.resume):
            raise StepkitError(f"--resume {self.resume!r}: expected a run id, one of the folders in {runs}")
        ctx, artifacts, filled = self._load()
        record = RunRecord.load(runs / self.resume) if self.resume else None
        if record:
            self._check_resumable(record, runs)
        source = self._source(ctx, record)
        for w in artifacts.warnings:
            self.out.log(str(w))
        if filled:
            self.out.log(f"local run: AWS variables {', '.join(filled)} unset; using local placeholders "
                         "(nothing here calls AWS)")

        run_id = record.run_id if record else new_run_id()
        run_dir = runs / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        if record is None:
            record = RunRecord(run_id, str(self.pipeline_path.resolve()), str(source.path), str(self.workdir),
                               cores=len(os.sched_getaffinity(0)))
        else:
            record.status, record.error, record.ended, record.source = "running", None, None, str(source.path)
            record.resumed.append(time.time())
        order = stage_order(ctx, artifacts.definition)
        old = {s.name: s for s in record.stages}
        record.stages = [old.get(stage.name) or StageRecord(stage.name, stage.type) for stage, _ in order]
        lctx = self._local_context(ctx, run_id, run_dir)
        self._start_workers(ctx)
        from stepkit.local.report import QaCharts

        self.qa_charts = QaCharts(lctx, run_dir)
        try:
            self._register_source(lctx, source)
            record.save(run_dir)
            self.out.log(f"run {run_id}: {ctx.p.name}, {len(order)} stages, source {source.path} "
                         f"({source.rows:,} rows), {lctx.concurrency} worker processes")
            self._stages(lctx, artifacts.definition, order, record, run_dir)
            self._finish(lctx, record, run_dir)
        except BaseException as e:
            now, error = time.time(), _error_text(e)
            # Interrupted, or the report failed: never left looking alive. A stage that was running
            # beside the failed one (its task stops with the run) is not left "running" either.
            stuck = [s for s in record.stages if s.status == "running"]
            for s in stuck:
                s.status, s.end, s.error = "failed", now, s.error or error
            if record.status == "running":
                record.status, record.ended = "failed", now
                record.error = record.error or error
                record.failed_stage = record.failed_stage or (stuck[0].name if stuck else None)
            record.save(run_dir)
            if isinstance(e, KeyboardInterrupt):
                self.out.log(f"run {run_id} interrupted at {record.failed_stage or 'start'}; continue it with: "
                             f"stepkit run {self.pipeline_path} --local --workdir {self.workdir} --resume {run_id}")
            raise
        finally:
            lctx.engine.close()
            from stepkit.local.tasks import wait_discarded

            wait_discarded(lctx)
        return Outcome(run_id, run_dir, record)

    def _check_resumable(self, record: RunRecord, runs: Path) -> None:
        """The same run, continued: its pipeline file and source, and no later run in this workdir."""
        where = runs / record.run_id
        if record.status == "succeeded":
            raise StepkitError(f"{where}: run {record.run_id} already succeeded; nothing to resume")
        if Path(record.pipeline) != self.pipeline_path.resolve():
            raise StepkitError(f"{self.pipeline_path}: run {record.run_id} ran {record.pipeline}; resume it with "
                               "that file (edited if need be), or start a new run")
        if self.source_arg is not None and self.source_arg.resolve() != Path(record.source).resolve():
            raise StepkitError(f"{self.source_arg}: run {record.run_id} read {record.source}; a resumed run reads "
                               "the same source (leave out --source), or start a new run for other data")
        later = sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name != record.run_id
                       and _started(p) > record.started)
        if later:
            # Its PreCleanup dropped this run's tables and its own now hold the names.
            raise StepkitError(f"{where}: run {later[-1]} started after run {record.run_id} in {self.workdir} and "
                               "replaced its tables; start a new run instead")

    def _local_context(self, ctx, run_id: str, run_dir: Path):
        from stepkit import config
        from stepkit.engines.duckdb import DuckDBEngine
        from stepkit.local.context import LocalContext

        config_path = run_dir / "config.json"
        write_atomic(config_path, config.render(config.worker_config(ctx.p, ctx.names.root)))
        # DuckDB would take up to 80% of the RAM before it spills; a local run keeps the whole
        # process tree within a few GB (workers run beside it), so DuckDB spills to disk sooner.
        # Not at 2GB: HumanQA's join at 10M rows needs ~2.1 GB (peak RSS 2.2 GB with a 3GB limit);
        # at 2GB it spilled and took 3.5x as long (55.7 s vs 16.0 s, the stage's join alone on a
        # 10M-row run's tables). STEPKIT_ENGINE_MEMORY overrides.
        engine = DuckDBEngine(self.warehouse, memory_limit=ENGINE_MEMORY)
        concurrency = max(1, min(ctx.p.batching.max_concurrency, len(os.sched_getaffinity(0))))
        return LocalContext(compile=ctx, run_id=run_id, workdir=self.workdir, run_dir=run_dir,
                            config_path=config_path, engine=engine, concurrency=concurrency,
                            progress=self.out.batches, log=self.out.log)

    @staticmethod
    def _start_workers(ctx) -> None:
        """The worker processes' imports start now, beside the first SQL stages, not in the first task."""
        from stepkit.local import pool, tasks

        modules = []
        for stage in ctx.p.stages:
            if stage.type in WORKER_STAGES:
                try:
                    modules.append(tasks.worker_module(stage.name, stage.task))
                except StepkitError:
                    pass  # reported by the stage itself when it runs
        pool.start(modules)

    def _register_source(self, lctx, source) -> None:
        p = lctx.compile.p
        lctx.engine.register_table(p.source.database or p.aws.database, p.source.table, source.location)
        lctx.extra["source_rows"] = source.rows

    def _needs_run(self, lctx, stage, rec: StageRecord, reached_failure: bool) -> bool:
        if rec.status != "succeeded" or reached_failure:
            return True
        if stage.type in RERUN_ON_RESUME:
            return True
        if stage.type in NEVER_RERUN:
            return False
        # Done before, but the failure clean-up (or another run's PreCleanup) removed its tables.
        return not all(self._table_exists(lctx, key) for key in stage.tables_written())

    def _table_exists(self, lctx, key: str) -> bool:
        p = lctx.compile.p
        location = lctx.engine.table_location(p.aws.database, p.tables.names()[key])
        return location is not None and Path(location).is_dir()

    def _stages(self, lctx, definition, order, record: RunRecord, run_dir: Path) -> None:
        # Where to continue: the failed stage, or (a killed run) the first one not done.
        failed_before = record.failed_stage or next((r.name for r in record.stages if r.status != "succeeded"), None)
        reached = failed_before is None
        total = len(order)
        self.cores = len(os.sched_getaffinity(0))
        whole, known = _whole_tables(lctx), {}

        def safe_beside(stage) -> bool:  # parsed once per stage, and only for stages near a task
            if stage.name not in known:
                known[stage.name] = _reads_only(lctx, stage, whole)
            return known[stage.name]

        self.last_worker_stage = next((s.name for s, _ in reversed(order) if s.type in WORKER_STAGES), None)
        beside: _Beside | None = None  # a task running in its process while the SQL stages after it go on
        for i, (stage, states) in enumerate(order, 1):
            rec = record.stage(stage.name)
            reached = reached or stage.name == failed_before
            if self.resume and not self._needs_run(lctx, stage, rec, reached):
                self.out.log(f"[{i}/{total}] {stage.name}: done in an earlier attempt of this run; skipped")
                continue
            if beside is not None and not safe_beside(stage):
                self._settle(lctx, beside, record, run_dir)
                beside = None
            policy = RetryPolicy.of(definition["States"][states[0]])
            self.out.stage_start(i, total, stage.name, stage.type)
            self.out.unit = "batches" if stage.type == "fan_out" else "statements"
            rec.status, rec.start, rec.end, rec.error, rec.attempts = "running", time.time(), None, None, 0
            record.save(run_dir)
            if beside is None and stage.type in OVERLAPPABLE and i < total and safe_beside(order[i][0]):
                beside = _Beside(stage, rec, lambda s=stage, p=policy, r=rec: self._attempts(lctx, s, p, r))
                self.out.log(f"      {stage.name}: runs in its own process; {order[i][0].name} starts beside it")
                # One core stays with the task: its longest model fits on one core, and sharing that
                # core with the engine's threads made the task (and the wait for it) twice as long.
                lctx.engine.set_threads(max(1, self.cores - 1))
                continue
            if beside is not None:
                beside.followers.append(rec)
            try:
                if os.environ.get(INTERRUPT_ENV) == stage.name:
                    _interrupt()
                result = self._attempts(lctx, stage, policy, rec)
            except (StepkitError, OSError) as e:  # OSError: the workdir's own trouble, one line too
                if beside is not None:  # the earlier stage's failure is the run's, as on AWS
                    self._settle(lctx, beside, record, run_dir)
                self._failed(lctx, record, rec, run_dir,
                             e if isinstance(e, StepkitError) else StepkitError(_os_message(e)))
            except BaseException as e:  # a bug, or Ctrl-C: record it, clean up, keep the traceback
                self._fail(lctx, record, rec, run_dir, _error_text(e))
                raise
            self._succeeded(lctx, stage, rec, record, run_dir, result)
        if beside is not None:
            self._settle(lctx, beside, record, run_dir)

    def _settle(self, lctx, beside: "_Beside", record: RunRecord, run_dir: Path) -> None:
        """Wait for a stage that ran beside the next ones; record its outcome (raise its failure)."""
        beside.thread.join()
        lctx.engine.set_threads(None)
        error = beside.error
        if error is not None:
            # The state machine would not have reached the stages that ran beside: back to pending
            # (the failure path drops what they wrote; --resume runs them again).
            for rec in beside.followers:
                rec.status, rec.start, rec.end, rec.rows_out, rec.attempts = "pending", None, None, None, 0
                rec.detail = {"note": f", ran beside {beside.stage.name}, which failed: discarded"}
            if isinstance(error, StepkitError):
                self._failed(lctx, record, beside.rec, run_dir, error)  # raises the one-line error
            self._fail(lctx, record, beside.rec, run_dir, f"{type(error).__name__}: {error}")
            raise error
        self._succeeded(lctx, beside.stage, beside.rec, record, run_dir, beside.result)

    def _failed(self, lctx, record: RunRecord, rec: StageRecord, run_dir: Path, e: StepkitError) -> None:
        self._fail(lctx, record, rec, run_dir, str(e))
        raise StepkitError(f"{self.pipeline_path}: run {record.run_id} failed at stage {rec.name}: "
                           f"{e}. Fix it, then: stepkit run {self.pipeline_path} --local "
                           f"--workdir {self.workdir} --resume {record.run_id}") from None

    def _succeeded(self, lctx, stage, rec: StageRecord, record: RunRecord, run_dir: Path, result: Any) -> None:
        rec.end = time.time()
        rec.status = "succeeded"
        self._absorb(lctx, stage, rec, record, result or {})
        record.failed_stage = None if record.failed_stage == stage.name else record.failed_stage
        record.save(run_dir)
        self.out.stage_end(stage.name, rec.end - rec.start, rec.rows_out, rec.detail.get("note", ""))
        if "human_qa" in stage.tables_written():
            self.qa_charts.start()  # drawn while the last stages run
        if stage.name == self.last_worker_stage:
            from stepkit.local import pool

            pool.stop_soon()  # no stage after this one runs a worker

    def _attempts(self, lctx, stage, policy: RetryPolicy, rec: StageRecord) -> dict[str, Any]:
        """The stage's own Retry (its entry state's); a fan-out retries per batch inside run_local."""
        tries = Attempts(policy)
        while True:
            rec.attempts = tries.start()
            try:
                return stage.run_local(lctx) or {}
            except StepkitError as e:
                delay = tries.retry_delay(TASK_FAILED)
                if delay is None:
                    raise
                self.out.log(f"      {stage.name}: attempt {rec.attempts} failed ({e}); retrying")
                time.sleep(delay)

    def _absorb(self, lctx, stage, rec: StageRecord, record: RunRecord, result: dict[str, Any]) -> None:
        """Rows out, notes and model metrics from a stage's result."""
        rows = result.get("rows", result.get("rows_out"))
        if isinstance(rows, dict):  # the training worker counts its train/calibration/test rows
            rows = rows.get("total")
        if rows is None and stage.tables_written():
            p = lctx.compile.p
            try:
                rows = lctx.engine.row_count(p.aws.database, p.tables.names()[stage.tables_written()[-1]])
            except StepkitError:
                rows = None
        rec.rows_out = int(rows) if rows is not None else None
        rec.detail = {k: v for k, v in result.items() if k in ("note", "batches", "retried", "pool_restarts",
                                                                  "attempts", "statements", "dropped", "deleted")}
        models = result.get("metrics") or result.get("models")
        if isinstance(models, dict) and models:
            record.metrics = _metrics(models)
            record.training = {k: result[k] for k in ("chosen_model", "selection_metric", "model_version", "gate",
                                                      "rows", "data_fingerprint", "seconds") if k in result}

    def _fail(self, lctx, record: RunRecord, rec: StageRecord, run_dir: Path, message: str) -> None:
        rec.end, rec.status, rec.error = time.time(), "failed", message
        record.status, record.error, record.failed_stage, record.ended = "failed", message, rec.name, time.time()
        record.save(run_dir)
        self._failure_path(lctx, record)
        record.save(run_dir)

    def _failure_path(self, lctx, record: RunRecord) -> None:
        """What CleanupOnFailure does on AWS: drop what the failed run made. Its own trouble is only logged."""
        from stepkit.compiler.build import CLEANUP_ON_FAILURE
        from stepkit.steps.cleanup import Cleanup

        of = lctx.compile.p.on_failure
        if not (of.drop_tables or of.delete_data):
            return
        block = Cleanup(name=CLEANUP_ON_FAILURE, drop_tables=of.drop_tables, delete_data=of.delete_data, scope="run")
        try:
            done = block.run_local(lctx)
            record.notes.append(f"{CLEANUP_ON_FAILURE}: dropped {', '.join(done.get('dropped', [])) or 'nothing'}")
            self.out.log(f"      {CLEANUP_ON_FAILURE}: dropped what the failed run made ({', '.join(done.get('dropped', [])) or 'nothing'})")
        except Exception as e:  # must not hide the stage's own error (the ASL's Catch does the same)
            record.notes.append(f"{CLEANUP_ON_FAILURE} failed: {e}")
            self.out.log(f"      {CLEANUP_ON_FAILURE} failed: {e}")

    def _finish(self, lctx, record: RunRecord, run_dir: Path) -> None:
        from stepkit.local import report

        # A CTAS's row count is exact (the engine's own); counting its files again took 0.3-0.7 s.
        recs = {r.name: r for r in record.stages}
        written = {}
        for stage in lctx.compile.p.stages:
            rec = recs.get(stage.name)
            if stage.type == "athena_ctas" and rec and rec.status == "succeeded" and rec.rows_out is not None:
                written.update(dict.fromkeys(stage.tables_written(), rec.rows_out))
        record.outputs = outputs(lctx, written)
        record.ended = time.time()
        record.status = "succeeded"
        # The report reads the tables; the record says "succeeded" only once it is written too.
        record.report = str(report.write(lctx, record, run_dir, self.qa_charts))
        record.save(run_dir)


# A task stage runs in its own process; the SQL stages right after it may run beside it (on the
# engine, in this process) when they read only tables that are already whole. A task writes no
# table a CTAS made: tasks hand on files (models) or fill external tables (the predictions,
# which a CTAS never makes), so such SQL cannot see a task's half-written output. The training
# task leaves a core idle most of the time (xgboost's quantile objective is mostly serial),
# and the evaluation features fill it. Stages still start in the state machine's order.
OVERLAPPABLE = {"fargate_task"}
WORKER_STAGES = {"fargate_task", "fan_out"}  # the stages that run worker processes
_SQL = {"athena_ctas", "athena_query"}
_NO_TABLES = {"batch_ids"}  # in memory only


class _Beside:
    """A stage's attempts, run in a thread (the work itself is in a worker process)."""

    def __init__(self, stage, rec: StageRecord, attempts: Callable[[], dict[str, Any]]):
        self.stage, self.rec = stage, rec
        self.followers: list[StageRecord] = []  # the stages run beside it
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = attempts()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread by _settle
                self.error = e

        self.thread = threading.Thread(target=run, name=f"stepkit-{stage.name}", daemon=True)
        self.thread.start()


def _whole_tables(lctx) -> set[tuple[str, str]]:
    """(database, table) of the tables a CTAS writes whole, and the source table."""
    p = lctx.compile.p
    names = p.tables.names()
    out = {((p.source.database or p.aws.database).lower(), p.source.table.lower())}
    for stage in p.stages:
        if stage.type == "athena_ctas":
            out |= {(p.aws.database.lower(), names[key].lower()) for key in stage.tables_written()}
    return out


def _reads_only(lctx, stage, whole: set[tuple[str, str]]) -> bool:
    """Is `stage` SQL that reads nothing but `whole` tables (or a stage that reads no table at all)?"""
    if stage.type in _NO_TABLES:
        return True
    if stage.type not in _SQL:
        return False
    from stepkit.engines.transpile import parse

    for st in stage.sql(lctx.compile):
        try:
            tables = parse(st.text(lctx.run_id)).source_tables()
        except Exception:  # noqa: BLE001 - unparsed here means: not known to be safe
            return False
        if not set(tables) <= whole:
            return False
    return True


def _interrupt() -> None:
    import signal

    # A moment into the stage: a worker process still being forked for the task that started just
    # before (training, beside) would find the ended run's semaphores gone and print a traceback.
    time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGINT)
    time.sleep(10)  # KeyboardInterrupt arrives here, at the next bytecode


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _started(run_dir: Path) -> float:
    """When the run in `run_dir` started (0 when its record is unreadable: not a run)."""
    try:
        return RunRecord.load(run_dir).started
    except StepkitError:
        return 0.0


def _error_text(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return _os_message(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"


def _os_message(e: OSError) -> str:
    where = e.filename if e.filename is not None else ""
    return f"{where}: {e.strerror or e}" if where else f"{type(e).__name__}: {e}"


def outputs(lctx, written: dict[str, int] | None = None) -> dict[str, Any]:
    """Every table the pipeline names (path, rows, whether it still exists), the models and config.
    `written`: rows a CTAS stage of this run wrote, by table key (counted again only if absent)."""
    p, names, engine = lctx.compile.p, lctx.names, lctx.engine
    written = written or {}
    tables = {}
    for key, name in p.tables.names().items():
        path = names.table_location(key, lctx.run_id)
        location = engine.table_location(p.aws.database, name)
        if key in written and location is not None and Path(location).is_dir():
            rows, exists = written[key], True
        else:
            try:
                rows = engine.row_count(p.aws.database, name)
                exists = True
            except Exception:
                rows, exists = None, False
        tables[key] = {"table": f"{p.aws.database}.{name}", "path": path, "rows": rows, "exists": exists}
    return {
        "final_results": tables["final_results"]["path"],
        "human_qa": tables["human_qa"]["path"],
        "predictions": tables["predictions"]["path"],
        "tables": tables,
        "models": names.models_location(lctx.run_id),
        "config": str(lctx.config_path),
        "warehouse": names.root,
    }


def _plain(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool, type(None), list, dict))


def _metrics(raw: Any) -> dict[str, dict[str, float | None]]:
    """{model: {mae, rmse, r2, coverage}} from the training worker's report."""
    out = {}
    for model, m in (raw or {}).items():
        if isinstance(m, dict):
            out[model] = {k: (float(m[k]) if m.get(k) is not None else None) for k in ("mae", "rmse", "r2", "coverage")}
    return out


def run_local(pipeline_path: str | Path, variables: dict[str, str], workdir: Path, source: Path | None = None,
              resume: str | None = None, progress: Progress | None = None, demo_rows: int = 1_000_000,
              log: Callable[[str], None] | None = None) -> Outcome:
    return Runner(pipeline_path, variables, workdir, source, resume, progress, demo_rows).run()
