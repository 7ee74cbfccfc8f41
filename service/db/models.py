"""SQLAlchemy 2 models: practices and their API keys, users, referrals with
their timeline, plans, documents, deliveries, the outbox, idempotency keys,
the audit trail, received faxes, FHIR request identifiers and webhooks.

The same models run on SQLite (embedded) and PostgreSQL (production); the
Alembic migrations in ``migrations/`` are kept identical to them (a test runs
autogenerate and expects no difference).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# What the dashboard's search matches on PostgreSQL (a trigram index holds it):
# the patient's names and the practice's reference, lower-cased.
SEARCH_TEXT_SQL = ("lower(coalesce(payload #>> '{patient,family_name}', '') || ' ' || "
                   "coalesce(payload #>> '{patient,given_name}', '') || ' ' || "
                   "coalesce(external_id, ''))")
# Referrals whose plan has not reached the referrer, and will (not rejected or cancelled).
PLAN_UNSENT_SQL = "plan_sent_at IS NULL AND status NOT IN ('rejected', 'cancelled')"
IdColumn = String(36)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Practice(Base):
    """A referring practice (doctor's office) that submits referrals."""

    __tablename__ = "practices"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    fax: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="practice")


class ApiKey(Base):
    """An API key of a practice, stored as a SHA-256 hash (keys are 256-bit random)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown to staff to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    practice: Mapped[Practice] = relationship(back_populates="api_keys")


class User(Base):
    """A person who signs in: clinic staff, admins, and practice users."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # staff | admin | practice
    practice_id: Mapped[str | None] = mapped_column(ForeignKey("practices.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped at sign-out: every session cookie issued before it stops working,
    # copies included (sessions are signed cookies, so this is how they end).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # single sign-on: "<issuer> <subject>" of the OpenID Connect account linked
    # at the first sign-in through it (web/oidc.py); None until then
    oidc_subject: Mapped[str | None] = mapped_column(String(500), unique=True)

    practice: Mapped[Practice | None] = relationship()


class Referral(Base):
    """A referral: the validated payload plus the columns queries filter on."""

    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_practice_created", "practice_id", "created_at"),
        Index("ix_referrals_status_updated", "status", "updated_at"),
        Index("ix_referrals_practice_external", "practice_id", "external_id"),
        # the staff lists' order, newest first (keyset pages on it)
        Index("ix_referrals_created_id", "created_at", "id"),
        # the dashboard's "plan not yet sent to the referrer": only those not sent
        # (refflow.web.queue.PLAN_UNSENT is the same condition)
        Index("ix_referrals_plan_unsent", "created_at", postgresql_where=text(PLAN_UNSENT_SQL),
              sqlite_where=text(PLAN_UNSENT_SQL)),
        # the dashboard's "flagged" filter: the few flagged referrals
        Index("ix_referrals_flagged", "created_at", postgresql_where=text("flagged"),
              sqlite_where=text("flagged")),
        # name search on PostgreSQL: trigrams of the text the dashboard searches
        # (SQLite, for one clinic, reads the table)
        Index("ix_referrals_search_trgm", text(f"{SEARCH_TEXT_SQL} public.gin_trgm_ops"),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
        # the Reports' period: referrals received between two times with the
        # figures they keep, read from the index alone (referrals.stats)
        Index("ix_referrals_received_figures", "created_at", "status", "practice_id",
              "released_at", "referrer_notified_at", "review_started_at", "review_seconds"),
    )

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id"))
    status: Mapped[str] = mapped_column(String(20), default="received")
    external_id: Mapped[str | None] = mapped_column(String(100))
    urgency: Mapped[str] = mapped_column(String(10), default="routine")
    payload: Mapped[dict] = mapped_column(JSONType)
    # SHA-256 of the payload as first stored: the validated referral's JSON text
    payload_sha256: Mapped[str] = mapped_column(String(64))
    received_on: Mapped[dt.date] = mapped_column(Date)  # "today" for the plan's date rules
    intake_problems: Mapped[list] = mapped_column(JSONType, default=list)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # when the plan first reached the referring office (a plan document sent to a
    # referrer's target); the database sets it as the delivery is marked sent
    plan_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Figures kept as the referral moves, for the Reports (referrals.stats): when
    # its plan was first released (first reached ``planned``), when the referring
    # office was first told (a summary or "not accepted" letter sent to it), when
    # it last went into review, and its finished stays in review added up (None
    # until the first stay ends). referrals.states.transition and
    # pipeline.flow keep them.
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    referrer_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    review_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    review_seconds: Mapped[float | None] = mapped_column(Float)

    practice: Mapped[Practice] = relationship()
    events: Mapped[list[ReferralEvent]] = relationship(
        back_populates="referral", order_by="ReferralEvent.id"
    )
    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="referral", order_by="Delivery.created_at"
    )
    plan: Mapped[Plan | None] = relationship(back_populates="referral")


class ReferralEvent(Base):
    """One entry of a referral's timeline: who/what, when, from → to, why."""

    __tablename__ = "referral_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # "practice:<id>", "user:<id>", "worker", …
    kind: Mapped[str] = mapped_column(String(40))  # status, retry, plugin_failed, delivery_sent…
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    delivery_id: Mapped[str | None] = mapped_column(String(36))  # the delivery it is about

    referral: Mapped[Referral] = relationship(back_populates="events")


class Plan(Base):
    """The plan the engine built for a referral (one per referral; rebuilt in place)."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(20))
    engine_version: Mapped[str] = mapped_column(String(20))
    body: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    referral: Mapped[Referral] = relationship(back_populates="plan")


class PlanVersion(Base):
    """Every version of a referral's plan: 1 is the engine's draft, each staff
    edit adds one (``plans`` holds the current version)."""

    __tablename__ = "plan_versions"
    __table_args__ = (UniqueConstraint("referral_id", "version"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"))  # the unique key indexes it
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSONType)
    author: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Document(Base):
    """A rendered document (handout PDF, summary PDF, fax TIFF): what it is here,
    its bytes in the document store (``refflow.db.blobstore``) under
    ``store_key``, checked against ``sha256`` on every read. Rows written before
    the store (migration 0012) still hold their bytes in ``content``. A
    document deleted by the retention period keeps its row, with ``purged_at``."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("referral_id", "name"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))  # documents.names: handout.pdf, summary.pdf, ...
    content_type: Mapped[str] = mapped_column(String(60))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)  # before the store only
    store_key: Mapped[str | None] = mapped_column(String(200))
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One delivery of a referral through one channel to one target."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("referral_id", "channel", "document"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_failed_referral", "referral_id",
              postgresql_where=text("status = 'failed'"), sqlite_where=text("status = 'failed'")),
        # the Reports' deliveries of the referrals received in a period
        Index("ix_deliveries_referral_created", "referral_created_at", "channel", "status"),
    )

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    # when its referral was received (a copy, set as the delivery is queued)
    referral_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(40))
    document: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(254))  # snapshot taken at queue time
    # pending, sending, retrying, sent, failed, or in_doubt (its sender stopped
    # mid-send on a channel that cannot tell whether it went: staff decide)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # retried until then (the channel's retry window from when it was queued,
    # or from a staff retry); a transient error after it fails the delivery
    retry_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A delivery a provider holds (a fax job queued with the fax server) stays
    # ``sending`` with no claim; the scheduler checks it again at ``check_at``.
    check_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # What the provider confirmed: pages sent, call seconds, remote id, job id, ...
    detail: Mapped[dict | None] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    referral: Mapped[Referral] = relationship(back_populates="deliveries")
    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(order_by="DeliveryAttempt.id")


class DeliveryAttempt(Base):
    """Every attempt leaves a row, written before the channel is called."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # indexed: the alerts read each channel's attempts of the last minutes (ops.alerts)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    outcome: Mapped[str] = mapped_column(String(20), default="sending")  # sent|transient|permanent
    error: Mapped[str | None] = mapped_column(String(500))


class StateCount(Base):
    """Referrals by state, deliveries by channel and state and attempts by
    channel and outcome, kept as work happens: database triggers (migration
    0010) add a row of +n/-n for every change, so the dashboard and
    ``/metrics`` sum a few rows instead of counting all history.
    ``refflow.referrals.counts`` reads and folds them."""

    __tablename__ = "state_counts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subject: Mapped[str] = mapped_column(String(20))  # referral | delivery | attempt
    channel: Mapped[str] = mapped_column(String(40))  # "" for referrals
    state: Mapped[str] = mapped_column(String(20))
    n: Mapped[int] = mapped_column(BigInteger)


class OutboxMessage(Base):
    """A message for the broker, written in the same transaction as the change
    that caused it; the dispatcher relays unsent rows and marks them sent."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unsent", "sent_at", "available_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)  # retry backoff
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    relay_attempts: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyKey(Base):
    """A practice's Idempotency-Key with the request fingerprint and the answer given."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("practice_id", "key"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[str | None] = mapped_column(ForeignKey("referrals.id"))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AuditEntry(Base):
    """Who read or changed what, when, from where. Holds ids, never PHI."""

    __tablename__ = "audit_trail"
    __table_args__ = (Index("ix_audit_referral_at", "referral_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    referral_id: Mapped[str | None] = mapped_column(String(36))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500))


class ReceivedFax(Base):
    """A fax that reached the clinic: the image as received (PHI, stored like a
    document), who sent it, what reading it found, and what staff did with it.

    ``status``: ``received`` (waiting to be read) → ``read`` (pages read; in the
    inbox for staff) → ``referral`` (a referral was created from it),
    ``attached`` (added to an existing referral) or ``archived`` (with a reason).
    """

    __tablename__ = "received_faxes"
    __table_args__ = (Index("ix_received_faxes_status_received", "status", "received_at"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the same fax twice: stored once
    source: Mapped[str] = mapped_column(String(60))  # "cli", "hylafax", "plugin:<name>"
    source_ref: Mapped[str | None] = mapped_column(String(200))  # recvq file, provider's id
    from_number: Mapped[str | None] = mapped_column(String(32))  # caller id / TSI as received
    to_number: Mapped[str | None] = mapped_column(String(32))
    practice_id: Mapped[str | None] = mapped_column(ForeignKey("practices.id"), index=True)
    content_type: Mapped[str] = mapped_column(String(60))  # image/tiff or application/pdf
    content: Mapped[bytes | None] = mapped_column(LargeBinary)  # before the document store only
    store_key: Mapped[str | None] = mapped_column(String(200))  # the image in the document store
    pages: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="received")
    # what reading found: OCR text and confidence per page, the form's fields
    # with confidences, the draft referral (see refflow.faxin.reading)
    reading: Mapped[dict | None] = mapped_column(JSONType)
    referral_id: Mapped[str | None] = mapped_column(ForeignKey("referrals.id"), index=True)
    archived_reason: Mapped[str | None] = mapped_column(String(500))
    handled_by: Mapped[str | None] = mapped_column(String(100))
    handled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FhirRequest(Base):
    """A referral that came as a FHIR ServiceRequest: its identifier (system and
    value, per practice) makes the create conditional — the same ServiceRequest
    again is the same referral and the same Task."""

    __tablename__ = "fhir_requests"
    __table_args__ = (UniqueConstraint("practice_id", "system", "value"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id"))
    system: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(Base):
    """A URL a practice registered to hear about its referrals (Standard Webhooks)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(300))  # the signing secret (whsec_…), sealed
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list | None] = mapped_column(JSONType)  # None: every event type
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebhookMessage(Base):
    """One event for one endpoint, sent and retried like a delivery; its log."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_status_next", "status", "next_attempt_at"),
        UniqueConstraint("endpoint_id", "event_key"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_… (webhook-id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event_key: Mapped[str] = mapped_column(String(80))  # what it reports, e.g. "event:1234"
    event_type: Mapped[str] = mapped_column(String(60))
    referral_id: Mapped[str | None] = mapped_column(String(36), index=True)
    payload: Mapped[dict] = mapped_column(JSONType)  # ids and status only: never PHI
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    response_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class EventCursor(Base):
    """How far a reader of the referral timeline has got (the webhook fan-out
    turns each new ``referral_events`` row into webhook messages)."""

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                               default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatientLink(Base):
    """The link a patient opens their plan with (``/p/<token>``): the URL holds a
    random token, stored here only as its SHA-256; it expires and staff can
    revoke it. No PHI in the URL."""

    __tablename__ = "patient_links"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(100))


class PatientSession(Base):
    """One exercise session a patient logged on their page."""

    __tablename__ = "patient_sessions"
    __table_args__ = (Index("ix_patient_sessions_referral_done", "referral_id", "done_on"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"))
    link_id: Mapped[str | None] = mapped_column(String(36))  # the link it was logged through
    logged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_on: Mapped[dt.date] = mapped_column(Date)
    pain: Mapped[int | None] = mapped_column(Integer)  # 0-10
    difficulty: Mapped[str | None] = mapped_column(String(10))  # easy | ok | hard
    note: Mapped[str | None] = mapped_column(String(500))


class Incident(Base):
    """An alert condition (a channel failing, a backlog, no worker online,
    referrals waiting in review too long) from when it started to when it
    cleared; one notification is sent at each end. At most one open incident
    per ``(kind, key)`` (a partial unique index), so two schedulers that see
    the same condition open it once. ``detail`` holds counts, names of
    channels and queues and referral ids: never PHI."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # ops.alerts: channel_failing, no_worker, ...
    key: Mapped[str] = mapped_column(String(100))  # the channel or queue name; "" when one per kind
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    detail: Mapped[str] = mapped_column(String(500), default="")
    # each notification is claimed (a lease, so a sender that died is replaced)
    # and then marked sent: exactly one "started" and one "cleared" per incident
    notify_claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    start_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    clear_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


Index("uq_incidents_open", Incident.kind, Incident.key, unique=True,
      postgresql_where=Incident.cleared_at.is_(None), sqlite_where=Incident.cleared_at.is_(None))
