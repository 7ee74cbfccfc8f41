"""The ``refflow`` console script.

Each command group lives in its own module under ``refflow.commands``; this
module only assembles them and turns expected errors into one line on stderr
with exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from refflow import __version__

# (module, attribute) of every command, in the order `refflow --help` lists them.
COMMANDS = (
    "run",
    "web",
    "worker",
    "scheduler",
    "db",
    "practice",
    "user",
    "plugins",
    "plan",
    "render",
    "demo",
)


class CLIError(click.ClickException):
    """An expected failure: printed as one line, exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # one line, no "Error:" banner noise
        click.echo(f"refflow: error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="refflow")
def cli() -> None:
    """refflow — referral workflow service for rehabilitation clinics."""


def _load_commands() -> None:
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"refflow.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"refflow.commands.{name}":
                continue  # not built yet
            raise
        cli.add_command(module.command)


_load_commands()


def main(argv: list[str] | None = None) -> None:
    from refflow.config import ConfigError

    try:
        cli.main(args=argv, prog_name="refflow", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("refflow: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, (click.UsageError, CLIError)) else exc.exit_code)
    except ConfigError as exc:
        click.echo(f"refflow: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
