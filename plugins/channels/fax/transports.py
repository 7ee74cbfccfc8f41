"""Fax transports: how the ``fax`` channel hands a fax-ready TIFF to a fax server.

A transport is a plugin object returned from ``refflow_fax_transports``; the
fax channel picks the one named by ``REFFLOW_FAX_TRANSPORT`` (default
``spool``). Like channels, transports raise Transient/PermanentChannelError,
map their own errors in one place, never retry, and are idempotent per
``job.delivery_id``.

Each transport says what it supports (``supports``):

- ``"status"``: ``submit`` only queues the fax (``SendResult.held``) and
  :meth:`FaxTransport.status` follows the job until the fax server says it
  was sent or failed; the delivery stays ``sending`` meanwhile. Without it,
  a successful ``submit`` is the delivery's end (a spool folder).
- ``"cancel"``: :meth:`FaxTransport.cancel` kills a queued job (a cancelled
  referral's faxes are not sent).
- ``"receive"``: :meth:`FaxTransport.receive` lists faxes the server received
  (the scheduler fetches them into the fax inbox when
  ``REFFLOW_FAX_INBOX_POLL`` is on).
- ``"inbound"``: :meth:`FaxTransport.parse_inbound` turns a provider's
  webhook request (``POST /api/v1/fax/inbound/<transport>``) into received
  faxes, after checking the request's signature.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass

from refflow.plugins.channels.base import SendResult

STATUS, CANCEL, RECEIVE, INBOUND = "status", "cancel", "receive", "inbound"


@dataclass(frozen=True)
class FaxJob:
    """One fax to send: already validated, the TIFF already checked."""

    delivery_id: str
    referral_id: str
    number: str  # E.164
    tiff: bytes  # TIFF Class F, multi-page
    pages: int
    attempt: int = 1


@dataclass(frozen=True)
class FaxStatus:
    """A queued fax job as the fax server reports it.

    ``state``: ``queued`` (waiting, dialling, between tries), ``sending`` (on a
    call), ``sent`` or ``failed`` (final). ``error`` is set for ``failed``: a
    Transient/PermanentChannelError whose message names HylaFAX's (or the
    provider's) reason without PHI. ``detail`` is what the delivery records:
    ``job_id``, ``pages_sent``, ``pages_total``, ``duration_s``, ``remote_id``,
    ``dials``, ``tries`` (what the server told).
    """

    state: str
    detail: Mapping[str, object]
    error: Exception | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("sent", "failed")


@dataclass(frozen=True)
class InboundFax:
    """A fax a transport received: the image and what the line told about it."""

    content: bytes  # TIFF or PDF, as received
    reference: str  # the server's or provider's id for it (recvq file name, provider id)
    from_number: str | None = None  # caller id number or the sender's TSI
    to_number: str | None = None  # the number it was sent to (DID), when known


class FaxTransport:
    """Base class of fax transports. ``submit`` is required; the rest are
    optional and listed in ``supports``."""

    name: str = ""
    supports: frozenset[str] = frozenset()

    def submit(self, job: FaxJob) -> SendResult:
        """Queue ``job`` with the fax server; idempotent per ``job.delivery_id``.

        With ``"status"`` in ``supports`` it returns ``SendResult(held=True)``
        and the job's id as ``reference``; the pipeline then calls
        :meth:`status` until the job is finished."""
        raise NotImplementedError

    def status(self, reference: str) -> FaxStatus:
        raise NotImplementedError(f"fax transport {self.name!r} does not follow jobs")

    def cancel(self, reference: str) -> None:
        raise NotImplementedError(f"fax transport {self.name!r} cannot cancel jobs")

    def receive(self, seen: Container[str] = frozenset()) -> Iterator[InboundFax]:
        """Received faxes still on the server, oldest first, but for those whose
        reference is in ``seen`` (the inbox holds them already: skip them before
        fetching their content). The inbox stores each once by content, so
        yielding one again is harmless, only wasteful."""
        raise NotImplementedError(f"fax transport {self.name!r} does not receive faxes")

    def parse_inbound(self, headers: Mapping[str, str], body: bytes) -> list[InboundFax]:
        """A provider's webhook request as received faxes. Raises
        PermanentChannelError when the request is not genuine (bad signature)
        or not understood; the message holds no PHI."""
        raise NotImplementedError(f"fax transport {self.name!r} has no inbound webhook")
