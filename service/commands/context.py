"""What every command needs from its context: settings, the database, JSON output, options."""

from __future__ import annotations

import json
import os
import socket

import click

from refflow.cli import CLIError
from refflow.config import ConfigError, load_settings
from refflow.db import database_for


def settings_or_exit(*, create_data_dir: bool = False):
    """The settings, or a one-line error. Only the commands that run the
    service (or create its database) pass ``create_data_dir``: any other
    command run outside a data dir says so and leaves the folder as it was."""
    try:
        return load_settings(create_data_dir=create_data_dir)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None


def database(settings=None, *, migrated: bool = True):
    """The configured database, reachable, or a one-line error; with ``migrated``
    (the default) only one that holds refflow's tables, else an error that says
    what to run. Without ``migrated`` (``refflow db upgrade``) an embedded
    SQLite database may be created."""
    from sqlalchemy.exc import SQLAlchemyError

    from refflow.db import migrate

    db = database_for(settings or settings_or_exit(create_data_dir=not migrated))
    where = db.engine.url.render_as_string(hide_password=True)
    path = db.engine.url.database if db.engine.url.get_backend_name() == "sqlite" else None
    if migrated and path and path != ":memory:" and not os.path.exists(path):
        raise _no_database(where)  # checked first: connecting would create the file
    try:
        revision = migrate.current_revision(db)
    except SQLAlchemyError as exc:
        raise unreachable(db, exc) from None
    if migrated and revision is None:
        raise _no_database(where)
    return db


def _no_database(where: str) -> CLIError:
    return CLIError(f"there is no refflow database at {where}: run `refflow db upgrade` "
                    "(or `refflow run`) first, or set REFFLOW_DATA_DIR or "
                    "REFFLOW_DATABASE_URL to yours")


def unreachable(db, exc: Exception) -> CLIError:
    """The one-line error for a database that cannot be reached (no password shown)."""
    where = db.engine.url.render_as_string(hide_password=True)
    return CLIError(f"cannot reach the database at {where} "
                    f"({type(getattr(exc, 'orig', None) or exc).__name__})")


def emit_json(obj: dict) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=False))


host_option = click.option("--host", default="127.0.0.1", show_default=True,
                           help="Interface to listen on.")
port_option = click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
                           help="Port to listen on.")


def port_free_or_exit(host: str, port: int) -> None:
    """A one-line error (exit 2) when another server already listens on
    ``host:port``: checked before anything starts or is announced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                           "(is another server running there? choose another --port)") from None
