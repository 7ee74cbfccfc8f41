"""``refflow db upgrade`` and ``refflow db current``."""

from __future__ import annotations

import click

from refflow.cli import CLIError
from refflow.commands.context import database
from refflow.db import migrate


@click.group("db")
def command() -> None:
    """Database schema migrations."""


@command.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Bring the database schema to the latest version (safe to run twice)."""
    from alembic.util import CommandError

    db = database(migrated=False)  # reachable, or a one-line error
    try:
        migrate.upgrade(db, revision)
    except CommandError as exc:  # an unknown or unreachable revision
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(f"cannot upgrade to revision {revision}: {reason}") from None
    click.echo(f"database at revision {migrate.current_revision(db)}")


@command.command("current")
def current() -> None:
    """Print the database's schema revision and whether it is the latest."""
    db = database(migrated=False)
    rev = migrate.current_revision(db)
    state = "head" if rev == migrate.head_revision() else "behind: run refflow db upgrade"
    click.echo(f"{rev or '(empty)'} ({state})")
