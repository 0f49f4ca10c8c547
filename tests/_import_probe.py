"""A worker module for tests: which modules a worker process has loaded, and whether it can import one."""
import importlib
import sys


def run(loaded: list[str], importable: str) -> dict:
    before = {name: name in sys.modules for name in loaded}
    try:
        importlib.import_module(importable)
        ok = True
    except ImportError:
        ok = False
    return {"loaded": before, "importable": ok}
