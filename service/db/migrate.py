"""Schema migrations (Alembic), driven from code: ``refflow db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from refflow.db.session import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database to ``revision`` (head by default). Safe to run twice.

    A migration may rewrite a large table: on PostgreSQL it runs without the
    sessions' ``statement_timeout`` (``SET LOCAL``: this transaction only, the
    pooled connection keeps its timeout afterwards). A server that stops
    answering is still detected (``refflow.db.session.ReplyWatch``)."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        command.upgrade(alembic_config(connection), revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def at_head(db: Database) -> bool:
    return current_revision(db) == head_revision()


def revision(db: Database, message: str) -> None:  # developer tool
    """Autogenerate a new migration against ``db`` (which must be at head)."""
    with db.engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)
