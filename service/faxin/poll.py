"""Fetching received faxes from the fax server's received queue.

When ``REFFLOW_FAX_INBOX_POLL`` is on, the scheduler asks the configured fax
transport (``REFFLOW_FAX_TRANSPORT``) for the faxes it received
(``transport.receive()``, e.g. HylaFAX's ``recvq``) every
``REFFLOW_FAX_INBOX_POLL_SECONDS`` and stores each in the inbox
(``inbox.receive``: once by content, so listing one again is harmless).
A fax whose reference the inbox already holds for this transport is not
stored again. Nothing here logs a caller's number or a fax's content.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from refflow.faxin import inbox, pages
from refflow.pipeline.context import Pipeline
from refflow.plugins.channels.base import ChannelError
from refflow.plugins.channels.fax.transports import RECEIVE

log = logging.getLogger("refflow.faxin")


@dataclass(frozen=True)
class PollResult:
    new: int  # faxes stored now
    known: int  # listed again: already in the inbox
    refused: int  # not a fax (logged by reference)


def receive_from(p: Pipeline, transport) -> PollResult:
    """Store every fax ``transport.receive()`` lists that the inbox does not hold
    yet (the references it holds are passed as ``seen``, so their content is
    not fetched again). The transport's errors (its server is down) propagate;
    a listed file that is not a fax is logged by its reference and skipped."""
    new = known = refused = 0
    source = transport.name
    with p.db.session() as session:
        seen = inbox.stored_references(session, source)
    for item in transport.receive(seen):
        if item.reference in seen:  # a transport that does not skip them itself
            known += 1
            continue
        try:
            stored = inbox.receive(p, item.content, source=source, source_ref=item.reference,
                                   from_number=item.from_number, to_number=item.to_number)
        except pages.NotAFax:
            log.warning("fax inbox: %s listed %s, which is not a fax; skipped", source,
                        item.reference)
            refused += 1
            continue
        new, known = (new + 1, known) if stored.created else (new, known + 1)
    return PollResult(new, known, refused)


class InboxPoller:
    """The scheduler's fax inbox job: ``run_if_due()`` each round of its loop.

    Without a transport that can list received faxes it says so once in the
    log and does nothing. A fax server that cannot be reached is a warning,
    and the next poll is tried at the usual interval."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.every = max(1.0, float(p.settings.fax_inbox_poll_seconds))
        self.next_at = 0.0  # due at once
        self.said_unsupported = False

    def transport(self):
        """The configured transport if it can list received faxes, else None."""
        from refflow.plugins.manager import fax_transports

        name = self.p.settings.fax_transport
        transport = fax_transports(self.p.pm, self.p.settings).get(name)
        if transport is None or RECEIVE not in getattr(transport, "supports", ()):
            if not self.said_unsupported:
                log.warning("fax inbox poll is on, but fax transport %r cannot list received "
                            "faxes; not polling", name)
                self.said_unsupported = True
            return None
        return transport

    def run_if_due(self, now: float | None = None) -> PollResult | None:
        now = time.monotonic() if now is None else now
        if now < self.next_at:
            return None
        self.next_at = now + self.every
        transport = self.transport()
        if transport is None:
            return None
        try:
            result = receive_from(self.p, transport)
        except ChannelError as exc:
            log.warning("fax inbox poll: %s unavailable (%s: %s)", transport.name,
                        type(exc).__name__, exc)
            return None
        if result.new or result.refused:
            log.info("fax inbox poll: %d new fax(es) from %s, %d refused", result.new,
                     transport.name, result.refused)
        return result
