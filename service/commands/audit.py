"""``refflow audit export``: the audit trail (who read or changed what, when,
from where) as JSON Lines or as FHIR AuditEvents, one entry a line.

Entries are read in id order, a batch at a time (``yield_per``), and written
as they come, so an export of any size needs the same little memory.
``--format jsonl`` writes each row under the table's own names (``id``,
``at``, ``actor``, ``action``, ``referral_id``, ``ip``, ``detail``);
``--format fhir`` writes one R4B AuditEvent a line (``application/fhir+ndjson``,
FHIR bulk data's format; the mapping is ``refflow.interop.fhir.audit_events``).
The export itself goes on the audit trail (``audit.export``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

import click
from sqlalchemy import select

from refflow.cli import CLIError
from refflow.commands.context import database, settings_or_exit
from refflow.db.models import AuditEntry
from refflow.interop.fhir.audit_events import audit_event

BATCH = 1000
FORMATS = ("jsonl", "fhir")


@click.group("audit")
def command() -> None:
    """The audit trail: who read or changed what, when, from where."""


def _moment(option: str, value: str | None) -> dt.datetime | None:
    """A date (its start, UTC) or an ISO 8601 time with its offset."""
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CLIError(f"{option} {value!r}: give a date (2026-12-01, from midnight UTC) or a "
                       "time with its offset (2026-12-01T08:00:00-06:00)")
    return moment


def entry_json(entry: AuditEntry) -> dict:
    """One row as ``--format jsonl`` writes it: the table's fields, ``at`` in UTC."""
    return {"id": entry.id,
            "at": entry.at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"),
            "actor": entry.actor, "action": entry.action, "referral_id": entry.referral_id,
            "ip": entry.ip, "detail": entry.detail}


@command.command("export")
@click.option("--since", required=True, metavar="DATE",
              help="First moment exported: a date (from midnight UTC) or an ISO 8601 time "
                   "with its offset.")
@click.option("--until", metavar="DATE", help="Entries before this moment only (same forms).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="jsonl: the rows as JSON objects; fhir: FHIR R4B AuditEvents (ndjson).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write to FILE (made readable by its owner only) instead of the output.")
def export(since: str, until: str | None, fmt: str, out: str | None) -> None:
    """Every audit entry since a moment, one line each, in the order they were written."""
    start, end = _moment("--since", since), _moment("--until", until)
    if end is not None and end <= start:
        raise CLIError("--until must be later than --since")
    settings = settings_or_exit()
    db = database(settings)
    query = select(AuditEntry).where(AuditEntry.at >= start)
    if end is not None:
        query = query.where(AuditEntry.at < end)
    query = query.order_by(AuditEntry.id).execution_options(yield_per=BATCH)
    if fmt == "fhir":
        def line(entry: AuditEntry) -> str:
            return audit_event(entry, observer=settings.public_url).model_dump_json(
                exclude_none=True)
    else:
        def line(entry: AuditEntry) -> str:
            return json.dumps(entry_json(entry), ensure_ascii=False)

    stream = _open(out) if out else sys.stdout
    count = 0
    try:
        with db.session() as session:
            for entry in session.scalars(query):
                stream.write(line(entry) + "\n")
                count += 1
    except BaseException:
        if out:
            stream.close()
            os.unlink(out)
        raise
    if out:
        stream.close()
    else:
        stream.flush()
    with db.session() as session:
        session.add(AuditEntry(actor="cli", action="audit.export",
                               detail=f"{count} entries since {start.isoformat()}"
                                      + (f" until {end.isoformat()}" if end else "")
                                      + f" as {fmt}"))
    if out:
        click.echo(f"{count} audit entries written to {out}", err=True)


def _open(path: str):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CLIError(f"--out {path}: {exc.strerror}") from None
    return os.fdopen(fd, "w", encoding="utf-8")
