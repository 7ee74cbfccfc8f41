"""``refflow documents migrate``: move the bytes that documents and received
faxes stored before the document store (migration 0012) kept in the database
into the store ``REFFLOW_DOCUMENT_STORE`` names. Safe to run while the service
runs and to run again (rows already in the store are left alone)."""

from __future__ import annotations

import click

from refflow.cli import CLIError
from refflow.commands.context import database, settings_or_exit


@click.group("documents")
def command() -> None:
    """The document store (documents' and received faxes' bytes)."""


@command.command("migrate")
def migrate() -> None:
    """Move bytes still held in the database into the document store."""
    from botocore.exceptions import BotoCoreError, ClientError

    from refflow.pipeline.context import Pipeline
    from refflow.pipeline.stored_documents import move_into_store

    settings = settings_or_exit()
    p = Pipeline(settings, db=database(settings))
    try:
        documents, faxes = move_into_store(p)
    except (OSError, BotoCoreError, ClientError) as exc:
        raise CLIError(f"cannot write to the document store {p.store!r} "
                       f"({type(exc).__name__})") from None
    click.echo(f"moved {documents} document(s) and {faxes} received fax(es) "
               f"into the document store {p.store!r}")
