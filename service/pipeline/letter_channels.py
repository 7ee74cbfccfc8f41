"""How a channel is handed the "referral not accepted" letter.

Channels know the documents they send by name (the fax channel sends
``fax.tiff``; the email channel attaches the patient's handout with a message
to the patient). ``letter_channel`` hands them the letter instead: a channel
sees the letter's fax (or PDF) under the name it sends, and the built-in email
channel writes the referring office's message — the letter's plain text, the
letter attached — rather than the patient's. ``flow.deliver`` asks it for
every delivery; a plan document's channel is returned as it is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from refflow.documents.names import DECLINE, DECLINE_FAX, DECLINE_NAMES, DECLINE_TEXT
from refflow.plugins.channels.email import EmailChannel

ATTACHMENT_NAME = "referral-not-accepted.pdf"


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

