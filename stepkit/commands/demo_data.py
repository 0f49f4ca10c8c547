"""`stepkit demo-data PIPELINE --rows N --out PATH`: a messy source table with a known Bayes floor."""
from __future__ import annotations

import click

from stepkit.commands.options import _variables, env_file_option, var_option


@click.command(name="demo-data")
@click.argument("pipeline", type=click.Path())
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Rows to write (duplicates included).")
@click.option("--out", "out", required=True, help="Parquet file to write (local path or s3:// URI).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--labelled-share", type=click.FloatRange(0, 1, min_open=True), default=0.4, show_default=True,
              help="Share of records carrying the target.")
@var_option
@env_file_option
def demo_data(pipeline: str, rows: int, out: str, seed: int, labelled_share: float,
              var: tuple[str, ...], env_file: str | None) -> None:
    """Write a source table shaped by PIPELINE's spec, and OUT.meta.json describing it."""
    from stepkit import demo_data as generator
    from stepkit.local.source import fill_placeholders
    from stepkit.compiler.load import load_pipeline

    variables = _variables(var, env_file)
    # Only the source's shape matters here (nothing calls AWS): unset AWS variables get the local
    # placeholders `run --local` uses, so no --env-file is needed.
    fill_placeholders(variables)
    p, _ = load_pipeline(pipeline, variables)
    meta = generator.write(out, p, rows=rows, seed=seed, labelled_share=labelled_share)
    click.echo(f"{out}: {meta['rows']:,} rows ({meta['distinct_ids']:,} distinct ids, {meta['labelled_rows']:,} "
               "usable labelled)")
    for name, t in meta["targets"].items():
        floor = (f"Bayes floor MAE {t['bayes_floor_mae']:.3f}, R² {t['bayes_floor_r2']:.3f}" if "bayes_floor_mae" in t
                 else f"Bayes floor accuracy {t['bayes_floor_accuracy']:.3f}, log loss {t['bayes_floor_log_loss']:.3f} "
                      f"(majority class {t['majority_class_accuracy']:.3f})")
        click.echo(f"  {name}: {floor}")
    click.echo(f"{out}.meta.json: the generator's description (mess rates, floor, seed)")
