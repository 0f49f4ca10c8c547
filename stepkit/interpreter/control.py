"""Cancellation and deadlines shared by the threads of one execution.

A `Token` is set when the work under it must stop; cancelling a token cancels every token made from it,
so stopping the execution reaches every running task, and a failed Parallel branch reaches its siblings.
`Deadlines` runs TimeoutSeconds with one watcher thread for the whole execution instead of a timer thread
per task.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable


class Cancelled(Exception):
    """The work was cancelled from outside (stop(), an execution timeout, a failed sibling branch)."""


class Token:
    __slots__ = ("event", "reason", "_children", "_lock", "_parent")

    def __init__(self, parent: "Token | None" = None):
        self.event = threading.Event()
        self.reason: str | None = None
        self._children: set[Token] = set()
        self._lock = threading.Lock()
        self._parent = parent
        if parent is not None:
            with parent._lock:
                if parent.event.is_set():
                    self.reason = parent.reason
                    self.event.set()
                else:
                    parent._children.add(self)

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def child(self) -> "Token":
        return Token(self)

    def cancel(self, reason: str) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.reason = reason
            self.event.set()
            children, self._children = list(self._children), set()
        for c in children:
            c.cancel(reason)

    def release(self) -> None:
        """Forget this token in its parent (its work is over)."""
        if self._parent is not None:
            with self._parent._lock:
                self._parent._children.discard(self)

    def check(self) -> None:
        if self.event.is_set():
            raise Cancelled(self.reason)

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self.event.wait(seconds):
            raise Cancelled(self.reason)
        self.check()


class Deadlines:
    def __init__(self):
        self._heap: list = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, seconds: float, callback: Callable[[], None]) -> list:
        entry = [time.monotonic() + seconds, next(self._seq), callback]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="stepkit-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
        return entry

    def close(self) -> None:
        """End the watcher thread (the execution is over)."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    @staticmethod
    def remove(entry: list | None) -> None:
        if entry is not None:
            entry[2] = None

    def _watch(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][2] is None):
                    if self._heap:
                        heapq.heappop(self._heap)
                    else:
                        self._cond.wait()
                if self._closed:
                    return
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                callback = heapq.heappop(self._heap)[2]
            if callback is not None:
                callback()
