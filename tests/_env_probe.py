"""A worker module for tests: returns one environment variable as the worker process sees it."""
import os


def run(key: str) -> str | None:
    return os.environ.get(key)
