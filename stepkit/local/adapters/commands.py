"""A container running the user's own command (`fargate_task.command`), run here as a process.

A local run has no container engine: the command runs on this machine, in the pipeline file's
folder, with `python` (or `python3`) as this Python. What the state machine hands the container
is handed to the process as it is, with the pipeline's S3 root made the local warehouse: the
command's arguments and its environment (STEPKIT_RUN_ID, STEPKIT_CONFIG, STEPKIT_BATCH_ID). Exit
0 is success; its last stdout line, when it is a JSON object, is the task's report (rows...).
Anything else fails the task with the command's last line of stderr, as a container's exit code
does on AWS.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from stepkit.interpreter import TaskCall, TaskFailure

PYTHON = ("python", "python3")


def is_user_command(command: list[str]) -> bool:
    """stepkit's workers take `--config URI --run-id ID ...`; any other command is the user's own."""
    return not command or command[0] != "--config"


def executable(command: list[str]) -> str | None:
    """The program the command starts here, or None when this machine has no such program."""
    if not command:
        return None
    if command[0] in PYTHON:
        return sys.executable
    return shutil.which(command[0])


def _local(services: Any, value: str) -> str:
    """A value naming something under the pipeline's root, as the warehouse path that stands for it."""
    root = services.root
    return str(services.to_local(value)) if value.startswith(root) else value.replace(root, services.local.names.root)


def environment(call: TaskCall) -> dict[str, str]:
    overrides = ((call.parameters or {}).get("Overrides") or {}).get("ContainerOverrides") or [{}]
    return {str(e["Name"]): str(e["Value"]) for e in overrides[0].get("Environment") or [] if "Value" in e}


def run(services: Any, call: TaskCall, command: list[str]) -> dict[str, Any]:
    program = executable(command)
    if program is None:
        raise TaskFailure("States.TaskFailed", f"{call.state}: {command[0] if command else '(empty)'}: no such "
                          "program on this machine (a local run runs the task's command here)")
    argv = [program, *[_local(services, a) for a in command[1:]]]
    env = {**os.environ, **{k: _local(services, v) for k, v in environment(call).items()}}
    cwd = services.plan.context.file.resolve().parent
    services.task_started()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while True:
            try:
                out, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if call.cancelled.is_set():  # a timeout or a stopped run: the container is stopped
                    proc.kill()
                    proc.communicate()
                    raise TaskFailure("States.TaskFailed", f"{call.state}: the task was stopped") from None
    finally:
        services.task_ended()
    if proc.returncode != 0:
        last = (err.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise TaskFailure("States.TaskFailed", f"{call.state}: {' '.join(command)}: {last}")
    lines = out.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    return report if isinstance(report, dict) else {"result": report}
