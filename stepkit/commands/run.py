"""`stepkit run PIPELINE`: start an AWS execution, or with `--local` run everything on this machine."""
from __future__ import annotations

from pathlib import Path

import click

from stepkit.commands.options import _variables, env_file_option, var_option

WORKDIR_DEFAULT = ".work"


@click.command(name="run")
@click.argument("pipeline", type=click.Path())
@click.option("--local", "local", is_flag=True, help="Run every stage here (DuckDB, worker processes): no AWS account.")
@click.option("--source", type=click.Path(), default=None,
              help="Local run: the source as a Parquet file or folder (default: a generated demo source).")
@click.option("--workdir", type=click.Path(), default=WORKDIR_DEFAULT, show_default=True,
              help="Local run: warehouse, run records and reports go here.")
@click.option("--resume", "resume", default=None, metavar="RUN_ID",
              help="Local run: continue a failed run from its failed stage.")
@click.option("--from", "start", default=None, metavar="STAGE",
              help="Run STAGE and every stage after it again, reusing the earlier stages' tables: of the latest "
                   "AWS run (or --run), or with --local of the run --resume names.")
@click.option("--run", "run_id", default=None, metavar="RUN_ID",
              help="AWS run with --from: the run to continue (it must be the latest; default: the latest).")
@click.option("--demo-rows", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Local run without --source: rows of the generated demo source.")
@click.option("--definition", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Local run: execute this state machine definition (hand-edited or downloaded) instead of "
                   "the one PIPELINE compiles to; the services it calls are still PIPELINE's.")
@click.option("--name", default=None,
              help="AWS run: the execution name (default: generated); letters, digits, '-' and '_' only.")
@var_option
@env_file_option
def run(pipeline: str, local: bool, source: str | None, workdir: str, resume: str | None, start: str | None,
        run_id: str | None, demo_rows: int, definition: str | None, name: str | None, var: tuple[str, ...],
        env_file: str | None) -> None:
    """Run PIPELINE: an AWS execution, or with --local the whole pipeline on this machine."""
    variables = _variables(var, env_file)
    if not local:
        if source or resume or definition:
            raise click.UsageError("--source, --resume and --definition apply to --local runs")
        if run_id and not start:
            raise click.UsageError("--run goes with --from STAGE (to continue a failed run: stepkit redrive)")
        from stepkit.aws.ops import start_run

        if start:
            if name:
                raise click.UsageError("--name names new runs; a run continued with --from is named after it")
            execution = start_run(pipeline, variables, echo=click.echo, start=start, run=run_id)
        else:
            execution = start_run(pipeline, variables, name=name, echo=click.echo)
        click.echo(f"{pipeline}: started execution {execution}")
        return
    if run_id:
        raise click.UsageError("--run applies to AWS runs; a local run is named by --resume")
    if start and not resume:
        raise click.UsageError("--from with --local needs --resume RUN_ID: the run whose earlier stages to reuse")

    from stepkit.local.runner import run_local

    outcome = run_local(pipeline, variables, Path(workdir), Path(source) if source else None, resume,
                        demo_rows=demo_rows, definition=Path(definition) if definition else None, start=start)
    rec = outcome.record
    click.echo(f"run {outcome.run_id} succeeded in {rec.ended - rec.started:.1f} s")
    if rec.outputs.get("final_results"):
        click.echo(f"  final results: {rec.outputs['final_results']}")
    if rec.outputs.get("human_qa"):
        click.echo(f"  human QA:      {rec.outputs['human_qa']}")
    click.echo(f"  run record:    {outcome.run_dir / 'run.json'}")
    click.echo(f"  report:        {outcome.report}")
