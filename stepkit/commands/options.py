"""What several commands share: the pipeline's ${VARIABLES} (environment, --env-file, --var) and
how warnings are printed. Here, not in cli.py, so command modules do not import the CLI that imports them."""
from __future__ import annotations

import os
from pathlib import Path

import click

from stepkit.errors import StepkitError


# An env file is a few NAME=VALUE lines; anything near this is not one.
ENV_FILE_MAX = 1_048_576


def _variables(pairs: tuple[str, ...], env_file: str | None) -> dict[str, str]:
    values = dict(os.environ)
    if env_file:
        from stepkit.spec.loader import read_text

        if not os.path.lexists(env_file):
            raise StepkitError(f"{env_file}: no such env file")
        text = read_text(Path(env_file), ENV_FILE_MAX, "an env file of NAME=VALUE lines")
        for n, line in enumerate(text.split("\n"), 1):
            bad = next((c for c in line if ord(c) < 32 and c not in "\t\r"), None)
            if bad is not None:
                raise StepkitError(f"{env_file}:{n}:{line.index(bad) + 1}: control character U+{ord(bad):04X}: "
                                   "not an env file of NAME=VALUE lines")
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.removeprefix("export ").partition("=")
            if not sep or not key.strip().isidentifier():
                raise StepkitError(f"{env_file}:{n}:1: expected NAME=VALUE")
            values[key.strip()] = value.strip().strip('"').strip("'")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise StepkitError(f"--var {pair!r}: expected NAME=VALUE")
        values[key] = value
    return values


var_option = click.option("--var", "var", multiple=True, metavar="NAME=VALUE",
                          help="Set a ${NAME} variable of the pipeline file (repeatable).")
# File arguments are plain paths: the loader says in one line what is wrong with one (missing, a
# folder, unreadable, not UTF-8); click's own checks would end in a usage error instead.
env_file_option = click.option("--env-file", type=click.Path(), default=None,
                               help="Read NAME=VALUE lines for ${NAME} variables.")


def _print_warnings(artifacts) -> None:
    for w in artifacts.warnings:
        click.echo(str(w), err=True)
