"""What the local workers' forkserver imports once, so every worker process starts with it loaded.

xgboost imports scikit-learn (and with it pandas and SciPy) whenever it is installed, for its
scikit-learn style wrappers: 2.2 s of a 2.6 s import here, paid before the first local task
could start. stepkit's workers use only `xgboost.train` and `Booster`, and their container
images have no scikit-learn (workers/*/requirements.txt), so xgboost is imported here as the
container sees it. The block is lifted right after: a user's worker importing scikit-learn
later gets it as usual (only xgboost's own XGBRegressor wrappers lack scikit-learn's base classes).
"""
from __future__ import annotations

import signal

# First, before the slow imports below: Ctrl-C in a terminal reaches the whole process group, the
# forkserver and every worker as well as the main process. The main process reports it (the CLI
# prints `interrupted`, exits 130) and records the run as failed; a worker or the forkserver should
# just end, silently, at once. Python's own handler would print each one's traceback instead (25
# lines of a KeyboardInterrupt inside an import), and would only act once the C call it is in
# returns (a long xgboost fit). The forkserver ignores SIGINT for itself once its imports are done
# and hands each worker it forks the handler found here (CPython's forkserver.main: old_handlers).
# Outputs stay whole: every write is a hidden temp file renamed into place (stepkit/storage.py).
signal.signal(signal.SIGINT, signal.SIG_DFL)
# pool.start() starts this process with SIGINT blocked (a Ctrl-C during the interpreter's own
# start-up printed a fatal-error traceback): with the handler in place, a pending one ends it now.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

import importlib  # noqa: E402 - after the handler: an import may take a second or two
import sys  # noqa: E402

# pandas: not used by the workers, but pyarrow imports it (where installed) at its first array
# conversion in a process: 0.5 s in the first batch of every worker process, paid here once instead.
HEAVY = ["numpy", "pyarrow.parquet", "pandas"]


def _xgboost_without_sklearn() -> None:
    blocked = "sklearn" not in sys.modules
    if blocked:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # `import sklearn` -> ImportError
    try:
        importlib.import_module("xgboost")
    except ImportError:
        pass  # no xgboost here: workers that need it fail on their own import, with its message
    finally:
        if blocked and sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]


for _name in HEAVY:
    try:
        importlib.import_module(_name)
    except ImportError:
        pass
_xgboost_without_sklearn()
