"""Fargate's legal cpu/memory pairs (Linux, platform 1.4.0+).

Source: AWS ECS task-definition docs, task size table. Memory in GB.
"""
from __future__ import annotations

# vCPU -> (min GB, max GB, step GB); 0.25 and 0.5 vCPU take a short explicit list.
_RANGES: dict[float, tuple[int, int, int]] = {
    1: (2, 8, 1),
    2: (4, 16, 1),
    4: (8, 30, 1),
    8: (16, 60, 4),
    16: (32, 120, 8),
}
_EXPLICIT: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1, 2),
    0.5: (1, 2, 3, 4),
}
VCPUS = sorted([*_EXPLICIT, *_RANGES])


def describe(cpu: float) -> str:
    if cpu in _EXPLICIT:
        return f"{cpu:g} vCPU takes {', '.join(f'{m:g}' for m in _EXPLICIT[cpu])} GB"
    lo, hi, step = _RANGES[cpu]
    return f"{cpu:g} vCPU takes {lo}-{hi} GB in {step} GB steps"


def check_cpu(cpu: float) -> str | None:
    """None when Fargate has this vCPU size, else the reason."""
    if cpu not in _EXPLICIT and cpu not in _RANGES:
        return f"{cpu:g} is not a Fargate vCPU size (one of {', '.join(f'{c:g}' for c in VCPUS)})"
    return None


def check(cpu: float, memory_gb: float) -> str | None:
    """None when Fargate accepts the pair, else the reason."""
    problem = check_cpu(cpu)
    if problem:
        return problem
    if cpu in _EXPLICIT:
        ok = memory_gb in _EXPLICIT[cpu]
    else:
        lo, hi, step = _RANGES[cpu]
        ok = lo <= memory_gb <= hi and float(memory_gb - lo) % step == 0
    return None if ok else f"{memory_gb:g} GB is not a Fargate size: {describe(cpu)}"


def cpu_units(cpu: float) -> int:
    return int(cpu * 1024)


def memory_mib(memory_gb: float) -> int:
    return int(memory_gb * 1024)
