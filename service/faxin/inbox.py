"""The fax inbox: store a received fax once, read it, and what staff do with it.

Every function takes a SQLAlchemy session (the caller commits) or the
Pipeline, and ids; none logs PHI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Stored:
    fax_id: str
    created: bool  # False: the same fax (same bytes) was already in the inbox


def receive(p, content: bytes, *, source: str, source_ref: str | None = None,
            from_number: str | None = None, to_number: str | None = None) -> Stored:
    """Store a received fax (TIFF or PDF) once by its SHA-256, match the caller
    to a practice by fax number, queue ``refflow.read_fax``. Raises
    ``faxin.pages.NotAFax`` for anything else."""
    raise NotImplementedError


def read(p, fax_id: str) -> str | None:
    """The worker step: received → read (runs ``reading.read_fax`` on the pages)."""
    raise NotImplementedError


def create_referral(p, fax_id: str, payload: dict, *, practice_id: str, actor: str,
                    ip: str | None = None) -> dict:
    """Create a referral from the reviewed draft (the API's validation and
    ``pipeline.accept``), attach the fax; the fax becomes ``referral``."""
    raise NotImplementedError


def attach(p, fax_id: str, referral_id: str, *, actor: str, ip: str | None = None) -> None:
    raise NotImplementedError


def archive(p, fax_id: str, reason: str, *, actor: str, ip: str | None = None) -> None:
    raise NotImplementedError


def purge(p, *, older_than: dt.timedelta) -> int:
    """Delete handled or archived faxes older than the retention period."""
    raise NotImplementedError
