"""The dashboard's list of referrals: filters and search over the referral table.

Search text never travels in a URL: the filter form is posted and kept in the
(signed, HttpOnly) session, so auto-refresh keeps the user's filters. The
session cookie is signed, not encrypted, and a search is often a patient's
name, so the search text is kept in it encrypted (Fernet, with a key derived
from the secret key).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal_column, or_, select

from refflow.accounts import sealing
from refflow.db.models import PLAN_UNSENT_SQL, SEARCH_TEXT_SQL, Delivery, Practice, Referral
from refflow.referrals import counts, states

LIMIT = 100
COUNT_CAP = 1000  # a filtered list counts its matches up to this many
# Written out, not bound, so PostgreSQL's prepared plans can use the partial
# indexes (ix_deliveries_failed_referral, ix_referrals_flagged) they match.
FAILED_DELIVERY = literal_column("deliveries.status = 'failed'")
FLAGGED = literal_column("referrals.flagged")
PLAN_UNSENT = literal_column(f"({PLAN_UNSENT_SQL})")  # ix_referrals_plan_unsent's condition
SEARCH_PURPOSE = "queue search"  # the sealing key's purpose (refflow.accounts.sealing)


@dataclass(frozen=True)
class Filters:
    status: str = ""
    practice_id: str = ""
    flagged: bool = False
    failed: bool = False
    date_from: str = ""  # YYYY-MM-DD, clinic time zone
    date_to: str = ""
    q: str = ""

    @classmethod
    def from_form(cls, form) -> Filters:
        status = form.get("status", "")
        return cls(
            status=status if status in states.STATES else "",
            practice_id=(form.get("practice_id") or "")[:36],
            flagged=form.get("flagged") in {"1", "on", "true", True},
            failed=form.get("failed") in {"1", "on", "true", True},
            date_from=_date_text(form.get("date_from")),
            date_to=_date_text(form.get("date_to")),
            q=(form.get("q") or "").strip()[:100],
        )

    @classmethod
    def from_session(cls, data, secret_key: str) -> Filters:
        data = dict(data or {})
        sealed = data.pop("q_sealed", "")
        filters = cls.from_form(data)
        return replace(filters, q=_open(sealed, secret_key)) if sealed else filters

    def to_session(self, secret_key: str) -> dict:
        data = {k: v for k, v in asdict(self).items() if v and k != "q"}
        if self.q:
            data["q_sealed"] = sealing.seal(secret_key, SEARCH_PURPOSE, self.q)
        return data

    @property
    def active(self) -> bool:
        return any(asdict(self).values())


def _open(sealed: str, secret_key: str) -> str:
    """The search text sealed in the session; "" if it cannot be opened (a new
    secret key, a tampered cookie)."""
    try:
        return sealing.unseal(secret_key, SEARCH_PURPOSE, sealed)[:100]
    except sealing.SealError:
        return ""


def _date_text(value) -> str:
    try:
        return dt.date.fromisoformat(str(value or "")).isoformat()
    except ValueError:
        return ""


def _patient(key: str):
    return Referral.payload[("patient", key)].as_string()


FAMILY_NAME = _patient("family_name")
GIVEN_NAME = _patient("given_name")
# What the lists show of each referral: its columns, the patient's names and
# date of birth read out of the payload by the database (not the whole payload
# and its decoding, for every row of every 5-second refresh), and the
# practice's name. Built once, not for every refresh.
LISTED = (Referral.id, Referral.status, Referral.external_id, Referral.urgency,
          Referral.flagged, Referral.created_at, Referral.updated_at,
          FAMILY_NAME.label("family_name"), GIVEN_NAME.label("given_name"),
          _patient("birth_date").label("birth_date"), Practice.name.label("practice"))


def _listed(*more):
    """A list's rows (``LISTED``, and ``more``) of referrals and their practices."""
    return select(*LISTED, *more).join(Practice, Practice.id == Referral.practice_id)


def search(session, filters: Filters, timezone: str, limit: int = LIMIT):
    """(rows, total) newest first; each row is a list's row (``LISTED``) with
    ``failed``, the count of its failed deliveries. ``total`` is counted up to
    ``COUNT_CAP + 1`` (more is shown as "over COUNT_CAP"); without filters it is
    the count the database keeps."""
    failed_count = (select(func.count()).where(Delivery.referral_id == Referral.id,
                                               FAILED_DELIVERY)
                    .correlate(Referral).scalar_subquery())
    query = _listed(failed_count.label("failed"))
    conditions = []
    if filters.status:
        conditions.append(Referral.status == filters.status)
    if filters.practice_id:
        conditions.append(Referral.practice_id == filters.practice_id)
    if filters.flagged:
        # each side has its index (a partial one of flagged referrals)
        conditions.append(Referral.id.in_(
            select(Referral.id).where(FLAGGED).union(
                select(Referral.id).where(Referral.status == states.NEEDS_REVIEW))))
    if filters.failed:
        # the few referrals with a failed delivery (a partial index holds them)
        # or failed themselves, not a probe of deliveries for every referral
        conditions.append(Referral.id.in_(
            select(Delivery.referral_id).where(FAILED_DELIVERY).union(
                select(Referral.id).where(Referral.status == states.FAILED))))
    tz = ZoneInfo(timezone)
    if filters.date_from:
        start = dt.datetime.combine(dt.date.fromisoformat(filters.date_from), dt.time(),
                                    tzinfo=tz)
        conditions.append(Referral.created_at >= start.astimezone(dt.UTC))
    if filters.date_to:
        end = dt.datetime.combine(dt.date.fromisoformat(filters.date_to) + dt.timedelta(days=1),
                                  dt.time(), tzinfo=tz)
        conditions.append(Referral.created_at < end.astimezone(dt.UTC))
    postgresql = session.get_bind().dialect.name == "postgresql"
    for word in filters.q.split()[:5]:
        like = f"%{_escape_like(word.lower())}%"
        if postgresql:  # the trigram index's expression, word for word
            conditions.append(literal_column(SEARCH_TEXT_SQL).like(like, escape="\\"))
        else:
            conditions.append(or_(
                func.lower(GIVEN_NAME).like(like, escape="\\"),
                func.lower(FAMILY_NAME).like(like, escape="\\"),
                func.lower(Referral.external_id).like(like, escape="\\"),
            ))
    query = query.where(*conditions)
    if conditions:
        total = session.scalar(select(func.count()).select_from(
            select(Referral.id).where(*conditions).limit(COUNT_CAP + 1).subquery()))
    else:
        total = sum(counts.read(session).referrals.values())
    rows = session.execute(query.order_by(Referral.created_at.desc(), Referral.id.desc())
                           .limit(limit)).all()
    return rows, total


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def review_queue(session, limit: int = 20):
    """Referrals waiting for a clinician (a list's rows, ``LISTED``): urgent ones
    first, then the longest waiting."""
    return session.execute(
        _listed().where(Referral.status == states.NEEDS_REVIEW)
        .order_by(case((Referral.urgency == "urgent", 0), else_=1), Referral.updated_at,
                  Referral.id)
        .limit(limit)).all()


def plan_overdue(session, days: int, now: dt.datetime, limit: int = 20):
    """(rows, total): referrals received more than ``days`` ago whose plan has
    not reached the referring office (no plan document sent to a referrer's
    target), oldest first; rejected and cancelled ones are left out (no plan
    will be sent). The rows are a list's (``LISTED``)."""
    # plan_sent_at is set by the database as a plan document is sent to a
    # referrer's target (refflow.referrals.queries.PLAN_TO_REFERRER); a partial
    # index holds the referrals without it
    conditions = (PLAN_UNSENT, Referral.created_at < now - dt.timedelta(days=days))
    total = session.scalar(select(func.count()).select_from(
        select(Referral.id).where(*conditions).subquery()))
    rows = session.execute(
        _listed().where(*conditions).order_by(Referral.created_at, Referral.id).limit(limit)).all()
    return rows, total


def practices(session):
    return session.execute(select(Practice.id, Practice.name).order_by(Practice.name)).all()


def full_name(family_name: str | None, given_name: str | None) -> str:
    """The patient's name as the staff pages show it: "Family, Given"."""
    return f"{family_name or ''}, {given_name or ''}".strip(", ")


def patient_name(referral: Referral) -> str:
    patient = (referral.payload or {}).get("patient", {})
    return full_name(patient.get("family_name"), patient.get("given_name"))


def patient_names(session, referral_ids) -> dict[str, str]:
    """{referral id: the patient's name} of these referrals (read without their
    payloads)."""
    if not referral_ids:
        return {}
    return {rid: full_name(family, given) for rid, family, given in session.execute(
        select(Referral.id, FAMILY_NAME, GIVEN_NAME)
        .where(Referral.id.in_(referral_ids)))}
