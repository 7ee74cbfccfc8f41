"""``refflow fax receive FILE``: put a received fax into the fax inbox.

This is what a fax server's hook calls for each fax it received (HylaFAX:
``etc/FaxDispatch``, sourced by ``bin/faxrcvd``; see docs/operations.md,
"Receiving faxes"). The fax is stored once (the same file again is
recognised), matched to a practice by the caller's number, and read by a
worker; staff find it in the Fax inbox. Prints the fax's id, never its content
or caller.
"""

from __future__ import annotations

from pathlib import Path

import click

from refflow.cli import CLIError
from refflow.commands.context import database, emit_json, settings_or_exit


@click.group("fax")
def command() -> None:
    """Received faxes: the fax inbox."""


@command.command("receive")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--from", "from_number", metavar="NUMBER",
              help="The caller's number (caller id, or the sending machine's TSI).")
@click.option("--to", "to_number", metavar="NUMBER", help="The number that was called.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def receive(file: Path, from_number: str | None, to_number: str | None, as_json: bool) -> None:
    """Store a received fax (TIFF or PDF) in the fax inbox, once."""
    from refflow.faxin import inbox
    from refflow.faxin.pages import NotAFax
    from refflow.pipeline.context import Pipeline

    try:
        content = file.read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {file}: {exc.strerror or type(exc).__name__}") from None
    settings = settings_or_exit()
    pipeline = Pipeline(settings, db=database(settings))  # the scheduler relays the read
    try:
        stored = inbox.receive(pipeline, content, source="cli", source_ref=file.name,
                               from_number=from_number, to_number=to_number)
    except NotAFax as exc:
        raise CLIError(f"{file}: {exc}") from None
    if as_json:
        emit_json({"id": stored.fax_id, "created": stored.created})
    elif stored.created:
        click.echo(f"fax {stored.fax_id} received (new)")
    else:
        click.echo(f"fax {stored.fax_id} was already in the inbox (the same fax again)")
