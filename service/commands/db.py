"""``refflow db upgrade`` and ``refflow db current``."""

from __future__ import annotations

import click

from refflow.commands.context import database
from refflow.db import migrate


@click.group("db")
def command() -> None:
    """Database schema migrations."""


@command.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Bring the database schema to the latest version (safe to run twice)."""
    db = database(migrated=False)
    migrate.upgrade(db, revision)
    click.echo(f"database at revision {migrate.current_revision(db)}")


@command.command("current")
def current() -> None:
    """Print the database's schema revision and whether it is the latest."""
    db = database(migrated=False)
    rev = migrate.current_revision(db)
    state = "head" if rev == migrate.head_revision() else "behind: run refflow db upgrade"
    click.echo(f"{rev or '(empty)'} ({state})")
