"""The plan of one run: each state of the compiled state machine priced and timed, totalled
along the critical path (critical_path.py), attributed to the pipeline's stages.

States are read generically (Task by its Resource, Wait, Pass, Choice, Parallel, Map); the
spec supplies sizes and row counts. `stage_of` is the one place that knows how state names
relate to stage names.
"""
from __future__ import annotations

import copy
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stepkit.errors import StepkitError
from stepkit.plan import critical_path as cp
from stepkit.plan.coefficients import DEFAULT, Coef, Coefficients
from stepkit.plan.prices import RegionPrices, for_region
from stepkit.ir.sql import MAX_WRITERS
from stepkit.plan.scan import GB, Catalog, Scan, Table, query_text

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts

MB = 1024 ** 2
TB = 1024 ** 4
READ_BATCH = 131_072  # rows the prediction worker holds at once (stepkit.ml.predict streams larger batches)
BILLING_MINIMUM_S = 60  # Fargate bills a task for at least a minute


def stage_of(state: str, stages: list[str]) -> str | None:
    """The stage a state belongs to: its own name, `<Stage>_InsertNN` (an Athena statement of a
    chunked CTAS) or `<Stage>Batch` (a fan-out's Map item); None for states no stage made."""
    if state in stages:
        return state
    m = re.fullmatch(r"(.+)_Insert\d+", state)
    if m and m.group(1) in stages:
        return m.group(1)
    if state.endswith("Batch") and state[: -len("Batch")] in stages:
        return state[: -len("Batch")]
    return None


@dataclass(frozen=True)
class Layout:
    """What --optimize changes: batch count, concurrency and task sizes (cpu, memory GB)."""

    batches: int
    max_concurrency: int
    tasks: tuple[tuple[str, float, float], ...]  # (task key, vCPU, memory GB)

    def size(self, task: str) -> tuple[float, float]:
        for key, cpu, mem in self.tasks:
            if key == task:
                return cpu, mem
        raise KeyError(task)

    @classmethod
    def of(cls, p: Any) -> "Layout":
        b = p.batching  # none: a pipeline without a fan-out (one "batch")
        return cls(b.batches if b else 1, b.max_concurrency if b else 1,
                   tuple((k, float(t.cpu), float(t.memory_gb)) for k, t in sorted(p.compute.tasks.items())))


@dataclass
class Inputs:
    """What the plan is for: row count, source size, measured rates and account limits."""

    rows: float
    rows_basis: str
    source_bytes: float
    source_bytes_basis: str
    rates: dict[str, Coef] = field(default_factory=dict)  # task key -> rows/s per vCPU
    vcpu_quota: float = 6
    quota_basis: str = "static default: AWS's default Fargate On-Demand vCPU quota (L-3032A538) for a new account"
    free_ips: int | None = None
    ips_basis: str = ""


@dataclass
class TaskRun:
    """One Fargate task: where its time and money go."""

    task: str
    stage: str
    rows: float
    cpu: float
    memory_gb: float
    arch: str
    seconds: float  # RunTask to stopped
    billed_seconds: float
    work_seconds: float
    usd: float
    memory_need_gb: float
    timeout_s: float | None
    fan_out: bool  # one batch of a fan-out (else a single task)


@dataclass
class StagePlan:
    name: str
    type: str
    start: float
    end: float
    usd: Counter
    basis: list[str]

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Plan:
    region: str
    layout: Layout
    inputs: Inputs
    total: cp.Total
    stages: list[StagePlan]
    statements: list[tuple[str, Scan, float, float]]  # (state, scan, billed bytes, usd)
    tasks: dict[str, TaskRun]  # by state name
    prices: RegionPrices
    coef: Coefficients

    @property
    def seconds(self) -> float:
        return self.total.seconds

    @property
    def usd(self) -> float:
        return sum(self.total.usd.values())


class Model:
    """Prices and times the states of one compiled pipeline."""

    def __init__(self, artifacts: "Artifacts", inputs: Inputs, coef: Coefficients = DEFAULT,
                 prices: RegionPrices | None = None):
        self.a, self.ctx, self.p = artifacts, artifacts.context, artifacts.context.p
        self.inputs, self.coef = inputs, coef
        self.prices = prices or for_region(self.p.aws.region)
        self.stage_names = [s.name for s in self.p.stages]
        self.stages = {s.name: s for s in self.p.stages}
        self.family_task = {self.ctx.names.task_family(k): k for k in self.p.compute.tasks}
        self.keys = {self.ctx.table(k).lower(): k for k in self.p.tables.names()}
        self.catalog = self._catalog()
        self.scans: dict[str, Scan] = {}
        self._analyse(self.a.definition, ())
        self._fast, self._tasks = False, {}

    # --- sizes from the spec
    def _key_of(self, role: str) -> str:
        """The table key playing stepkit's role (the table its template for the role writes; else the key itself)."""
        templates = {"training_features": "training_features.sql.j2", "training_targets": "training_targets.sql.j2",
                     "evaluation_features": "evaluation_features.sql.j2", "predictions": "predictions_table.sql.j2"}
        for s in self.p.stages:
            if getattr(s, "template", None) == templates.get(role) and getattr(s, "table", None):
                return s.table
        return role

    def rows_of_key(self, key: str) -> float:
        n = self.inputs.rows
        if key in (self._key_of("training_features"), self._key_of("training_targets")):
            percent = self.p.sample.percent if self.p.sample else 100.0
            return n * self.coef.v("labelled_share") * percent / 100
        return n

    def _column_bytes(self, name: str) -> float:
        c = self.coef
        features = {f.name: f.type for f in self.p.feature_list}
        targets = {t.name: t.type for t in self.p.target_list}
        targets |= {f"known_{k}": v for k, v in targets.items()}
        if name == "id":
            return c.v("id_bytes")
        if name in features:
            return c.v(f"{features[name]}_bytes")
        if name in targets:
            return c.v(f"{targets[name]}_bytes")
        if name in ("parse_ok", "known_in_interval"):
            return c.v("boolean_bytes")
        if name in ("batch_id", "batch_group", "sample_bucket"):
            return c.v("integer_bytes")
        if name in ("model_name", "model_version", "run_id", "prediction_source"):
            return c.v("category_bytes")
        return c.v("double_bytes")

    def _partitions_of(self, name: str) -> int | None:
        key = self.keys.get(name)
        for s in self.p.stages:
            if getattr(s, "table", None) == key and hasattr(s, "partition_count"):
                return s.partition_count(self.ctx)
        return None

    def _catalog(self) -> Catalog:
        p = self.p
        cat = Catalog(p.aws.database.lower(), lambda q: self.rows_of_key(self.keys[q]) if q in self.keys else None,
                      self._column_bytes, lambda kind: self.coef.v(f"{kind}_bytes"), self._partitions_of)
        source = f"{(p.source.database or p.aws.database)}.{p.source.table}".lower()
        cat.add(Table(source, "json", self.inputs.rows, {p.source.id_column.lower(): 0.0,
                                                          p.source.document_column.lower(): 0.0},
                      total_bytes=self.inputs.source_bytes))
        return cat

    def _analyse(self, machine: dict[str, Any], scope: tuple[str, ...]) -> None:
        """Every Athena statement in the order the run meets it, so a table is known before it is read."""
        for name, state in machine.get("States", {}).items():
            for branch in state.get("Branches", []):
                self._analyse(branch, scope + (name,))
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                self._analyse(processor, scope + (name,))
            if "athena:startQueryExecution" in str(state.get("Resource", "")):
                sql = query_text(state.get("Parameters", {}))
                self.scans[name] = self.catalog.analyse(sql) if sql else Scan("query", "", notes=["no SQL found"])

    # --- one state
    def _leaf(self, layout: Layout):
        c, pr = self.coef, self.prices

        def transitions(leaf: cp.Leaf, state: dict[str, Any]) -> None:
            n = 1.0 + (c.v("retry_share") if state.get("Type") == "Task" and state.get("Retry") else 0.0)
            leaf.counts["transitions"] += n
            leaf.usd["step_functions"] += n * pr.sfn_transition.usd
            leaf.counts["log_bytes"] += n * c.v("log_bytes_per_transition")

        def leaf(name: str, state: dict[str, Any], scope: tuple[str, ...]) -> cp.Leaf:
            out = cp.Leaf()
            kind, resource = state.get("Type"), str(state.get("Resource", ""))
            if kind == "Task" and "athena:startQueryExecution" in resource:
                self._athena(name, out, layout)
            elif kind == "Task" and "ecs:runTask" in resource:
                self._ecs(name, state, layout, out)
            elif kind == "Task" and "lambda:invoke" in resource:
                self._lambda(out)
            elif kind == "Task":
                out.seconds = 1.0
                out.basis.append(f"{name}: {resource}: not priced (1 s, no charge assumed)")
            elif kind == "Wait":
                out.seconds = float(state.get("Seconds", 0))
                if "Seconds" not in state:
                    out.basis.append(f"{name}: waits for a time read at run time; counted as 0 s")
            elif kind == "Map":
                self._map(name, state, layout, out)
            transitions(out, state)
            return out

        return leaf

    def _partitions(self, table: str | None, layout: Layout) -> int:
        """Partitions of a pipeline table under `layout` (batches change with it)."""
        key = self.keys.get(table or "")
        for st in self.p.stages:
            if key and getattr(st, "table", None) == key and getattr(st, "partitioned_by", None):
                kind = getattr(st, "partitions", None)
                if kind == "batches":
                    return layout.batches
                if kind == "batch_groups":
                    return math.ceil(layout.batches / MAX_WRITERS)
                if isinstance(kind, int):
                    return kind
        return 1

    def _athena(self, name: str, out: cp.Leaf, layout: Layout) -> None:
        c, pr = self.coef, self.prices
        scan = self.scans[name]
        out.basis += [f"{name}: {n}" for n in scan.notes]
        out.counts["athena_queries"] += 1
        out.counts["s3_put"] += 2  # the query's result and metadata files
        if scan.kind == "ddl":
            out.seconds = c.v("athena_query_overhead_s")
            out.basis.append(f"{name}: DDL, free; {out.seconds:g} s")
            return
        scanned = scan.bytes_scanned
        billed = max(10 * MB, math.ceil(scanned / MB) * MB)
        out.counts["bytes_scanned"] += scanned
        out.counts["bytes_billed"] += billed
        out.usd["athena"] += billed / TB * pr.athena_tb.usd
        t_json = scan.bytes_json / (c.v("athena_json_gb_per_s") * GB)
        t_parquet = scan.bytes_parquet / (c.v("athena_parquet_gb_per_s") * GB)
        t_write = scan.bytes_written / (c.v("athena_write_gb_per_s") * GB)
        out.seconds = c.v("athena_query_overhead_s") + t_json + t_parquet + t_write
        out.counts["s3_get"] += math.ceil(scanned / (c.v("athena_split_mb") * MB))
        out.counts["s3_list"] += max(1, len(scan.reads))
        written = max(1, round(self._partitions(scan.target, layout) * scan.write_share))
        out.counts["s3_put"] += max(written, math.ceil(scan.bytes_written / (c.v("athena_file_mb") * MB)))
        if self._fast:
            return
        what = ", ".join(f"{r.table.split('.')[-1]} {'raw JSON' if r.fmt == 'json' else f'{len(r.columns)} columns'}"
                         + (f" (1/{round(1 / r.fraction)} of partitions)" if r.fraction < 1 else "")
                         + f" {_gb(r.bytes)}" for r in scan.reads)
        out.basis.append(
            f"{name}: reads {what or 'nothing'}: {_gb(scanned)} scanned, billed {_gb(billed)} x "
            f"${pr.athena_tb.usd:g}/TB = ${out.usd['athena']:.4f}; {c.v('athena_query_overhead_s'):g} s + "
            f"{_gb(scan.bytes_json)} at {c.v('athena_json_gb_per_s'):g} GB/s + {_gb(scan.bytes_parquet)} at "
            f"{c.v('athena_parquet_gb_per_s'):g} GB/s + writes {scan.rows_written:,.0f} rows "
            f"{_gb(scan.bytes_written)} at {c.v('athena_write_gb_per_s'):g} GB/s = {out.seconds:,.0f} s")

    def task_rows(self, stage: str, layout: Layout) -> float:
        from stepkit.steps import _workers

        s = self.stages.get(stage)
        if s is None or s.type not in ("fan_out", "fargate_task") or _workers.worker(self.p, s.task) is None \
                or getattr(s, "command", None) is not None:
            return 0.0  # the user's own container (or a model copy): rows it reads are not known here
        if s.type == "fan_out":
            return self.rows_of_key(self._key_of("evaluation_features")) / max(1, layout.batches)
        return self.rows_of_key(self._key_of("training_features"))

    def _table_bytes(self, role: str) -> float:
        key = self._key_of(role)
        t = self.catalog.tables.get(self.ctx.table(key).lower()) if key in self.p.tables.names() else None
        return t.row_bytes if t else 0.0

    def task_run(self, name: str, state: dict[str, Any], layout: Layout) -> TaskRun:
        c, pr = self.coef, self.prices
        family = state.get("Parameters", {}).get("TaskDefinition", "")
        task = self.family_task.get(family.split("/")[-1].split(":")[0], family)
        stage = stage_of(name, self.stage_names) or name
        cpu, mem = layout.size(task)
        spec = self.p.compute.tasks[task]
        rows = self.task_rows(stage, layout)
        fan_out = self.stages.get(stage) is not None and self.stages[stage].type == "fan_out"
        rate = self.inputs.rates.get(task) or getattr(
            c, "prediction_rows_per_s_per_vcpu" if fan_out else "training_rows_per_s_per_vcpu")
        work = rows / (rate.value * cpu)
        if fan_out:
            io = rows * (self._table_bytes("evaluation_features") + self._table_bytes("predictions"))
            need = c.v("prediction_base_gb") + min(rows, READ_BATCH) * c.v("prediction_row_kb") / 1024 ** 2
        else:
            io = rows * (self._table_bytes("training_features") + self._table_bytes("training_targets"))
            need = c.v("training_base_gb") + rows * len(self.p.feature_list) * c.v("training_bytes_per_value") / GB
        if not rows:
            need = 0.0  # a container of the user's: its memory is its own to size
        io_s = io / (c.v("task_io_mb_per_s") * MB)
        running = c.v("fargate_pull_s") + c.v("worker_start_s") + work + io_s
        billed = max(BILLING_MINIMUM_S, running)
        arch = spec.architecture
        usd = billed / 3600 * (cpu * pr.fargate_vcpu_hour[arch].usd + mem * pr.fargate_gb_hour[arch].usd
                               + max(0, spec.ephemeral_storage_gb - 20) * pr.fargate_storage_gb_hour.usd)
        timeout = state.get("TimeoutSeconds")
        return TaskRun(task, stage, rows, cpu, mem, arch, c.v("fargate_provisioning_s") + running, billed, work, usd,
                       need, float(timeout) if timeout is not None else None, fan_out)

    def _ecs(self, name: str, state: dict[str, Any], layout: Layout, out: cp.Leaf) -> None:
        c, pr = self.coef, self.prices
        t = self.task_run(name, state, layout)
        self._tasks[name] = t
        out.seconds, out.vcpu, out.tasks = t.seconds, t.cpu, 1
        out.usd["fargate"] += t.usd
        out.counts["fargate_tasks"] += 1
        out.counts["vcpu_hours"] += t.billed_seconds / 3600 * t.cpu
        out.counts["gb_hours"] += t.billed_seconds / 3600 * t.memory_gb
        out.counts["log_bytes"] += c.v("log_bytes_per_task")
        # Reads its input in ranged GETs, writes its output (and a few small files: models, config).
        out.counts["s3_get"] += 3 + math.ceil(t.rows * self._table_bytes("evaluation_features") / (8 * MB))
        out.counts["s3_put"] += 1 + math.ceil(t.rows * self._table_bytes("predictions") / (8 * MB))
        out.counts["s3_list"] += 1
        if self._fast:
            return
        rate = self.inputs.rates.get(t.task)
        rate_text = (f"{rate.value:,.0f} rows/s a vCPU ({rate.source})" if rate else
                     "default rows/s a vCPU")
        out.basis.append(
            f"{name}: {t.rows:,.0f} rows on {t.cpu:g} vCPU / {t.memory_gb:g} GB {t.arch}: "
            f"{c.v('fargate_provisioning_s'):g} s provisioning + {c.v('fargate_pull_s'):g} s image pull + "
            f"{c.v('worker_start_s'):g} s start + {t.work_seconds:,.1f} s work at {rate_text} + I/O = "
            f"{t.seconds:,.0f} s; billed {t.billed_seconds:,.0f} s (1 min minimum) x "
            f"(${pr.fargate_vcpu_hour[t.arch].usd:g}/vCPU-h, ${pr.fargate_gb_hour[t.arch].usd:g}/GB-h) = ${t.usd:.4f}")

    def _lambda(self, out: cp.Leaf) -> None:
        c, pr = self.coef, self.prices
        lam = self.p.compute.lambda_
        out.seconds = c.v("lambda_seconds")
        gb_s = lam.memory_mb / 1024 * out.seconds
        out.usd["lambda"] += gb_s * pr.lambda_gb_second[lam.architecture].usd + pr.lambda_request.usd
        out.counts["lambda_invocations"] += 1
        out.counts["log_bytes"] += c.v("log_bytes_per_lambda")
        out.counts["s3_list"] += 10  # listing the prefixes it deletes

    def items(self, layout: Layout):
        def items(name: str, state: dict[str, Any]) -> int:
            stage = stage_of(name, self.stage_names)
            if stage and self.stages[stage].type == "fan_out":
                return layout.batches
            return 1
        return items

    def _map(self, name: str, state: dict[str, Any], layout: Layout, out: cp.Leaf) -> None:
        c = self.coef
        n = self.items(layout)(name, state)
        conc, _ = cp.concurrency(name, state, n)
        waves = math.ceil(n / conc) if n else 0
        distributed = ((state.get("ItemProcessor") or {}).get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED"
        launch = max(0.0, conc - c.v("fargate_launch_burst")) / c.v("fargate_launch_per_s")
        out.seconds = (c.v("map_start_s") if distributed else 0.0) + waves * launch
        if distributed:
            out.counts["s3_put"] += 3  # ResultWriter: manifest and result files
        if self._fast:
            return
        out.basis.append(f"{name}: {n} items, {conc} at once: {waves} wave(s)"
                         + (f", each waiting {launch:,.0f} s for task launches past the burst of "
                            f"{c.v('fargate_launch_burst'):g} at {c.v('fargate_launch_per_s'):g}/s" if launch else "")
                         + (f"; Distributed Map start {c.v('map_start_s'):g} s" if distributed else ""))

    # --- the run
    def walk(self, layout: Layout, override: dict[str, float] | None = None, fast: bool = False,
             definition: dict[str, Any] | None = None) -> cp.Total:
        """Totals of one run. `override`: states whose whole duration is given (they then cost
        nothing and a Map runs no items): the optimizer varies those states alone."""
        self._fast, self._tasks = fast, {}
        leaf, items = self._leaf(layout), self.items(layout)
        if override:
            def leaf_or_given(name: str, state: dict[str, Any], scope: tuple[str, ...]) -> cp.Leaf:
                return cp.Leaf(seconds=override[name]) if name in override else leaf(name, state, scope)

            def items_or_none(name: str, state: dict[str, Any]) -> int:
                return 0 if name in override else items(name, state)

            hooks = cp.Hooks(leaf_or_given, items_or_none)
        else:
            hooks = cp.Hooks(leaf, items)
        total = cp.walk(definition or self._with_concurrency(layout), hooks)
        self._price_counts(total)
        return total

    def evaluate(self, layout: Layout | None = None) -> Plan:
        layout = layout or Layout.of(self.p)
        total = self.walk(layout)
        statements = []
        for name, scan in self.scans.items():
            billed = 0.0 if scan.kind == "ddl" else max(10 * MB, math.ceil(scan.bytes_scanned / MB) * MB)
            statements.append((name, scan, billed, billed / TB * self.prices.athena_tb.usd))
        return Plan(self.p.aws.region, layout, self.inputs, total, self._stages(total), statements,
                    dict(self._tasks), self.prices, self.coef)

    def variable_states(self) -> list[str]:
        """States whose time and cost depend on the layout: Fargate tasks outside any Map, and
        the fan-outs' Maps (with their items). Raises for a layout the optimizer cannot vary."""
        out: list[str] = []

        def visit(machine: dict[str, Any], in_map: bool) -> None:
            for name, state in machine.get("States", {}).items():
                stage = stage_of(name, self.stage_names)
                fan_out = bool(stage) and self.stages[stage].type == "fan_out"
                if state.get("Type") == "Map" and fan_out:
                    out.append(name)
                    continue
                if "ecs:runTask" in str(state.get("Resource", "")):
                    if in_map:
                        raise StepkitError(f"{name}: a Fargate task inside a Map that is no fan-out: "
                                           "--optimize cannot size it")
                    out.append(name)
                for b in state.get("Branches", []):
                    visit(b, in_map)
                processor = state.get("ItemProcessor") or state.get("Iterator")
                if processor:
                    visit(processor, True)

        visit(self.a.definition, False)
        return out

    def part(self, name: str, layout: Layout) -> tuple[float, float, cp.Total]:
        """(seconds, usd, totals) of one state alone, Map items included."""
        state = _find(self._with_concurrency(layout), name)
        alone = {"StartAt": name, "States": {name: {**{k: v for k, v in state.items() if k != "Next"}, "End": True}}}
        total = self.walk(layout, fast=True, definition=alone)
        return total.seconds, sum(total.usd.values()), total

    def _with_concurrency(self, layout: Layout) -> dict[str, Any]:
        """The definition with the layout's MaxConcurrency on the fan-out's Map."""
        if self.p.batching is None or layout.max_concurrency == self.p.batching.max_concurrency:
            return self.a.definition
        cache = self.__dict__.setdefault("_patched", {})
        if layout.max_concurrency in cache:
            return cache[layout.max_concurrency]
        definition = copy.deepcopy(self.a.definition)
        cache[layout.max_concurrency] = definition

        def patch(machine: dict[str, Any]) -> None:
            for name, state in machine.get("States", {}).items():
                stage = stage_of(name, self.stage_names)
                if state.get("Type") == "Map" and stage and self.stages[stage].type == "fan_out":
                    state["MaxConcurrency"] = layout.max_concurrency
                for b in state.get("Branches", []):
                    patch(b)

        patch(definition)
        return definition

    def _price_counts(self, total: cp.Total) -> None:
        """S3 requests and log bytes are counted per state and priced once, on the totals."""
        pr, k = self.prices, total.counts
        total.usd["s3_requests"] += (k["s3_put"] + k["s3_list"]) * pr.s3_put.usd + k["s3_get"] * pr.s3_get.usd
        total.usd["logs"] += k["log_bytes"] / GB * pr.logs_ingest_gb.usd

    def _stages(self, total: cp.Total) -> list[StagePlan]:
        out: dict[str, StagePlan] = {}
        for span in total.spans:
            stage = stage_of(span.name, self.stage_names) or "(other states)"
            kind = self.stages[stage].type if stage in self.stages else "-"
            sp = out.setdefault(stage, StagePlan(stage, kind, span.start, span.end, Counter(), []))
            sp.start, sp.end = min(sp.start, span.start), max(sp.end, span.end)
        for name, leaf, times in total.charges:
            stage = stage_of(name, self.stage_names) or "(other states)"
            sp = out.setdefault(stage, StagePlan(stage, "-", 0.0, 0.0, Counter(), []))
            for comp, usd in leaf.usd.items():
                sp.usd[comp] += usd * times
            for line in leaf.basis:
                if line not in sp.basis:
                    sp.basis.append(line)
        order = {n: i for i, n in enumerate(self.stage_names)}
        return sorted(out.values(), key=lambda s: (order.get(s.name, len(order)), s.start))


def _find(machine: dict[str, Any], name: str) -> dict[str, Any]:
    for n, state in machine.get("States", {}).items():
        if n == name:
            return state
        for b in state.get("Branches", []):
            try:
                return _find(b, name)
            except KeyError:
                pass
    raise KeyError(name)


def _gb(n: float) -> str:
    if n >= TB:
        return f"{n / TB:,.2f} TB"
    if n >= GB:
        return f"{n / GB:,.1f} GB"
    return f"{n / MB:,.1f} MB"
