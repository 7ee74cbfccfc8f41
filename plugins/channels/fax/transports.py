"""Fax transports: how the ``fax`` channel hands a fax-ready TIFF to a fax server.

A transport is a plugin object returned from ``refflow_fax_transports``; the
fax channel picks the one named by ``REFFLOW_FAX_TRANSPORT`` (default
``spool``). Like channels, transports raise Transient/PermanentChannelError,
map their own errors in one place, never retry, and are idempotent per
``job.delivery_id``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from refflow.plugins.channels.base import SendResult


@dataclass(frozen=True)
class FaxJob:
    """One fax to send: already validated, the TIFF already checked."""

    delivery_id: str
    referral_id: str
    number: str  # E.164
    tiff: bytes  # TIFF Class F, multi-page
    pages: int
    attempt: int = 1


class FaxTransport(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def submit(self, job: FaxJob) -> SendResult:
        """Queue ``job`` with the fax server; idempotent per ``job.delivery_id``."""
