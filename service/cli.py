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
    "fax",
    "webhook",
    "audit",
    "documents",
    "plugins",
    "plan",
    "render",
    "catalog",
    "demo",
)


class CLIError(click.ClickException):
    """An expected failure: printed as one line, exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # one line, no "Error:" banner noise
        click.echo(f"refflow: error: {self.format_message()}", err=True)


class LazyGroup(click.Group):
    """Imports a command's module only when that command is asked for, so that
    ``refflow --help`` stays fast and command modules may import this one."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._module(name) is not None] \
            + sorted(super().list_commands(ctx))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module = self._module(name)
            return module.command if module is not None else None
        return super().get_command(ctx, name)

    @staticmethod
    def _module(name: str):
        try:
            return importlib.import_module(f"refflow.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"refflow.commands.{name}":
                return None  # not installed in this build
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="refflow")
def cli() -> None:
    """refflow — referral workflow service for rehabilitation clinics.

    \b
    Data: on embedded defaults every command uses the folder REFFLOW_DATA_DIR
    (default ./refflow-data, relative to the folder you run it from): the
    SQLite database, the secret key, and the email outbox, fax spool and
    chart PDFs that `refflow run` writes. Run commands from the folder where
    `refflow run` runs, or set REFFLOW_DATA_DIR (REFFLOW_DATABASE_URL in
    production). `plan`, `render`, `catalog` and `plugins` need no data."""


def _plugin_commands() -> None:
    """Let plugins add commands (``refflow_register_commands``)."""
    from refflow.config import ConfigError, load_settings
    from refflow.plugins.manager import get_plugin_manager, register_commands

    try:
        # Choosing plugins needs no secret; passing one keeps load_settings from
        # creating a key file (and the data dir) wherever any command runs.
        settings = load_settings(secret_key="unused-by-plugin-commands")
        register_commands(cli, get_plugin_manager(settings))
    except ConfigError:
        pass  # the command itself will report the configuration problem


# click >= 8.2 asks for help with this error when a group is called without a command.
_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    from refflow.config import ConfigError

    try:
        _plugin_commands()
        cli.main(args=argv, prog_name="refflow", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("refflow: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # click's message, without its usage block
        if isinstance(exc, _NoArgsIsHelp):  # `refflow` or a group alone: the help itself
            exc.show()
            sys.exit(2)
        ctx = exc.ctx
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(exc.format_message().split())  # some of click's span lines
        click.echo(f"refflow: error: {message}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, CLIError) else exc.exit_code)
    except ConfigError as exc:
        click.echo(f"refflow: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
