"""`wait`: pause (e.g. the seed's 3-minute buffer before cleanup)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from stepkit.compiler.asl import Fragment, state
from stepkit.steps.base import Stage

if TYPE_CHECKING:
    from stepkit.compiler.context import Context


class Wait(Stage):
    """Wait a fixed time. Local runs shorten it to `local_seconds` and say so."""

    type: Literal["wait"] = "wait"
    seconds: int = Field(gt=0, le=365 * 24 * 3600, description="Seconds to wait on AWS.")
    local_seconds: float = Field(0, ge=0, le=3600, description="Seconds to wait in `stepkit run --local`.")

    def fragment(self, ctx: "Context") -> Fragment:
        return Fragment().add(self.name, state("Wait", self.comment, Seconds=self.seconds)).chain()

    def run_local(self, ctx) -> dict:
        # Locally nothing settles in the background (no S3 consistency, no Glue lag): shorten it, and say so.
        ctx.log(f"      {self.name}: waits {self.seconds} s on AWS; {self.local_seconds:g} s locally")
        time.sleep(self.local_seconds)
        return {"note": f" (shortened from {self.seconds} s)"}
