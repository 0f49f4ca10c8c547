"""Run n jobs on at most `limit` threads; stop handing out jobs once `token` is cancelled.

With one job or a limit of one the jobs run in the calling thread: most Maps in tests and small
definitions then cost no thread at all.
"""
from __future__ import annotations

import threading
from typing import Callable

from .control import Token


def run_jobs(n: int, limit: int, job: Callable[[int], None], token: Token) -> None:
    limit = max(1, min(limit, n))
    counter = iter(range(n))
    lock = threading.Lock()
    crashed: list[BaseException] = []

    def worker() -> None:
        while not token.cancelled and not crashed:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                job(i)
            except BaseException as e:  # a bug in the interpreter: stop the others and re-raise it below
                crashed.append(e)
                token.cancel("crash")
                return

    if limit == 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, name=f"stepkit-worker-{k}", daemon=True) for k in range(limit)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if crashed:
        raise crashed[0]
