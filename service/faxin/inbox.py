"""The fax inbox: store a received fax once, read it, and what staff do with it.

Every function takes a SQLAlchemy session (the caller commits) or the
Pipeline, and ids; none logs PHI (ids, sources and page counts only).

A fax's ``status``: ``received`` (stored, waiting for the worker to read it)
→ ``read`` (in the inbox for staff) → ``referral`` (a referral was created
from it), ``attached`` (added to an existing referral) or ``archived`` (with
a reason). Only a fax still in the inbox (``received`` or ``read``) can be
handled, once: the move is a conditional UPDATE, so two people clicking at
the same moment cannot both handle it. Handled and archived faxes are purged
``fax_retention_days`` after they were handled; a fax nobody handled is
never purged.

Every read or change of a fax by a person is on the audit trail (actor,
action, the fax's id; the referral's id where there is one).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from refflow.db import blobstore
from refflow.db.models import AuditEntry, Practice, ReceivedFax, Referral, utcnow
from refflow.faxin import pages, reading
from refflow.intake.contact import normalize_phone
from refflow.intake.validation import clinic_today, parse_referral
from refflow.pipeline import accept, outbox
from refflow.pipeline.context import Pipeline, StepError
from refflow.pipeline.intake_rules import problem_finder
from refflow.referrals import states

log = logging.getLogger("refflow.faxin")

RECEIVED, READ, REFERRAL, ATTACHED, ARCHIVED = "received", "read", "referral", "attached", \
    "archived"
STATUSES = (RECEIVED, READ, REFERRAL, ATTACHED, ARCHIVED)
OPEN = (RECEIVED, READ)  # in the inbox, waiting for staff
HANDLED = (REFERRAL, ATTACHED, ARCHIVED)
REASON_MAX = 500  # received_faxes.archived_reason
NUMBER_MAX = 32  # received_faxes.from_number / to_number
TIMELINE_KIND = "fax"  # the referral timeline's entries about its faxes


class InvalidFaxAction(ValueError):
    """What staff asked for cannot be done as given; ``fields`` names each bad
    field (``reason``, ``practice_id``, ``referral_id``) and why."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NoSuchReferral(LookupError):
    """``attach``: the referral named does not exist."""


@dataclass(frozen=True)
class Stored:
    fax_id: str
    created: bool  # False: the same fax (same bytes) was already in the inbox


@dataclass(frozen=True)
class FaxView:
    """A received fax as staff see it (everything but the image bytes)."""

    id: str
    status: str
    source: str
    source_ref: str | None
    from_number: str | None
    to_number: str | None
    practice_id: str | None
    practice_name: str | None
    content_type: str
    pages: int
    sha256: str
    received_at: dt.datetime
    updated_at: dt.datetime
    referral_id: str | None
    archived_reason: str | None
    handled_by: str | None
    handled_at: dt.datetime | None
    reading: dict | None  # reading.Reading.as_json(), {"error": "<class>"}, or None (not yet)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def reading_error(self) -> str | None:
        return (self.reading or {}).get("error")

    @property
    def form(self) -> dict | None:
        """The referral form's identity from its barcode, or None."""
        return (self.reading or {}).get("form")

    @property
    def fields(self) -> dict:
        return (self.reading or {}).get("fields") or {}

    @property
    def draft(self) -> dict:
        return (self.reading or {}).get("draft") or {}

    @property
    def page_texts(self) -> list[dict]:
        """``[{"text", "confidence"}]`` per page (empty until read)."""
        return (self.reading or {}).get("pages") or []

    @property
    def matched_by(self) -> str | None:
        """How the practice was found: ``"form"`` (the form's barcode),
        ``"caller"`` (the caller's fax number) or None."""
        if self.practice_id is None:
            return None
        if (self.form or {}).get("practice_id") == self.practice_id:
            return "form"
        return "caller"


# -- receiving ----------------------------------------------------------------------


def receive(p: Pipeline, content: bytes, *, source: str, source_ref: str | None = None,
            from_number: str | None = None, to_number: str | None = None) -> Stored:
    """Store a received fax (TIFF or PDF) once by its SHA-256 (the image in the
    document store, under ``received-faxes/<fax id>``), match the caller to a
    practice by fax number, queue ``refflow.read_fax``. Raises
    ``faxin.pages.NotAFax`` for anything else."""
    content_type = pages.content_type_of(content)
    count = pages.page_count(content, content_type)
    if count < 1:
        raise pages.NotAFax("the fax has no pages")
    digest = hashlib.sha256(content).hexdigest()
    caller, called = _number(from_number), _number(to_number)
    try:
        with p.db.session() as session:
            existing = _by_sha256(session, digest)
            if existing is not None:
                return Stored(existing, False)
            now, fax_id = utcnow(), str(uuid.uuid4())
            key = blobstore.fax_key(fax_id)
            blobstore.put_in(session, p.store, key, content)
            row = ReceivedFax(id=fax_id, sha256=digest, source=source[:60],
                              source_ref=_one_line(source_ref, 200),
                              from_number=caller, to_number=called,
                              practice_id=_practice_by_fax(session, caller),
                              content_type=content_type, store_key=key, pages=count,
                              status=RECEIVED, received_at=now, updated_at=now)
            session.add(row)
            session.flush()
            message = outbox.enqueue(session, outbox.READ_FAX, {"fax_id": row.id})
            _audit(session, f"fax:{source}", "fax.receive", row.id)
            session.flush()
            fax_id, ids = row.id, [message.id]
    except IntegrityError:
        # the unique sha256 index: the same fax arrived twice at the same moment
        with p.db.session() as session:
            existing = _by_sha256(session, digest)
        if existing is None:
            raise
        return Stored(existing, False)
    log.info("fax %s received from %s (%d page%s)", fax_id, source, count,
             "" if count == 1 else "s")
    p.relay(ids)
    return Stored(fax_id, True)


def stored_references(session: Session, source: str) -> set[str]:
    """The references (a source's own ids, e.g. recvq file names) of the faxes
    from ``source`` the inbox holds (retention keeps this bounded)."""
    return set(session.scalars(select(ReceivedFax.source_ref).where(
        ReceivedFax.source == source, ReceivedFax.source_ref.is_not(None))))


def _by_sha256(session: Session, digest: str) -> str | None:
    return session.scalar(select(ReceivedFax.id).where(ReceivedFax.sha256 == digest))


def _one_line(value: str | None, limit: int) -> str | None:
    """``value`` on one line (control characters, NUL included, as spaces; runs
    of spaces as one), at most ``limit`` characters; None when empty."""
    if value is None:
        return None
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(value)).split())
    return text[:limit] or None


def _number(value: str | None) -> str | None:
    """A caller id or TSI in E.164 when it is a phone number, else as received
    (one line, at most ``NUMBER_MAX`` characters); None when empty."""
    text = _one_line(value, 200)
    if text is None:
        return None
    try:
        return normalize_phone(text)
    except ValueError:
        return text[:NUMBER_MAX]


def _practice_by_fax(session: Session, number: str | None) -> str | None:
    """The one practice whose fax number is ``number`` (None when none or several)."""
    if not number or not number.startswith("+"):
        return None
    found = session.scalars(select(Practice.id).where(Practice.fax == number).limit(2)).all()
    return found[0] if len(found) == 1 else None


def _known_practice(session: Session, value: object) -> str | None:
    """``value`` if it is the id of a practice (a barcode's or a request's text
    is checked to be an id before it reaches a query)."""
    if not _is_id(value):
        return None
    return session.scalar(select(Practice.id).where(Practice.id == value))


def _is_id(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


# -- reading (the worker) -----------------------------------------------------------


def read(p: Pipeline, fax_id: str) -> str | None:
    """The worker step: received → read (runs ``reading.read_fax`` on the pages).

    Idempotent: a fax already read is not read again. The practice named by the
    referral form's barcode wins over the caller-id match. If reading fails,
    the fax still becomes ``read`` with ``{"error": "<class name>"}`` so staff
    see its pages: nothing received is ever lost. Returns the fax's status
    (None for an unknown id)."""
    with p.db.session() as session:
        row = session.execute(select(ReceivedFax.status, ReceivedFax.reading,
                                     ReceivedFax.content_type, ReceivedFax.store_key,
                                     ReceivedFax.sha256, ReceivedFax.content)
                              .where(ReceivedFax.id == fax_id)).first()
        if row is None:
            log.warning("read_fax: no fax %s", fax_id)
            return None
        if row.reading is not None:
            return row.status
        content_type = row.content_type
        content = blobstore.read(p.store, row.store_key, row.sha256, row.content)
    started = time.monotonic()
    try:
        images = pages.page_images(content, content_type)
        found = reading.read_fax(images, tessdata_dir=p.settings.tessdata_dir or None).as_json()
    except Exception as exc:  # noqa: BLE001 - an unreadable fax still reaches staff
        log.warning("fax %s could not be read (%s); its pages go to staff unread",
                    fax_id, type(exc).__name__)
        found = {"error": type(exc).__name__}
    found = _without_nul(found)
    with p.db.session() as session:
        row = session.get(ReceivedFax, fax_id, with_for_update=True,
                          options=[defer(ReceivedFax.content)])
        if row is None or row.reading is not None:  # purged, or another worker was first
            return row.status if row is not None else None
        row.reading, row.updated_at = found, utcnow()
        if row.status == RECEIVED:
            form = found.get("form") or {}
            row.practice_id = _known_practice(session, form.get("practice_id")) \
                or row.practice_id
            row.status = READ
        status = row.status
    log.info("fax %s read in %.1f s (%s)", fax_id, time.monotonic() - started,
             "form" if found.get("form") else "error" if "error" in found else "no form")
    return status


def _without_nul(value):
    """``value`` with NUL characters dropped from every string (PostgreSQL's
    JSONB cannot store them; OCR or a barcode may produce one)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


# -- what staff do ------------------------------------------------------------------


def create_referral(p: Pipeline, fax_id: str, payload: dict, *, practice_id: str | None,
                    actor: str, ip: str | None = None) -> dict:
    """Create a referral from the reviewed draft (the API's validation and
    ``pipeline.accept``), attach the fax; the fax becomes ``referral``.

    ``practice_id`` None means the practice the fax was matched to. Raises
    ``InvalidReferral`` (fields named like the API's), ``InvalidFaxAction``
    (no such practice), ``LookupError`` (no such fax) or ``StepError`` (the
    fax was handled already). Returns the referral's 202 body."""
    settings = p.settings
    find_problems = problem_finder(settings)
    with p.db.session() as session:
        if practice_id is None:
            practice_id = session.scalar(select(ReceivedFax.practice_id)
                                         .where(ReceivedFax.id == fax_id))
            if practice_id is None:
                _exists_or_lookup_error(session, fax_id)
                raise InvalidFaxAction("choose the referring practice",
                                       {"practice_id": "required"})
        elif _known_practice(session, practice_id) is None:
            raise InvalidFaxAction("no such practice", {"practice_id": "no such practice"})
        count = _handle(session, fax_id, REFERRAL, actor=actor)  # rolled back if invalid
        referral = parse_referral(payload, today=clinic_today(settings.clinic_timezone))
        submitter = accept.Submitter(practice_id=practice_id, actor=actor, ip=ip)
        body = accept.accept_in(session, submitter, payload, referral, idempotency_key=None,
                                clinic_timezone=settings.clinic_timezone,
                                find_problems=find_problems)
        session.execute(update(ReceivedFax).where(ReceivedFax.id == fax_id)
                        .values(referral_id=body["id"])
                        .execution_options(synchronize_session=False))
        states.record_event(session, body["id"], TIMELINE_KIND, actor=actor,
                            reason=f"referral created from received fax {fax_id} "
                                   f"({_pages(count)})")
        _audit(session, actor, "fax.referral", fax_id, ip=ip, referral_id=body["id"])
    log.info("fax %s became referral %s", fax_id, body["id"])
    p.relay()
    return body


def attach(p: Pipeline, fax_id: str, referral_id: str, *, actor: str,
           ip: str | None = None) -> None:
    """Add the fax to an existing referral (its timeline says so); the fax becomes
    ``attached``. Raises ``NoSuchReferral``, ``LookupError`` (no such fax) or
    ``StepError`` (handled already)."""
    with p.db.session() as session:
        if not _is_id(referral_id) or session.get(Referral, referral_id) is None:
            raise NoSuchReferral(referral_id)
        count = _handle(session, fax_id, ATTACHED, actor=actor, referral_id=referral_id)
        states.record_event(session, referral_id, TIMELINE_KIND, actor=actor,
                            reason=f"fax attached ({_pages(count)}): fax {fax_id}")
        _audit(session, actor, "fax.attach", fax_id, ip=ip, referral_id=referral_id)
    log.info("fax %s attached to referral %s", fax_id, referral_id)


def archive(p: Pipeline, fax_id: str, reason: str, *, actor: str, ip: str | None = None) -> None:
    """Archive a fax that needs no referral (junk, a duplicate, not for the
    clinic) with a reason of at most ``REASON_MAX`` characters."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise InvalidFaxAction("say why the fax is archived", {"reason": "required"})
    if len(text) > REASON_MAX:
        raise InvalidFaxAction(f"the reason must be at most {REASON_MAX} characters",
                               {"reason": f"at most {REASON_MAX} characters"})
    if "\x00" in text:
        raise InvalidFaxAction("the reason must not contain NUL characters",
                               {"reason": "must not contain a NUL character"})
    with p.db.session() as session:
        _handle(session, fax_id, ARCHIVED, actor=actor, archived_reason=text)
        _audit(session, actor, "fax.archive", fax_id, ip=ip)
    log.info("fax %s archived", fax_id)


def purge(p: Pipeline, *, older_than: dt.timedelta | None = None) -> int:
    """Delete handled or archived faxes older than the retention period
    (``older_than``, default ``settings.fax_retention_days``); a fax still in
    the inbox is never deleted, nor is an image in the document store kept
    for a deleted fax. Returns how many were deleted."""
    if older_than is None:
        older_than = dt.timedelta(days=p.settings.fax_retention_days)
    cutoff = utcnow() - older_than
    with p.db.session() as session:
        rows = session.execute(select(ReceivedFax.id, ReceivedFax.store_key).where(
            ReceivedFax.status.in_(HANDLED), ReceivedFax.handled_at < cutoff)).all()
        if not rows:
            return 0
        ids = [row.id for row in rows]
        for row in rows:  # before the rows go: never a row gone with its image still kept
            if row.store_key is not None:
                p.store.delete(row.store_key)
        session.execute(delete(ReceivedFax).where(ReceivedFax.id.in_(ids),
                                                  ReceivedFax.status.in_(HANDLED))
                        .execution_options(synchronize_session=False))
        for fax_id in ids:
            _audit(session, "retention", "fax.purge", fax_id)
    log.info("purged %d received fax(es) handled over %d day(s) ago", len(ids),
             older_than.days)
    return len(ids)


def _handle(session: Session, fax_id: str, new: str, *, actor: str, **values) -> int:
    """Move a fax still in the inbox to ``new`` (a conditional UPDATE: only one
    of two people at the same moment gets it); returns its page count.
    ``LookupError`` when there is no such fax, ``StepError`` when it was
    handled already."""
    now = utcnow()
    result = session.execute(
        update(ReceivedFax)
        .where(ReceivedFax.id == fax_id, ReceivedFax.status.in_(OPEN))
        .values(status=new, handled_by=actor[:100], handled_at=now, updated_at=now, **values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        current = _exists_or_lookup_error(session, fax_id)
        raise StepError(f"this fax was already handled (it is {current})")
    return session.scalar(select(ReceivedFax.pages).where(ReceivedFax.id == fax_id))


def _exists_or_lookup_error(session: Session, fax_id: str) -> str:
    status = session.scalar(select(ReceivedFax.status).where(ReceivedFax.id == fax_id))
    if status is None:
        raise LookupError(fax_id)
    return status


def _pages(count: int) -> str:
    return f"{count} page" + ("" if count == 1 else "s")


def _audit(session: Session, actor: str, action: str, fax_id: str | None, *,
           ip: str | None = None, referral_id: str | None = None,
           detail: str | None = None) -> None:
    """An audit entry: who, what, which fax (its id only)."""
    session.add(AuditEntry(actor=actor[:100], action=action, referral_id=referral_id, ip=ip,
                           detail=detail or f"fax:{fax_id}"))


# -- reading the inbox (every read by a person is audited) --------------------------


def view(session: Session, fax_id: str, *, actor: str, ip: str | None = None) -> FaxView | None:
    """One fax for staff (None when there is no such fax); the read is audited."""
    row = session.execute(_view_query().where(ReceivedFax.id == fax_id)).first()
    if row is None:
        return None
    _audit(session, actor, "fax.view", fax_id, ip=ip, referral_id=row[0].referral_id)
    return _view(*row)


def listing(session: Session, *, actor: str, ip: str | None = None,
            statuses: list[str] | None = None, limit: int = 50,
            cursor: str | None = None) -> tuple[list[FaxView], str | None]:
    """Faxes newest first, keyset-paginated on (received_at, id) like the
    referral list; the read is audited. ``cursor`` comes from a previous page
    (``ValueError`` when it is not one this function gave out)."""
    query = _view_query()
    if statuses:
        query = query.where(ReceivedFax.status.in_(statuses))
    if cursor:
        received, last_id = decode_cursor(cursor)
        query = query.where(or_(ReceivedFax.received_at < received,
                                and_(ReceivedFax.received_at == received,
                                     ReceivedFax.id < last_id)))
    rows = session.execute(query.order_by(ReceivedFax.received_at.desc(),
                                          ReceivedFax.id.desc()).limit(limit + 1)).all()
    items = [_view(*row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
    _audit(session, actor, "fax.list", None, ip=ip,
           detail="status " + ",".join(statuses) if statuses else "all faxes")
    return items, next_cursor


def counts(session: Session) -> dict[str, int]:
    """How many faxes are in each status (every status, zero included)."""
    found = dict(session.execute(select(ReceivedFax.status, func.count())
                                 .group_by(ReceivedFax.status)).all())
    return {status: found.get(status, 0) for status in STATUSES}


def page_png(session: Session, store: blobstore.BlobStore, fax_id: str, number: int, *,
             actor: str, ip: str | None = None, width: int | None = None) -> bytes | None:
    """Page ``number`` (1-based) of a fax as PNG, or None when there is no such
    fax or page; the read is audited."""
    row = session.execute(select(ReceivedFax.content, ReceivedFax.content_type,
                                 ReceivedFax.store_key, ReceivedFax.sha256,
                                 ReceivedFax.pages, ReceivedFax.referral_id)
                          .where(ReceivedFax.id == fax_id)).first()
    if row is None or not 1 <= number <= row.pages:
        return None
    _audit(session, actor, "fax.page", fax_id, ip=ip, referral_id=row.referral_id,
           detail=f"fax:{fax_id} page {number}")
    content = blobstore.read(store, row.store_key, row.sha256, row.content)
    images = pages.page_images(content, row.content_type)
    if number > len(images):
        return None
    return pages.png(images[number - 1], width=width)


def encode_cursor(fax: FaxView) -> str:
    raw = json.dumps([fax.received_at.isoformat(), fax.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """``(received_at, id)`` of a cursor; ``ValueError`` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        received, fax_id = json.loads(base64.urlsafe_b64decode(padded))
        at = dt.datetime.fromisoformat(received)
        at.astimezone(dt.timezone.utc)
    except (ValueError, TypeError, OverflowError, RecursionError):  # binascii.Error: ValueError
        raise ValueError("not a cursor of the fax list") from None
    if at.tzinfo is None or not _is_id(fax_id):
        raise ValueError("not a cursor of the fax list")
    return at, fax_id


def _view_query():
    return (select(ReceivedFax, Practice.name)
            .outerjoin(Practice, Practice.id == ReceivedFax.practice_id)
            .options(defer(ReceivedFax.content)))


def _view(row: ReceivedFax, practice_name: str | None) -> FaxView:
    return FaxView(
        id=row.id, status=row.status, source=row.source, source_ref=row.source_ref,
        from_number=row.from_number, to_number=row.to_number, practice_id=row.practice_id,
        practice_name=practice_name, content_type=row.content_type, pages=row.pages,
        sha256=row.sha256, received_at=row.received_at, updated_at=row.updated_at,
        referral_id=row.referral_id, archived_reason=row.archived_reason,
        handled_by=row.handled_by, handled_at=row.handled_at, reading=row.reading)

