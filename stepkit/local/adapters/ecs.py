"""`ecs:runTask(.sync)` -> the task's worker code in a local process, with the container command from
`Overrides` (`--config URI --run-id ID [--batch-id N]`).

The task definition family names the task (`compute.tasks` key), and the key names the worker module
a container of that task runs. Its `--config` URI is under the pipeline's root, so it is the worker
config the runner wrote in the warehouse. A failed worker is States.TaskFailed, as a container that
exits non-zero is on AWS; the state's own Retry decides what happens next. A full disk is not: it
ends the run (retrying 898 batches against a full disk only fills the log).
"""
from __future__ import annotations

import errno
import uuid
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from stepkit.errors import StepkitError
from stepkit.interpreter import TaskCall, TaskFailure
from stepkit.local import pool
from stepkit.local.adapters import commands, tasks

RESOURCES = ("arn:aws:states:::ecs:runTask.sync", "arn:aws:states:::ecs:runTask")
FLAGS = {"--config": "config", "--run-id": "run_id", "--batch-id": "batch_id", "--stage": "stage"}


def _command(call: TaskCall) -> list[str]:
    overrides = ((call.parameters or {}).get("Overrides") or {}).get("ContainerOverrides") or []
    if len(overrides) != 1 or not isinstance(overrides[0].get("Command"), list):
        raise TaskFailure("States.TaskFailed", f"{call.state}: expected one container override with a Command")
    return [str(a) for a in overrides[0]["Command"]]


def parse(command: list[str]) -> dict[str, str]:
    """The worker's arguments by name; anything else is refused (a local run passes only these)."""
    out: dict[str, str] = {}
    it = iter(command)
    for flag in it:
        if flag not in FLAGS:
            raise ValueError(f"argument {flag!r}: a local run passes only {', '.join(FLAGS)} to a worker")
        value = next(it, None)
        if value is None:
            raise ValueError(f"{flag} has no value")
        out[FLAGS[flag]] = value
    for required in ("config", "run_id"):
        if required not in out:
            raise ValueError(f"the command has no --{required.replace('_', '-')}")
    return out


def adapter(services: Any):
    families = tasks.families(services)

    def run(call: TaskCall) -> dict[str, Any]:
        family = str((call.parameters or {}).get("TaskDefinition", "")).split(":")[0].rsplit("/", 1)[-1]
        task = families.get(family)
        if task is None:
            raise TaskFailure("ECS.ClientException", f"{call.state}: no task definition family {family!r}")
        command = _command(call)
        if commands.is_user_command(command):  # the user's own image and command: a process here
            summary = commands.run(services, call, command)
            services.report(call.state, summary)
            return _stopped(family, task)
        try:
            args = parse(command)
            config = str(services.to_local(args["config"]))
        except (ValueError, StepkitError) as e:
            raise TaskFailure("States.TaskFailed", f"{call.state}: {e}") from None
        module = tasks.module(services, task)
        worker_args: tuple[Any, ...] = (config, args["run_id"])
        batch = int(args["batch_id"]) if "batch_id" in args else None
        if batch is not None:
            worker_args += (batch,)
        if "stage" in args:
            worker_args += (args["stage"],)
        try:
            # One batch of a fan-out (its command names the batch): the shared pool, one thread per process.
            # Not every nested task: Training sits in a Parallel branch and gets a process, and every core, of its own.
            if batch is not None:
                result = services.workers.batch(module, worker_args, batch, call.attempt + 1, call.cancelled)
            else:
                services.task_started()
                try:
                    result = services.workers.single(module, worker_args, call.attempt + 1, call.cancelled)
                finally:
                    services.task_ended()
        except pool.Cancelled:
            raise TaskFailure("States.TaskFailed", f"{call.state}: the task was stopped") from None
        except BrokenProcessPool as e:
            raise TaskFailure("States.TaskFailed", pool._describe(e)) from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                services.abort("stepkit.DiskFull", f"{e.filename or services.warehouse}: {e.strerror}")
            raise TaskFailure("States.TaskFailed", pool._describe(e)) from None
        except StepkitError as e:  # the worker's own one-line error (a missed quality gate, bad data)
            raise TaskFailure("States.TaskFailed", str(e)) from None
        except Exception as e:  # noqa: BLE001 - a worker that crashed: its container would exit non-zero
            raise TaskFailure("States.TaskFailed", pool._describe(e)) from None
        if batch is not None and call.attempt > 0:
            services.extra.setdefault("retried", {}).setdefault(call.state, set()).add(batch)
        summary = dict(result or {}) if isinstance(result, dict) else {"result": result}
        services.report(call.state, summary)
        return _stopped(family, task)
    return run


def _stopped(family: str, task: str) -> dict[str, Any]:
    """The shape DescribeTasks returns for the stopped task (what a `.sync` task's output is on AWS)."""
    return {"Tasks": [{"TaskArn": f"arn:aws:ecs:local:000000000000:task/{uuid.uuid4().hex}",
                       "TaskDefinitionArn": family, "LastStatus": "STOPPED",
                       "Containers": [{"Name": task, "ExitCode": 0}]}]}


def problems(definition: dict[str, Any], services: Any) -> list[str]:
    """Every RunTask state whose task has no local worker, or passes arguments a worker cannot take."""
    families = tasks.families(services)
    found = []
    for path, state in tasks.tasks_of(definition, RESOURCES):
        params = state.get("Parameters") or {}
        family = str(params.get("TaskDefinition", "")).split(":")[0].rsplit("/", 1)[-1]
        task = families.get(family)
        if task is None:
            found.append(f"state {path}: task definition {family!r} is not one of this pipeline's tasks "
                         f"({', '.join(sorted(families)) or 'none'})")
            continue
        own = _static_command(state)
        if own is not None and commands.is_user_command(own):
            if commands.executable(own) is None:
                found.append(f"state {path}: {own[0] if own else '(empty command)'}: no such program on this "
                             "machine (a local run runs the task's command here)")
            continue
        try:
            tasks.module(services, task)
        except StepkitError as e:
            found.append(f"state {path}: {e}")
    return found


def _static_command(state: dict[str, Any]) -> list[str] | None:
    """The command's words as far as the definition fixes them (its first word is never a path)."""
    from stepkit.interpreter import intrinsics

    override = ((state.get("Parameters") or {}).get("Overrides") or {}).get("ContainerOverrides") or [{}]
    expr = override[0].get("Command.$")
    if expr is None:
        return list(override[0].get("Command") or [])
    try:
        return [str(v) for v in intrinsics.evaluate(expr, {"run": {"id": "x"}, "run_id": "x", "batch_id": 0}, {})]
    except Exception:  # noqa: BLE001 - a command only the run can evaluate: checked when it runs
        return None
