"""Refused reads of a referral go on the audit trail too.

A practice that asks for a referral it may not see (another practice's, or
none at all) gets the same 404 either way, through the JSON API, the FHIR
endpoint or the portal; the audit trail gets ``referral.read_refused`` with
the caller, the referral's id (when the request named one refflow could have
made), the client address and what was asked (``detail``: the method and the
endpoint, then "another practice's referral", "no such referral", or for a
document "a document this caller may not read" or "no such document"). Ids only.

The request's own transaction is rolled back with the 404 (and on SQLite it
holds the write lock), so the entry is written once the view has returned, in
a transaction of its own (``after_request``).
"""

from __future__ import annotations

from flask import Flask, current_app, g, request
from sqlalchemy import select

from refflow.db.models import AuditEntry, Document, Referral
from refflow.web.converters import is_id

ACTION = "referral.read_refused"


def refused(actor: str, referral_id: str | None = None, *, document_id: str | None = None) -> None:
    """Note that this request was refused a referral (or a referral's document)."""
    g.refused_read = (actor, referral_id if is_id(referral_id) else None,
                      document_id if is_id(document_id) else None,
                      f"{request.method} {request.endpoint}")


def init_app(app: Flask) -> None:
    @app.after_request
    def _audit_refused_read(response):
        found = g.pop("refused_read", None)
        if found is not None:
            _record(*found)
        return response


def _record(actor: str, referral_id: str | None, document_id: str | None, asked: str) -> None:
    with current_app.extensions["refflow.db"].session() as s:
        if document_id is not None:
            referral_id = s.scalar(select(Document.referral_id).where(Document.id == document_id))
            found = "a document this caller may not read" if referral_id else "no such document"
        elif referral_id is not None and s.get(Referral, referral_id) is not None:
            found = "another practice's referral"
        else:
            found = "no such referral"
        s.add(AuditEntry(actor=actor[:100], action=ACTION, referral_id=referral_id,
                         ip=request.remote_addr, detail=f"{asked}: {found}"[:500]))
