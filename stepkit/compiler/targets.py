"""What the targets ask of the training section, checked once the spec is read: a model of each
target's kind, gate bounds and a selection metric that some target has, and settings a package's
model kind can honour. Located at the value at fault (a target's type, the gate's bound), not the
section."""
from __future__ import annotations

from typing import TYPE_CHECKING

from stepkit.ml import kinds
from stepkit.spec.metrics import METRICS
from stepkit.steps.base import Finding

if TYPE_CHECKING:
    from stepkit.ir.context import Context


def check(ctx: "Context") -> list[Finding]:
    p = ctx.p
    training = p.training
    targets = p.target_list
    if training is None or not targets:
        return []
    found = []
    tasks = {kinds.task(m.kind) for m in training.models}
    for i, t in enumerate(targets):
        if t.task not in tasks:
            where = ("targets", i, "type") if p.targets else ("target", "type")
            names = ", ".join(k for k, task in kinds.TASKS.items() if task == t.task)
            found.append(Finding("error", where, f"target {t.name!r} ({t.type}) has no {t.task} model among "
                                 f"training.models (kinds: {names})", root=True))
    for i, m in enumerate(training.models):
        # The spec refuses it on a built-in kind; a package's kind says in its class whether it reads codes.
        if m.category_splits and m.kind not in kinds.KINDS and not getattr(kinds.get(m.kind), "category_codes", False):
            found.append(Finding("error", ("training", "models", i, "category_splits"),
                                 "`category_splits` is only for kinds that split on category codes; "
                                 f"kind {m.kind} reads one-hot columns", root=True))
    wanted = {t.task for t in targets}
    for metric, bound, _ in training.quality_gate.checks():
        task = next(k for k, m in METRICS.items() if metric in m)
        if task not in wanted:
            found.append(Finding("error", ("training", "quality_gate", f"{bound}_{metric}"),
                                 f"no {task} target has {metric} (the targets: "
                                 f"{', '.join(f'{t.name} ({t.type})' for t in targets)})", root=True))
    chosen = training.selection_metric
    if chosen and not any(chosen in METRICS[task] for task in wanted):
        task = next(k for k, m in METRICS.items() if chosen in m)
        found.append(Finding("error", ("training", "selection_metric"), f"{chosen} picks {task} models: no target "
                             f"is a {task} target", root=True))
    return found
