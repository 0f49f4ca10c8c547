"""`stepkit images build|push`: the worker images, built for linux/arm64 with the Docker CLI, pushed to ECR.

Only the Docker CLI is driven (no docker-py): the same commands a user would type. Without a
reachable Docker engine, both verbs stop with one line saying so, before doing anything else.
"""
from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from stepkit.aws.package import REPO
from stepkit.errors import StepkitError


class DockerError(StepkitError):
    """The Docker CLI is missing, has no engine, or a build/push failed."""


@dataclass(frozen=True)
class Image:
    task: str
    dockerfile: Path
    context: Path
    repository: str  # ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME
    platform: str  # linux/arm64 or linux/amd64

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


def docker_engine(run: Callable[..., Any] = subprocess.run) -> str:
    """The engine's version; raises DockerError (one line) when there is no CLI or no engine."""
    if shutil.which("docker") is None:
        raise DockerError("docker: command not found: install the Docker CLI (and an engine) to build images")
    proc = run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    version = (proc.stdout or "").strip()
    if proc.returncode != 0 or not version or version == "<no value>":
        raise DockerError("docker: no Docker engine is reachable (`docker info` failed): start Docker, or build on "
                          "a machine or CI runner that has one")
    return version


def dockerfile(task: str, root: Path = REPO) -> tuple[Path, Path]:
    """(Dockerfile, build context) of a task's worker: `workers/<task>/Dockerfile`, context the repo."""
    for candidate in (root / "workers" / task / "Dockerfile", root / "workers" / f"Dockerfile.{task}"):
        if candidate.is_file():
            return candidate, root
    raise DockerError(f"{task}: no Dockerfile at workers/{task}/Dockerfile (compute.tasks.{task}); "
                      f"or set compute.tasks.{task}.image to a prebuilt image")


def images(pipeline: Any, root: Path = REPO) -> list[Image]:
    from stepkit.ir.names import Names

    n = Names(pipeline)
    out = []
    for task, spec in sorted(pipeline.compute.tasks.items()):
        if spec.image:
            continue  # the user's own image: nothing to build
        path, context = dockerfile(task, root)
        registry = f"{pipeline.aws.account_id}.dkr.ecr.{pipeline.aws.region}.amazonaws.com"
        platform = "linux/arm64" if spec.architecture == "ARM64" else "linux/amd64"
        out.append(Image(task, path, context, f"{registry}/{n.repository(task)}", platform))
    return out


def default_tag() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def _docker(args: list[str], what: str, echo: Callable[[str], None], stdin: str | None = None) -> None:
    echo("$ docker " + " ".join(args if "--password-stdin" not in args else args[:3] + ["..."]))
    proc = subprocess.run(["docker", *args], input=stdin, text=True, capture_output=stdin is not None)
    if proc.returncode != 0:
        tail = ((proc.stderr or "").strip().splitlines() or [""])[-1]
        raise DockerError(f"docker {what} failed (exit {proc.returncode})" + (f": {tail}" if tail else ""))


def build(pipeline: Any, tag: str, echo: Callable[[str], None] = print) -> list[str]:
    docker_engine()
    refs = []
    for img in images(pipeline):
        _docker(["build", "--platform", img.platform, "-f", str(img.dockerfile), "-t", img.ref(tag),
                 "-t", img.ref("latest"), str(img.context)], f"build of {img.task}", echo)
        refs.append(img.ref(tag))
    return refs


def push(pipeline: Any, tag: str, session: Any, echo: Callable[[str], None] = print) -> list[str]:
    """Log in to ECR through boto3, push `tag` and `latest` of every worker image."""
    docker_engine()
    todo = images(pipeline)
    if not todo:
        return []
    auth = session.client("ecr").get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(auth["authorizationToken"]).decode().partition(":")
    registry = auth["proxyEndpoint"].removeprefix("https://")
    _docker(["login", "--username", user, "--password-stdin", registry], "login to ECR", echo, stdin=password)
    pushed = []
    for img in todo:
        for t in (tag, "latest"):
            _docker(["push", img.ref(t)], f"push of {img.task}", echo)
        pushed.append(img.ref(tag))
    return pushed
