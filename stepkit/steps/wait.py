"""`wait`: pause (e.g. the seed's 3-minute buffer before cleanup)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from stepkit.ir.asl import Fragment, state
from stepkit.steps.base import Stage

if TYPE_CHECKING:
    from stepkit.ir.context import Context


class Wait(Stage):
    """Wait a fixed time. A local run does not wait (nothing settles in the background there), and says so."""

    type: Literal["wait"] = "wait"
    seconds: int = Field(gt=0, le=365 * 24 * 3600, description="Seconds to wait on AWS.")

    def fragment(self, ctx: "Context") -> Fragment:
        return Fragment().add(self.name, state("Wait", self.comment, Seconds=self.seconds)).chain()
