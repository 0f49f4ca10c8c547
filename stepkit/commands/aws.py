"""AWS commands: `deploy`, `doctor`, `images build|push`, `runs`, `status`, `logs`, `rollback`, `results`.

(`stepkit run PIPELINE` without --local starts an AWS run: see commands/run.py.)
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from stepkit.commands.options import _print_warnings, _variables, env_file_option, var_option

region_option = click.option("--region", default=None, help="AWS region (default: AWS_REGION / your AWS config).")
pipeline_option = click.option("--pipeline", "-p", "pipeline", default=None, metavar="NAME",
                               help="Which deployed pipeline, when the region has several (its name).")


def _session(region: str | None):
    from stepkit.aws.session import Session

    return Session(region=region)


@click.command()
@click.argument("pipeline", type=click.Path())
@click.option("--stack-name", default=None, help="CloudFormation stack (default: the pipeline's resource_prefix).")
@click.option("--dry-run", is_flag=True, help="Show the change set, then stop.")
@click.option("--image-tag", default=None, help="Image tag the task definitions run (default: keep the current one).")
@var_option
@env_file_option
def deploy(pipeline: str, stack_name: str | None, dry_run: bool, image_tag: str | None, var: tuple[str, ...],
           env_file: str | None) -> None:
    """Create or update PIPELINE's stack through a change set."""
    from stepkit.aws.deploy import Deployer
    from stepkit.compiler.build import compile_file

    artifacts = compile_file(pipeline, _variables(var, env_file))
    _print_warnings(artifacts)
    Deployer(artifacts, stack_name=stack_name, echo=click.echo).run(dry_run=dry_run, image_tag=image_tag)


@click.command()
@click.argument("pipeline", type=click.Path())
@click.option("--stack-name", default=None, help="CloudFormation stack (default: the pipeline's resource_prefix).")
@click.option("--create-ecs-role", is_flag=True, help="Create the ECS service-linked role if the account lacks it.")
@var_option
@env_file_option
def doctor(pipeline: str, stack_name: str | None, create_ecs_role: bool, var: tuple[str, ...],
           env_file: str | None) -> None:
    """Check the account before a first deploy and run: one line per check, saying what to do."""
    from stepkit.aws import doctor as dr
    from stepkit.aws.deploy import Deployer, default_stack_name
    from stepkit.compiler.build import compile_file

    artifacts = compile_file(pipeline, _variables(var, env_file))
    _print_warnings(artifacts)
    p = artifacts.context.p
    session = _session(p.aws.region)
    stack = stack_name or default_stack_name(p)
    d = dr.Doctor(artifacts, session, stack)
    if create_ecs_role and any(f.level == dr.FAIL for f in d.run(["ecs-role"])):
        click.echo(dr.create_ecs_role(session))
    findings = [*dr.basics(Deployer(artifacts, session=session, stack_name=stack)), *d.run()]
    for f in findings:
        click.echo(f.line())
    failed = sum(f.level == dr.FAIL for f in findings)
    if failed:
        click.echo(f"{failed} check(s) failed", err=True)
        raise click.exceptions.Exit(1)


@click.group()
def images() -> None:
    """Worker images: build for linux/arm64, push to the stack's ECR repositories."""


@images.command(name="build")
@click.argument("pipeline", type=click.Path())
@click.option("--tag", default=None, help="Image tag (default: UTC timestamp); `latest` is tagged too.")
@var_option
@env_file_option
def images_build(pipeline: str, tag: str | None, var: tuple[str, ...], env_file: str | None) -> None:
    """Build the worker images of PIPELINE with the Docker CLI."""
    from stepkit.aws import images as img
    from stepkit.compiler.load import load_pipeline

    p, _ = load_pipeline(pipeline, _variables(var, env_file))
    tag = tag or img.default_tag()
    for ref in img.build(p, tag, echo=click.echo):
        click.echo(f"built {ref}")


@images.command(name="push")
@click.argument("pipeline", type=click.Path())
@click.option("--tag", required=True, help="The tag `images build` printed.")
@click.option("--no-deploy", is_flag=True, help="Only push; leave the task definitions on their current tag.")
@var_option
@env_file_option
def images_push(pipeline: str, tag: str, no_deploy: bool, var: tuple[str, ...], env_file: str | None) -> None:
    """Push the worker images, then point the task definitions at TAG (a stack update)."""
    from stepkit.aws import images as img
    from stepkit.aws.deploy import Deployer
    from stepkit.compiler.build import compile_file

    variables = _variables(var, env_file)
    artifacts = compile_file(pipeline, variables)
    p = artifacts.context.p
    session = _session(p.aws.region)
    for ref in img.push(p, tag, session, echo=click.echo):
        click.echo(f"pushed {ref}")
    if not no_deploy:
        Deployer(artifacts, session=session, echo=click.echo).run(image_tag=tag)


@click.command()
@region_option
@pipeline_option
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
def runs(region: str | None, pipeline: str | None, limit: int) -> None:
    """Recent executions of the deployed pipeline."""
    from stepkit.aws import ops

    for line in ops.render_runs(ops.runs(_session(region), pipeline, limit)):
        click.echo(line)


@click.command()
@click.argument("execution", required=False)
@region_option
@pipeline_option
def status(execution: str | None, region: str | None, pipeline: str | None) -> None:
    """A run's status, current stage, stage timeline and Map progress (default: the latest run)."""
    from stepkit.aws import ops, timeline

    for line in timeline.render(ops.status(_session(region), execution, pipeline)):
        click.echo(line)


@click.command()
@click.argument("stage")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.option("--since", type=int, default=None, metavar="MINUTES",
              help="Events of the last MINUTES (default: since the latest run started).")
@region_option
@pipeline_option
def logs(stage: str, follow: bool, since: int | None, region: str | None, pipeline: str | None) -> None:
    """CloudWatch logs of STAGE (its containers, its Lambda, or the state machine's own log)."""
    from stepkit.aws import ops

    start = datetime.now(timezone.utc) - timedelta(minutes=since) if since else None
    n = ops.logs(_session(region), stage, pipeline, since=start, follow=follow, echo=click.echo)
    if not n and not follow:
        click.echo(f"{stage}: no log events in that window", err=True)


@click.command()
@click.option("--to", "to", type=click.IntRange(min=1), default=None, metavar="VERSION",
              help="The version to make live (default: the one before the live one).")
@region_option
@pipeline_option
def rollback(to: int | None, region: str | None, pipeline: str | None) -> None:
    """Point the alias runs start (`live`) at the previous state machine version.

    Only the state machine goes back: task images, task definitions and IAM stay as deployed. The
    next deploy that changes the state machine publishes a new version and moves the alias to it."""
    from stepkit.aws import ops, versions

    session = _session(region)
    m = ops.machine(session, pipeline)
    before, after = versions.rollback(session.client("stepfunctions"), m.arn, to)
    click.echo(f"{m.name}: alias {versions.ALIAS} moved from version {before} to version {after}; "
               f"new runs (the schedule, stepkit run) start version {after}")


@click.command()
@click.argument("pipeline", type=click.Path())
@var_option
@env_file_option
def results(pipeline: str, var: tuple[str, ...], env_file: str | None) -> None:
    """The final-results summary (rows, average prediction and confidence, nulls), through Athena."""
    from stepkit.aws import ops

    for key, value in ops.results(pipeline, _variables(var, env_file)).items():
        click.echo(f"{key:<20} {value}")


COMMANDS = [deploy, doctor, images, runs, status, logs, rollback, results]
