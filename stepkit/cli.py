"""The `stepkit` command. User mistakes end in one located line per problem, never a traceback."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from stepkit.commands.options import _print_warnings, _variables, env_file_option, var_option  # noqa: F401
from stepkit.errors import StepkitError

OUT_DEFAULT = "out"


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except StepkitError as e:
            click.echo(str(e), err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group)
@click.version_option(package_name="stepkit")
def main() -> None:
    """stepkit: AWS Step Functions pipelines from one YAML file."""


@main.command()
@click.argument("pipelines", nargs=-1, required=True, type=click.Path())
@var_option
@env_file_option
def validate(pipelines: tuple[str, ...], var: tuple[str, ...], env_file: str | None) -> None:
    """Check pipeline files; print FILE:LINE:COL: field: message per problem; exit 1 on any."""
    from stepkit.compiler.build import compile_file

    variables = _variables(var, env_file)
    failed = 0
    for path in pipelines:
        try:
            artifacts = compile_file(path, variables)
        except StepkitError as e:
            click.echo(str(e), err=True)
            failed += 1
            continue
        from stepkit.plan.checks import warnings as plan_warnings  # a run's time and cost against the file's limits

        artifacts.warnings += plan_warnings(artifacts, variables=variables)
        _print_warnings(artifacts)
        click.echo(f"{path}: ok ({len(artifacts.definition['States'])} states, {len(artifacts.statements)} SQL statements)")
    if failed:
        raise click.exceptions.Exit(1)


@main.command(name="compile")
@click.argument("pipeline", type=click.Path())
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: out/<pipeline name>).")
@var_option
@env_file_option
def compile_(pipeline: str, out: str | None, var: tuple[str, ...], env_file: str | None) -> None:
    """Write the state machine, IAM policies and SQL of PIPELINE."""
    # Started first: the child imports sqlglot on the other core while this process loads the spec.
    from stepkit.compiler.sqlcheck import Background

    with Background(name=str(Path(pipeline).resolve())) as checker:
        from stepkit.compiler.build import compile_file

        artifacts = compile_file(pipeline, _variables(var, env_file), check_sql=checker)
    _print_warnings(artifacts)
    out_dir = Path(out or Path(OUT_DEFAULT) / Path(pipeline).stem)
    from stepkit.compiler import output

    try:
        # Only into an empty folder or an earlier compile's; removes only what that compile wrote.
        written = output.write(out_dir, artifacts.files(), Path(pipeline))
    except OSError as e:
        raise StepkitError(f"{out_dir}: cannot write: {e.strerror or e}") from None
    click.echo(f"{pipeline}: wrote {len(written)} files to {out_dir}/")
    for path in written:
        click.echo(f"  {path.relative_to(out_dir)}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of pipeline files (for editors and CI)."""
    from stepkit.compiler.load import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("pipeline", type=click.Path())
@var_option
@env_file_option
def graph(pipeline: str, var: tuple[str, ...], env_file: str | None) -> None:
    """Print the compiled state machine as a Mermaid diagram."""
    from stepkit.compiler.build import compile_file
    from stepkit.compiler.graph import mermaid

    artifacts = compile_file(pipeline, _variables(var, env_file), check_sql=False)
    click.echo(mermaid(artifacts.definition), nl=False)


def run() -> None:  # pragma: no cover - console entry
    main(prog_name="stepkit")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
from stepkit.commands.run import run as _run_command; main.add_command(_run_command)  # noqa: E402,E702
from stepkit.commands.aws import COMMANDS as _aws_commands; [main.add_command(_c) for _c in _aws_commands]  # noqa: E402,E702
from stepkit.commands.demo_data import demo_data as _demo_data_command; main.add_command(_demo_data_command)  # noqa: E402,E702
from stepkit.commands.plan import COMMANDS as _plan_commands; [main.add_command(_c) for _c in _plan_commands]  # noqa: E402,E702
