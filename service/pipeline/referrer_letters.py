"""A clinician's rejection told to the referring office: the "referral not
accepted" letter's deliveries, and how a channel is handed the letter.

The letter goes out through the same ``deliver`` step as every other
document (``flow.deliver``: claimed by one worker, retried, in doubt,
recorded), on deliveries of the rejected referral. A rejected referral stays
rejected: ``finalize`` only moves a delivering one.

Channels know the documents they send by name (the fax channel sends
``fax.tiff``, the email channel attaches the patient's handout with a
patient's message). ``letter_channel`` hands them the letter instead: a
channel sees the letter's fax under the name it sends, and the built-in email
channel writes the referring office's message (the letter's plain text, the
letter attached) rather than the patient's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from refflow.db.models import Delivery, Referral, utcnow
from refflow.documents.names import DECLINE, DECLINE_FAX, DECLINE_NAMES, DECLINE_TEXT
from refflow.pipeline import outbox
from refflow.pipeline.context import Pipeline
from refflow.pipeline.flow import retry_window
from refflow.pipeline.routing import delivery_fields
from refflow.pipeline.stored_documents import store_documents
from refflow.plugins.channels.email import EmailChannel
from refflow.referrals import states

ATTACHMENT_NAME = "referral-not-accepted.pdf"


def queue_decline(p: Pipeline, session, row: Referral, documents: dict[str, bytes],
                  routes: list[dict], *, actor: str) -> list[int]:
    """Store the letter and create one delivery per route (with its ``deliver``
    message), in ``session``; returns the outbox messages' ids. A route
    whose channel is missing or refuses the target fails at once, on the
    timeline for staff."""
    store_documents(session, row.id, documents)
    now, created = utcnow(), []
    for route in routes:
        delivery = Delivery(referral_id=row.id, max_attempts=p.settings.delivery_max_attempts,
                            created_at=now, updated_at=now,
                            retry_until=now + retry_window(p, route["channel"]),
                            **delivery_fields(p, route))
        session.add(delivery)
        if delivery.status == "pending":
            created.append(delivery)
        else:
            states.record_event(session, row.id, "delivery_failed", actor=actor,
                                reason=f"{delivery.channel}: {delivery.last_error}")
    states.record_event(
        session, row.id, "decline_letter", actor=actor,
        reason=(f"'referral not accepted' letter queued to the referrer by "
                f"{' and '.join(d.channel for d in created)}" if created else
                "'referral not accepted' letter kept with the referral: no fax or email "
                "route to the referrer"))
    session.flush()
    messages = [outbox.enqueue(session, outbox.DELIVER, outbox.message_args(
        delivery_id=d.id, request_id=row.request_id)) for d in created]
    session.flush()
    return [m.id for m in messages]


def letter_channel(channel, document: str):
    """The channel that sends ``document``: ``channel`` itself for a plan's
    documents, else ``channel`` handed the letter (``None`` stays ``None``)."""
    if channel is None or document not in DECLINE_NAMES:
        return channel
    if isinstance(channel, EmailChannel):
        return DeclineEmail(channel.settings)
    return LetterChannel(channel)


class LetterChannel:
    """Any other channel, given the letter under the names it sends: its
    TIFF documents are the letter's fax, the others the letter's PDF."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.idempotent = getattr(inner, "idempotent", False)
        wanted = tuple(getattr(inner, "documents", ()) or ())
        self.aliases = {name: DECLINE_FAX if name.endswith((".tiff", ".tif")) else DECLINE
                        for name in wanted}
        self.documents = tuple(set(self.aliases.values()))

    def validate_target(self, target: str) -> str:
        return self.inner.validate_target(target)

    def send(self, delivery):
        documents = {name: delivery.documents[source]
                     for name, source in self.aliases.items() if source in delivery.documents}
        return self.inner.send(replace(delivery, documents=documents))


class DeclineEmail(EmailChannel):
    """The email channel's message to the referring office: the letter's words
    as the body, the letter attached. Same SMTP, Message-ID and errors."""

    documents = (DECLINE, DECLINE_TEXT)

    def build_message(self, delivery, to: str) -> EmailMessage:
        s = self.settings
        msg = EmailMessage()
        msg["Subject"] = f"Referral not accepted – {s.clinic_name}"
        msg["From"] = s.smtp_from
        msg["To"] = formataddr((delivery.recipient_name or "", to))
        msg["Message-ID"] = self.message_id(delivery)
        msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        msg["X-Refflow-Delivery"] = delivery.id
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(delivery.document(DECLINE_TEXT).decode())
        msg.add_attachment(delivery.document(DECLINE), maintype="application", subtype="pdf",
                           filename=ATTACHMENT_NAME)
        return msg

