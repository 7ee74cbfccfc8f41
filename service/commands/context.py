"""What every command needs from its context: settings, the database, JSON output, options."""

from __future__ import annotations

import json

import click

from refflow.cli import CLIError
from refflow.config import ConfigError, load_settings
from refflow.db import database_for


def settings_or_exit():
    try:
        return load_settings()
    except ConfigError as exc:
        raise CLIError(str(exc)) from None


def database(settings=None):
    return database_for(settings or settings_or_exit())


def emit_json(obj: dict) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=False))


host_option = click.option("--host", default="127.0.0.1", show_default=True,
                           help="Interface to listen on.")
port_option = click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
                           help="Port to listen on.")
