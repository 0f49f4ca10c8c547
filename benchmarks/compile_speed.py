"""How long `stepkit compile pipelines/predict_age.yaml` takes, against a baseline from the same run.

The baseline is `python -c "import yaml, pydantic, jinja2"`: the least any compile can cost
(interpreter start plus the three libraries the compiler is built on). Both run as fresh
processes, alternately, `--runs` times; the medians are printed with their ratio. Wall time is
the target; CPU time (user + sys of the process and its children: compile's SQL-check child
included) is printed too, as it is less disturbed by other work on the machine.

Bytecode caching is on for both (a normal install has .pyc files) and one untimed warm-up run
writes the .pyc files and stepkit's caches (compiled templates, SQL already checked), and the
output folder is reused, as when compiling again. `cold` runs compile with STEPKIT_NO_CACHE=1
into a new folder each time: templates compiled and every statement parsed again, the first
compile after a change.

Run: `.venv/bin/python benchmarks/compile_speed.py [--runs N]` (or `make bench`).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.5
TARGET_RATIO = 3.0


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run of `cmd`, children included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--pipeline", default="pipelines/predict_age.yaml")
    args = ap.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "STEPKIT_NO_CACHE")}
    cold_env = {**env, "STEPKIT_NO_CACHE": "1"}
    with tempfile.TemporaryDirectory() as out:
        compile_cmd = [sys.executable, "-m", "stepkit", "compile", args.pipeline,
                       "--env-file", "pipelines/example.env", "--out", out]
        base_cmd = [sys.executable, "-c", "import yaml, pydantic, jinja2"]
        runs: dict[str, tuple[list[str], dict[str, str]]] = {
            "baseline": (base_cmd, env), "compile": (compile_cmd, env), "cold": (compile_cmd, cold_env)}
        for cmd, e in runs.values():  # warm-up: .pyc files, template cache, OS file cache
            timed(cmd, e)
        walls: dict[str, list[float]] = {k: [] for k in runs}
        cpus: dict[str, list[float]] = {k: [] for k in runs}
        for i in range(args.runs):
            for key, (cmd, e) in runs.items():
                if key == "cold":  # a first compile: an empty output folder too
                    cmd = [*cmd[:-1], f"{out}/cold-{i}"]
                wall, cpu = timed(cmd, e)
                walls[key].append(wall)
                cpus[key].append(cpu)

    med = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    labels = {"baseline": "python -c 'import yaml, pydantic, jinja2'",
              "compile": f"stepkit compile {args.pipeline}",
              "cold": "  same, STEPKIT_NO_CACHE=1, new output folder"}
    print(f"{args.runs} runs each, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for key, label in labels.items():
        print(f"{key:<9} wall median {med[key]:.3f} s (min {min(walls[key]):.3f})  cpu median {cpu[key]:.3f} s  {label}")
    ratio = med["compile"] / med["baseline"]
    print(f"ratio     compile / baseline: wall {ratio:.2f}x, cpu {cpu['compile'] / cpu['baseline']:.2f}x, "
          f"cold wall {med['cold'] / med['baseline']:.2f}x  (target <= {TARGET_RATIO:g}x)")
    print(f"target    compile under {TARGET_SECONDS} s wall: {'met' if med['compile'] < TARGET_SECONDS else 'NOT met'}"
          f"; within {TARGET_RATIO:g}x of baseline: {'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
