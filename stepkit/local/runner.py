"""`stepkit run --local`: the compiled state machine, executed on this machine.

The run executes `statemachine.asl.json` exactly as `stepkit compile` writes it and `stepkit deploy`
uploads it (a copy is kept in the run's folder), with stepkit's ASL interpreter
(stepkit/interpreter) and local stand-ins for the services its states call (stepkit/local/adapters:
Athena -> DuckDB, ECS -> worker processes, Lambda -> the cleanup function's plan, S3 -> the
warehouse). Nothing here decides what runs: the definition does.

A run is one or more executions under one run id (runs/<run>/executions/<n>/, each with its history
in AWS's event shape). `--resume RUN` redrives the last one, or continues the run in a new
execution when an Athena write was cut short (stepkit/compiler/recovery.py).
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stepkit.errors import StepkitError
from stepkit.local.progress import Progress
from stepkit.local.runs import (EXECUTIONS, RunRecord, StageRecord, check_writable, execution_folders, new_run_id,
                                write_atomic)
from stepkit.local.source import check_apart, check_source, fill_placeholders

ENGINE_MEMORY = os.environ.get("STEPKIT_ENGINE_MEMORY", "3GB")
DEFINITION = "statemachine.asl.json"
# Waits and retry delays on AWS are minutes; locally nothing settles in the background, so they are
# cut to these (the run says so for each).
LOCAL_MAX_WAIT = 0.0
LOCAL_MAX_RETRY_DELAY = 0.2


@dataclass
class Outcome:
    run_id: str
    run_dir: Path
    record: RunRecord

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


class Runner:
    def __init__(self, pipeline_path: str | Path, variables: dict[str, str], workdir: Path,
                 source: Path | None = None, resume: str | None = None, progress: Progress | None = None,
                 demo_rows: int = 1_000_000, definition: Path | None = None, start: str | None = None):
        self.pipeline_path = Path(pipeline_path)
        self.variables = dict(variables)
        self.workdir = Path(workdir).resolve()
        self.source_arg = source
        self.resume = resume
        self.out = progress or Progress()
        self.demo_rows = demo_rows
        self.definition_path = definition
        self.start = start  # --from: the stage of the resumed run to run again, and every one after it

    # --- set-up: every user error is found here, before anything is written
    def _load(self):
        from stepkit.compiler.build import build
        from stepkit.compiler.load import load_pipeline
        from stepkit.ir.context import Context

        filled = fill_placeholders(self.variables)
        pipeline, positions = load_pipeline(self.pipeline_path, self.variables)
        self.warehouse = self.workdir / "warehouse"
        plan = build(Context(pipeline, self.pipeline_path), positions)
        local = Context(pipeline, self.pipeline_path, root=self.warehouse.as_posix() + "/")
        return plan, local, filled

    def _definition(self, plan) -> dict[str, Any]:
        if self.definition_path is None:
            return plan.definition
        try:
            return json.loads(Path(self.definition_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StepkitError(f"{self.definition_path}: not a state machine definition: {e}") from None

    def _source(self, ctx, record: RunRecord | None):
        p = ctx.p
        table = f"{p.source.database or p.aws.database}.{p.source.table}"
        path = self.source_arg or (Path(record.source) if record else None)
        if path is None:
            path = self._demo_source(ctx.p)
        check_apart(Path(path), self.workdir)
        return check_source(Path(path), table, p.source.id_column, p.source.document_column, p.source.id_type)

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
        from stepkit.local.lock import WorkdirLock

        try:
            check_writable(self.workdir)
            lock = self._lock = WorkdirLock(self.workdir)
            lock.acquire(self.resume or "(new)", str(self.pipeline_path))
        except OSError as e:
            raise StepkitError(_os_message(e)) from None
        previous = signal.signal(signal.SIGTERM, _terminate)  # ends the run as Ctrl-C does
        try:
            return self._run()
        except OSError as e:  # the work folder's own trouble (a read-only sub-folder, a full disk)
            raise StepkitError(_os_message(e)) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            lock.release()

    def _run(self) -> Outcome:
        runs = self.workdir / "runs"
        if self.resume is not None and not _plain_name(self.resume):
            raise StepkitError(f"--resume {self.resume!r}: expected a run id, one of the folders in {runs}")
        plan, local, filled = self._load()
        definition = self._definition(plan)
        record = RunRecord.load(runs / self.resume) if self.resume else None
        decision = None
        if record:
            self._check_resumable(record, runs)
            # Decided before anything is written: a refusal (a mistyped --from) leaves the run's record as it was.
            decision = self._decide(plan, definition, record, runs / record.run_id)
        source = self._source(local, record)
        for w in plan.warnings:
            self.out.log(str(w))
        if filled:
            self.out.log(f"local run: AWS variables {', '.join(filled)} unset; using local placeholders "
                         "(nothing here calls AWS)")
        run_id = record.run_id if record else new_run_id()
        self._lock.say(run_id, str(self.pipeline_path))  # `stepkit status --local` tells a running run by it
        run_dir = runs / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        from stepkit.ir import asl

        # The very bytes `stepkit compile` writes: what this run executes, kept beside its record.
        write_atomic(run_dir / DEFINITION, asl.render(definition))
        if record is None:
            record = RunRecord(run_id, str(self.pipeline_path.resolve()), str(source.path), str(self.workdir))
        else:
            record.status, record.error, record.ended, record.source = "running", None, None, str(source.path)
            record.failed_stage = None
            record.resumed.append(time.time())
        old = {s.name: s for s in record.stages}
        record.stages = [old.get(s.name) or StageRecord(s.name, s.stage.type) for s in plan.stages]
        from stepkit.local.services import cores

        record.cores = cores()
        services = self._services(plan, local, run_id, run_dir, source)
        from stepkit.local.report import QaCharts
        from stepkit.local.tracker import Tracker

        qa_charts = QaCharts(_LocalView(services, run_dir), run_dir)
        last_task_stages = _task_stages(plan)

        qa_table = role_tables(plan).get("human_qa")

        def stage_ended(stage: str) -> None:
            if qa_table and qa_table in plan.stage(stage).flow.writes:
                qa_charts.start()  # drawn while the last stages run
            last_task_stages.discard(stage)
            if not last_task_stages:
                _stop_workers(services)  # no stage after this one runs a worker

        tracker = Tracker(plan, record, self.out, lambda: record.save(run_dir), services, stage_ended)
        try:
            execution, kind = self._execution(plan, definition, services, record, run_dir, tracker, decision)
            record.executions.append({"dir": str(execution.history_dir.relative_to(run_dir)), "kind": kind,
                                      "started": time.time()})
            record.save(run_dir)
            self.out.log(f"run {run_id}: {plan.context.p.name}, {len(plan.stages)} stages, source {source.path} "
                         f"({source.rows:,} rows), {services.cores} worker processes"
                         + (f" ({kind} of execution {len(record.executions) - 1})" if kind != "new" else ""))
            result = self._execute(execution, services)
            record.executions[-1]["status"] = result.status
            if result.status != "SUCCEEDED":
                tracker.fail_running(_error(result))
                self._failed(plan, record, run_dir, result)
            self._finish(plan, services, record, run_dir, qa_charts)
        except BaseException as e:
            tracker.close()  # an execution still stopping must not write over what is written here
            now, error = time.time(), _error_text(e)
            stuck = [s for s in record.stages if s.status == "running"]
            for s in stuck:  # interrupted, or the report failed: never left looking alive
                s.status, s.end, s.error = "failed", now, s.error or error
            if record.status == "running":
                record.status, record.ended, record.error = "failed", now, record.error or error
                record.failed_stage = record.failed_stage or (stuck[0].name if stuck else None)
            record.save(run_dir)
            if isinstance(e, KeyboardInterrupt):
                self.out.log(f"run {run_id} interrupted; continue it with: stepkit run {self.pipeline_path} "
                             f"--local --workdir {self.workdir} --resume {run_id}")
            raise
        finally:
            services.close()
        return Outcome(run_id, run_dir, record)

    def _services(self, plan, local, run_id: str, run_dir: Path, source):
        from stepkit import config
        from stepkit.engines.duckdb import DuckDBEngine
        from stepkit.local import pool
        from stepkit.local.services import Services, cores

        n = cores()
        # DuckDB would take up to 80% of the RAM before it spills; a local run keeps the whole process
        # tree within a few GB (workers run beside it). Not at 2GB: HumanQA's join at 10M rows needs
        # ~2.1 GB; at 2GB it spilled and took 3.5x as long. STEPKIT_ENGINE_MEMORY overrides.
        engine = DuckDBEngine(self.warehouse, memory_limit=ENGINE_MEMORY,
                              roots={plan.context.names.root: self.warehouse.as_posix() + "/"})
        batching = plan.context.p.batching
        workers = pool.Workers(min(n, batching.max_concurrency) if batching else n)
        services = Services(plan, local, run_id, self.workdir, run_dir, engine, workers, n, log=self.out.log,
                            progress=self.out.batches)
        # The worker config the containers read (`--config`), where the definition's URI points.
        write_atomic(services.to_local(plan.context.names.config_uri),
                     config.render(config.worker_config(plan.context.p, local.names.root)))
        p = plan.context.p
        engine.register_table(p.source.database or p.aws.database, p.source.table, source.location)
        services.extra["source_rows"] = source.rows
        pool.start(sorted(_worker_modules(plan)))  # imports start now, beside the first SQL stages
        return services

    def _decide(self, plan, definition, record: RunRecord, run_dir: Path):
        """What a resumed run does (compiler/recovery.py), or None when no execution of it ever ran."""
        from stepkit.compiler import recovery
        from stepkit.interpreter.history import load_history

        histories = [load_history(f) for f in _ran(run_dir)]
        if not histories:
            return None
        shape = recovery.Shape.of(definition)
        if self.start:
            try:
                given = recovery.start_from(shape, [s.name for s in plan.stages], self.start, record.run_id,
                                            histories)
            except ValueError as e:
                raise StepkitError(f"--from {self.start}: {e}") from None
            return recovery.Decision("continue", f"--from {self.start}", given)
        decision = recovery.decide(shape, histories, record.run_id)
        if decision.kind == "done":
            raise StepkitError(f"{run_dir}: run {record.run_id} already succeeded; nothing to resume")
        if decision.kind == "new":
            raise StepkitError(f"{run_dir}: run {record.run_id}: {decision.reason}")
        return decision

    def _execution(self, plan, definition, services, record: RunRecord, run_dir: Path, tracker, decision):
        from stepkit.interpreter import Execution
        from stepkit.local import adapters

        found = adapters.problems(definition, services)
        if found:
            raise StepkitError("\n".join(f"{self.definition_path or self.pipeline_path}: {line}" for line in found))
        options = dict(max_wait_seconds=LOCAL_MAX_WAIT, max_retry_delay_seconds=LOCAL_MAX_RETRY_DELAY,
                       max_threads=max(services.cores + 1, 4), state_machine_name=plan.context.names.state_machine,
                       region=plan.context.p.aws.region, log=lambda line: self.out.log(f"      {line}"),
                       on_event=tracker)
        built = adapters.build(services)
        folders = _ran(run_dir)
        if decision is None:
            folder = run_dir / EXECUTIONS / "1"
            return Execution(definition, built, name=record.run_id, input={}, history_dir=folder, **options), "new"
        self.out.log(f"resume: {decision.kind} ({decision.reason})")
        kept = decision.input["done"] if decision.kind == "continue" else {
            r.name for r in record.stages if r.status == "succeeded"}
        for name in [s.name for s in plan.stages if s.name in kept]:
            self.out.log(f"      {name}: done in an earlier attempt of this run; skipped")
        tracker.skipped_before = 0
        if decision.kind == "redrive":
            for rec in record.stages:
                if rec.status == "succeeded":
                    tracker.started.append(rec.name)
            return Execution.redrive(definition, built, history_dir=folders[-1], **options), "redrive"
        for rec in record.stages:
            if rec.name in decision.input["done"]:
                rec.status = "succeeded" if rec.status == "succeeded" else "skipped"
            else:
                rec.status, rec.start, rec.end, rec.error, rec.rows_out = "pending", None, None, None, None
        tracker.skipped_before = len(decision.input["done"])
        folder = run_dir / EXECUTIONS / str(len(folders) + 1)
        name = f"{record.run_id}-{len(folders) + 1}"
        return Execution(definition, built, name=name, input=decision.input, history_dir=folder, **options), "continue"

    def _execute(self, execution, services):
        """Run it on a thread; Ctrl-C (or SIGTERM) here stops it, as StopExecution does, then re-raises."""
        holder: dict[str, Any] = {}

        def target() -> None:
            try:
                holder["result"] = execution.run()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                holder["error"] = e

        services.abort = lambda error, cause: (holder.setdefault("abort", (error, cause)),
                                               execution.stop(error, cause))
        thread = threading.Thread(target=target, name="stepkit-execution", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.2)
        except KeyboardInterrupt:
            execution.stop("stepkit.Interrupted", "interrupted (Ctrl-C)")
            services.workers.kill()
            services.engine.interrupt()  # a statement running now stops too
            thread.join(30)
            raise
        if "error" in holder:
            raise holder["error"]
        result = holder["result"]
        if "abort" in holder:  # an adapter ended the run (a full disk): its reason is the run's
            result.error, result.cause = holder["abort"]
        return result

    def _check_resumable(self, record: RunRecord, runs: Path) -> None:
        """The same run, continued: its pipeline file and source, and no later run in this workdir."""
        where = runs / record.run_id
        if record.status == "succeeded" and not self.start:
            raise StepkitError(f"{where}: run {record.run_id} already succeeded; nothing to resume (--from STAGE "
                               "runs a stage and the ones after it again)")
        if Path(record.pipeline) != self.pipeline_path.resolve():
            raise StepkitError(f"{self.pipeline_path}: run {record.run_id} ran {record.pipeline}; resume it with "
                               "that file (edited if need be), or start a new run")
        if self.source_arg is not None and self.source_arg.resolve() != Path(record.source).resolve():
            raise StepkitError(f"{self.source_arg}: run {record.run_id} read {record.source}; a resumed run reads "
                               "the same source (leave out --source), or start a new run for other data")
        later = sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name != record.run_id
                       and _started(p) > record.started and _past_the_start(p))
        if later:
            # Its PreCleanup dropped this run's tables and its own now hold the names.
            raise StepkitError(f"{where}: run {later[-1]} started after run {record.run_id} in {self.workdir} and "
                               "replaced its tables; start a new run instead")
        if not (where / EXECUTIONS).is_dir():
            raise StepkitError(f"{where}: run {record.run_id} has no execution history (an older stepkit made it); "
                               "start a new run")

    def _failed(self, plan, record: RunRecord, run_dir: Path, result) -> None:
        failed = [s.name for s in record.stages if s.status == "failed"]
        # The on_failure path ends in its own Fail state: the stage is the one that failed before it.
        stage = _stage_of_path(plan, result.failed_state) or (failed[0] if failed else None) \
            or result.failed_state or "start"
        error = _error(result)
        record.status, record.error, record.failed_stage, record.ended = "failed", error, stage, time.time()
        record.save(run_dir)
        raise StepkitError(f"{self.pipeline_path}: run {record.run_id} failed at stage {stage}: {error}. "
                           f"Fix it, then: stepkit run {self.pipeline_path} --local --workdir {self.workdir} "
                           f"--resume {record.run_id}")

    def _finish(self, plan, services, record: RunRecord, run_dir: Path, qa_charts) -> None:
        from stepkit.local import report

        view = _LocalView(services, run_dir)
        written = {}
        for s in plan.stages:  # a CTAS's row count is exact (the engine's own): no recount
            rec = record.stage(s.name)
            if s.statements and rec.status == "succeeded" and rec.rows_out is not None:
                written.update(dict.fromkeys(s.flow.writes, rec.rows_out))
        record.outputs = outputs(view, written)
        record.ended = time.time()
        record.status = "succeeded"
        # The report reads the tables; the record says "succeeded" only once it is written too.
        record.report = str(report.write(view, record, run_dir, qa_charts))
        record.save(run_dir)


class _LocalView:
    """What the report and the outputs read: local names, the engine, the run."""

    def __init__(self, services, run_dir: Path):
        self.compile = services.local
        self.names = services.local.names
        self.engine = services.engine
        self.run_id = services.run_id
        self.run_dir = run_dir
        self.extra = services.extra
        self.config_path = services.to_local(services.plan.context.names.config_uri)
        roles = role_tables(services.plan)
        self.human_qa_table = roles.get("human_qa")
        self.final_results_table = roles.get("final_results")
        self.predictions_table = roles.get("predictions")


# stepkit's templates that make the tables a report reads, by the role the table plays.
ROLE_TEMPLATES = {"human_qa": "human_qa.sql.j2", "final_results": "final_results.sql.j2",
                  "predictions": "predictions_table.sql.j2"}


def role_tables(plan) -> dict[str, str]:
    """Which table key plays the QA, results and predictions role in this run: the table a stage makes
    with stepkit's template for it. A pipeline of its own templates has no QA table; its results are
    what its final stage writes (stepkit/steps/cleanup.py `outputs`)."""
    from stepkit.steps.cleanup import outputs

    out: dict[str, str] = {}
    for s in plan.stages:
        template, table = getattr(s.stage, "template", None), getattr(s.stage, "table", None)
        for role, name in ROLE_TEMPLATES.items():
            if template == name and table:
                out[role] = table
    if "final_results" not in out:
        _, made = outputs(plan.context, [s.flow for s in plan.stages])
        if made:
            out["final_results"] = sorted(made)[0]
    return out

def _stop_workers(services) -> None:
    from stepkit.local import pool

    threading.Thread(target=services.workers.close, daemon=True).start()
    pool.stop_soon()


def _task_stages(plan) -> set[str]:
    """The stages that run container tasks (by their states' Resource)."""
    from stepkit.local.adapters import ecs, tasks

    names = (path.rsplit("/", 1)[-1] for path, _ in tasks.tasks_of(plan.definition, ecs.RESOURCES))
    return {plan.stage_of[n] for n in names if n in plan.stage_of}


def _worker_modules(plan) -> set[str]:
    from stepkit.local.tasks import worker_module

    out = set()
    for key in plan.context.p.compute.tasks:
        try:
            out.add(worker_module(plan.context.p, key))
        except StepkitError:
            pass  # reported before the run, if a state runs it
    return out


def _stage_of_path(plan, path: str | None) -> str | None:
    for part in reversed((path or "").split("/")):
        if part in plan.stage_of:
            return plan.stage_of[part]
    return None


def _error(result) -> str:
    return ": ".join(x for x in (result.error, result.cause) if x) or result.status


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def _ran(run_dir: Path) -> list[Path]:
    """The run's execution folders whose execution began: one stopped before its first event (its folder
    and history file are made first) never ran, and its folder takes the next one."""
    from stepkit.interpreter.history import load_history

    return [f for f in execution_folders(run_dir) if load_history(f)]


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _started(run_dir: Path) -> float:
    """When the run in `run_dir` started (0 when its record is unreadable: not a run)."""
    try:
        return RunRecord.load(run_dir).started
    except StepkitError:
        return 0.0


def _past_the_start(run_dir: Path) -> bool:
    """Whether a run went on past the start states (its first clean-up drops every run's tables); one refused
    before its execution began, or stopped in them, touched nothing."""
    from stepkit.compiler import recovery
    from stepkit.interpreter.history import load_history

    return any(recovery.past_the_start(load_history(f)) for f in (run_dir / EXECUTIONS).glob("*"))


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
    roles = {role: getattr(lctx, f"{role}_table", None) for role in ROLE_TEMPLATES}
    return {
        **{role: tables[key]["path"] if key in tables else None for role, key in roles.items()},
        "tables": tables,
        "models": names.models_location(lctx.run_id),
        "config": str(lctx.config_path),
        "warehouse": names.root,
    }


def run_local(pipeline_path: str | Path, variables: dict[str, str], workdir: Path, source: Path | None = None,
              resume: str | None = None, progress: Progress | None = None, demo_rows: int = 1_000_000,
              log: Callable[[str], None] | None = None, definition: Path | None = None,
              start: str | None = None) -> Outcome:
    return Runner(pipeline_path, variables, workdir, source, resume, progress, demo_rows, definition, start).run()
