"""A referral's rendered documents: the row in the database (what staff and
channels need to know of them: type, hash, size, fax pages) and the bytes in
the document store (``refflow.db.blobstore``), under
``documents/<referral id>/<document id>-<sha256>``.

Every read goes through ``document_bytes``: the store's bytes, checked against
the row's SHA-256, or those a row written before the store holds. Documents of
closed referrals are purged after ``document_retention_days``
(``purge_expired``, the scheduler's hourly housekeeping); the row stays, with
``purged_at``, and a read raises ``DocumentPurged``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging

from sqlalchemy import exists, select
from sqlalchemy.orm import defer

from refflow.db import blobstore
from refflow.db.models import (
    AuditEntry,
    Delivery,
    Document,
    ReceivedFax,
    Referral,
    new_id,
    utcnow,
)
from refflow.documents.names import CONTENT_TYPES
from refflow.referrals import states

log = logging.getLogger("refflow.documents")

RETENTION_ACTOR = "retention"
PURGE_BATCH = 200  # documents a transaction purges
SENDING = ("pending", "sending", "retrying", "in_doubt")  # a delivery that may still read one


class DocumentPurged(LookupError):
    """The document's bytes were deleted after the retention period (its row stays)."""


def store_documents(store: blobstore.BlobStore, session, referral_id: str,
                    documents: dict[str, bytes]) -> None:
    """Add the documents, or replace the stored ones of the same name: the
    bytes go to the store now, the rows with ``session``'s transaction."""
    existing = {d.name: d for d in session.scalars(
        select(Document).where(Document.referral_id == referral_id))}
    for name, content in documents.items():
        doc = existing.get(name)
        if doc is None:
            doc = Document(id=new_id(), referral_id=referral_id, name=name)
            session.add(doc)
        digest = hashlib.sha256(content).hexdigest()
        key = blobstore.document_key(referral_id, doc.id, digest)
        if doc.store_key != key:
            blobstore.put_in(session, store, key, content)
            if doc.store_key is not None:
                blobstore.delete_after_commit(session, store, doc.store_key)
        doc.store_key, doc.content, doc.purged_at = key, None, None
        doc.content_type = CONTENT_TYPES.get(name, "application/octet-stream")
        doc.sha256 = digest
        doc.size = len(content)
        doc.pages = tiff_pages(content) if name.endswith(".tiff") else None


def document_bytes(store: blobstore.BlobStore, doc: Document) -> bytes:
    """The document's bytes. ``DocumentPurged`` after the retention period;
    ``blobstore.BlobCorrupt`` when the stored bytes are not the recorded ones;
    ``blobstore.BlobMissing`` when the store lost them."""
    if doc.purged_at is not None:
        raise DocumentPurged(doc.id)
    return blobstore.read(store, doc.store_key, doc.sha256,
                          doc.content if doc.store_key is None else None)


def purge_expired(p, *, older_than: dt.timedelta | None = None) -> int:
    """Delete from the store the documents of referrals that closed (completed,
    rejected or cancelled) longer than ``older_than`` ago (default
    ``document_retention_days``; 0 keeps them) and that no delivery may still
    send; each row stays with ``purged_at``, each referral's purge is on the
    audit trail. Returns how many documents were purged."""
    if older_than is None:
        if not p.settings.document_retention_days:
            return 0
        older_than = dt.timedelta(days=p.settings.document_retention_days)
    cutoff = utcnow() - older_than
    purged = 0
    while True:
        with p.db.session() as session:
            docs = session.scalars(
                select(Document).options(defer(Document.content)).join(Referral, Referral.id == Document.referral_id).where(
                    Document.purged_at.is_(None), Document.created_at < cutoff,
                    Referral.status.in_(states.TERMINAL), Referral.updated_at < cutoff,
                    ~exists().where(Delivery.referral_id == Document.referral_id,
                                    Delivery.status.in_(SENDING)))
                .order_by(Document.id).limit(PURGE_BATCH)
                .with_for_update(of=Document, skip_locked=True)).all()
            if not docs:
                break
            now = utcnow()
            names: dict[str, list[str]] = {}
            for doc in docs:
                if doc.store_key is not None:
                    p.store.delete(doc.store_key)  # before the commit: never a row without a purge
                doc.content, doc.purged_at = None, now
                names.setdefault(doc.referral_id, []).append(doc.name)
            for referral_id, purged_names in names.items():
                session.add(AuditEntry(actor=RETENTION_ACTOR, action="documents.purge",
                                       referral_id=referral_id,
                                       detail=", ".join(sorted(purged_names))[:500]))
            purged += len(docs)
    if purged:
        log.info("purged %d document(s) of referrals closed over %d day(s) ago", purged,
                 older_than.days)
    return purged


def move_into_store(p, *, batch: int = 50) -> tuple[int, int]:
    """Move the bytes that rows written before the store (migration 0012) hold
    in the database into the store, ``batch`` rows a transaction; reads work
    before, during and after. Returns (documents, received faxes) moved."""
    moved = []
    for model in (Document, ReceivedFax):
        count = 0
        while True:
            with p.db.session() as session:
                rows = session.scalars(select(model).where(
                    model.store_key.is_(None), model.content.is_not(None))
                    .order_by(model.id).limit(batch).with_for_update(skip_locked=True)).all()
                if not rows:
                    break
                for row in rows:
                    key = blobstore.document_key(row.referral_id, row.id, row.sha256) \
                        if model is Document else blobstore.fax_key(row.id)
                    blobstore.put_in(session, p.store, key, row.content)
                    row.store_key, row.content = key, None
                count += len(rows)
        moved.append(count)
    return moved[0], moved[1]


def tiff_pages(content: bytes) -> int | None:
    """The pages of a TIFF file (``None`` if it is not one); no pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            return getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError):
        return None
