"""What a local run prints: one line per stage, and batch progress of the fan-out.

On a terminal the batch counter updates in place; in CI logs (not a TTY) it prints a line
every 10% so logs stay short and readable. No dependency: two kinds of line are all it needs.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, tty: bool | None = None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._last: dict[str, int] = {}
        self._inline = False
        self._last_draw = 0.0
        self.unit = "batches"  # what `done/total` counts for the running stage

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _end_inline(self) -> None:
        if self._inline:
            self._write("\n")
            self._inline = False

    def log(self, message: str) -> None:
        self._end_inline()
        self._write(message + "\n")

    def stage_start(self, index: int, total: int, name: str, kind: str) -> None:
        self.log(f"[{index}/{total}] {name} ({kind}) ...")

    def stage_end(self, name: str, seconds: float, rows: int | None, note: str = "") -> None:
        rows_text = f", {rows:,} rows" if rows is not None else ""
        rate = f", {rows / seconds:,.0f} rows/s" if rows and seconds > 0 else ""
        self.log(f"      {name}: done in {seconds:.1f} s{rows_text}{rate}{note}")

    def batches(self, stage: str, done: int, total: int) -> None:
        """Called as batches (or a CTAS's statements) finish; cheap enough to call 898 times."""
        if total <= 1:
            return
        if self.tty:
            now = time.monotonic()
            if done < total and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            width = 30
            filled = width * done // total
            self._write(f"\r      {stage}: [{'#' * filled}{'.' * (width - filled)}] {self.unit} {done}/{total}")
            self._inline = True
            if done >= total:
                self._end_inline()
            return
        tenth = 10 * done // total
        if tenth > self._last.get(stage, 0):
            self._last[stage] = tenth
            self.log(f"      {stage}: {self.unit} {done}/{total}")
