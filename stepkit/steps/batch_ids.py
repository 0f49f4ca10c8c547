"""`batch_ids`: the list of batch ids 0..N-1, built by an intrinsic function (no Lambda)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from stepkit.ir.asl import Fragment, state
from stepkit.steps.base import Finding, Flow, Stage

if TYPE_CHECKING:
    from stepkit.ir.context import Context

# States.ArrayRange returns at most 1,000 items (docs: intrinsic functions).
ARRAY_RANGE_MAX = 1000
RESULT_PATH = "$.batch_ids"
ITEMS_PATH = "$.batch_ids.ids"
# What it writes, in the data flow's names: execution state, not a table.
BATCH_IDS = "$batch_ids"


class BatchIds(Stage):
    """Puts `batch_ids.ids = [0, ..., batches-1]` in the state; a `fan_out` stage maps over it."""

    type: Literal["batch_ids"] = "batch_ids"

    def check(self, ctx: "Context") -> list[Finding]:
        if ctx.p.batching is None:
            return [Finding("error", ("type",), "batch_ids makes one id per batch: the pipeline has no `batching`")]
        n = ctx.p.batching.batches
        if n > ARRAY_RANGE_MAX:
            return [Finding("error", ("batching", "batches"), f"{n} batches: States.ArrayRange makes at most "
                            f"{ARRAY_RANGE_MAX} items (stage {self.name}); use fewer, larger batches", root=True)]
        return []

    def flow(self, ctx: "Context") -> Flow:
        return Flow(writes=frozenset({BATCH_IDS}))

    def fragment(self, ctx: "Context") -> Fragment:
        n = ctx.p.batching.batches
        pass_state = state("Pass", self.comment, Parameters={"ids.$": f"States.ArrayRange(0, {n - 1}, 1)"},
                           ResultPath=RESULT_PATH)
        return Fragment().add(self.name, pass_state).chain()

