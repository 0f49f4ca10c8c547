"""How long `stepkit compile pipelines/predict_age.yaml` takes, against a baseline from the same run.

The baseline is `python -c "import yaml, pydantic, jinja2"`: the least any compile can cost
(interpreter start plus the three libraries the compiler is built on). Both are run as fresh
processes, alternately, several times; the median wall time of each is printed, and their ratio.

Bytecode caching is on for both (a normal install has .pyc files): one untimed warm-up run
writes them. Run: `.venv/bin/python benchmarks/compile_speed.py [--runs N]`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.5
TARGET_RATIO = 3.0


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--pipeline", default="pipelines/predict_age.yaml")
    args = ap.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as out:
        compile_cmd = [sys.executable, "-m", "stepkit", "compile", args.pipeline,
                       "--env-file", "pipelines/example.env", "--out", out]
        base_cmd = [sys.executable, "-c", "import yaml, pydantic, jinja2"]
        for cmd in (compile_cmd, base_cmd):  # warm-up: .pyc files, OS file cache
            timed(cmd, env)
        compile_times, base_times = [], []
        for _ in range(args.runs):
            compile_times.append(timed(compile_cmd, env))
            base_times.append(timed(base_cmd, env))

    c, b = statistics.median(compile_times), statistics.median(base_times)
    ratio = c / b
    print(f"baseline  python -c 'import yaml, pydantic, jinja2': median {b:.3f} s (min {min(base_times):.3f})")
    print(f"compile   stepkit compile {args.pipeline}: median {c:.3f} s (min {min(compile_times):.3f})")
    print(f"ratio     compile / baseline = {ratio:.2f}x  (target <= {TARGET_RATIO:g}x; "
          f"absolute target < {TARGET_SECONDS} s: {'met' if c < TARGET_SECONDS else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
