"""The patient's page: a link per released plan, opened with the patient's date
of birth, where exercise sessions (with an optional pain and difficulty
rating) are logged; and what staff read of it (adherence, pain trend, who
stopped logging or reports rising pain).

The link's URL holds a random token (256 bits); only its SHA-256 is stored.
A link expires (``REFFLOW_PATIENT_LINK_DAYS``) and staff can revoke it; a
referral has at most one link in force (a new one revokes the old). Nothing
here knows HTTP: ``refflow.web.patient`` calls it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update

from refflow.db.models import PatientLink, PatientSession, Referral, utcnow
from refflow.documents.translations import N_

DIFFICULTIES = ("easy", "ok", "hard")
NOTE_MAX = 500
STOPPED_DAYS = 14  # no session for this long after having logged: "stopped logging"
RISING_BY = 2.0  # the last three ratings' mean above the first three's by this much
SUMMARY_WEEKS = 8


class PatientPageError(ValueError):
    """A logged session that cannot be kept; ``message`` says why, for the
    patient (an English msgid of the patient's catalogue: the page shows it
    translated)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/p/{token}"


def make_link(session, referral_id: str, *, days: int, token: str | None = None,
              actor: str = "worker", now: dt.datetime | None = None) -> tuple[PatientLink, str]:
    """A new link for the referral (any link still in force is revoked);
    returns the row and the token (shown once: only its hash is kept)."""
    now = now or utcnow()
    token = token or new_token()
    session.execute(update(PatientLink).where(
        PatientLink.referral_id == referral_id, PatientLink.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=actor))
    link = PatientLink(referral_id=referral_id, token_hash=hash_token(token), created_at=now,
                       expires_at=now + dt.timedelta(days=days))
    session.add(link)
    session.flush()
    return link, token


def revoke(session, referral_id: str, *, actor: str, now: dt.datetime | None = None) -> int:
    """Revoke the referral's links in force; returns how many were."""
    result = session.execute(update(PatientLink).where(
        PatientLink.referral_id == referral_id, PatientLink.revoked_at.is_(None))
        .values(revoked_at=now or utcnow(), revoked_by=actor))
    return result.rowcount or 0


def current_link(session, referral_id: str) -> PatientLink | None:
    """The referral's newest link (in force or not)."""
    return session.scalars(select(PatientLink).where(PatientLink.referral_id == referral_id)
                           .order_by(PatientLink.created_at.desc()).limit(1)).first()


@dataclass(frozen=True)
class Found:
    """A token looked up: ``state`` is ``open``, ``expired``, ``revoked`` or ``unknown``."""

    state: str
    link: PatientLink | None = None


def find(session, token: str, now: dt.datetime | None = None) -> Found:
    if not token or len(token) > 100:
        return Found("unknown")
    link = session.scalar(select(PatientLink).where(PatientLink.token_hash == hash_token(token)))
    if link is None:
        return Found("unknown")
    if link.revoked_at is not None:
        return Found("revoked", link)
    if (now or utcnow()) >= link.expires_at:
        return Found("expired", link)
    return Found("open", link)


def parse_date(text: str) -> dt.date | None:
    """A date of birth as typed: ISO (YYYY-MM-DD, what a date input sends) or
    US MM/DD/YYYY."""
    text = (text or "").strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def birth_date_matches(session, link: PatientLink, typed: str) -> bool:
    """Whether ``typed`` is the patient's date of birth (as the referral has it)."""
    payload = session.scalar(select(Referral.payload).where(Referral.id == link.referral_id))
    given = parse_date(typed)
    stored = str((payload or {}).get("patient", {}).get("birth_date") or "")
    return given is not None and hmac.compare_digest(given.isoformat(), stored)


def log_session(session, link: PatientLink, *, done_on: dt.date, today: dt.date,
                pain: str | int | None = None, difficulty: str | None = None,
                note: str | None = None) -> PatientSession:
    """Keep one session; raises PatientPageError with a patient-facing reason."""
    if done_on > today:
        raise PatientPageError(N_("That date is in the future."))
    if done_on < today - dt.timedelta(days=31):
        raise PatientPageError(N_("Sessions can be logged for the last month only."))
    if pain in ("", None):
        pain_value = None
    else:
        try:
            pain_value = int(pain)
        except (TypeError, ValueError):
            raise PatientPageError(N_("Pain is a number from 0 to 10.")) from None
        if not 0 <= pain_value <= 10:
            raise PatientPageError(N_("Pain is a number from 0 to 10."))
    if difficulty in ("", None):
        difficulty = None
    elif difficulty not in DIFFICULTIES:
        raise PatientPageError(N_("Choose easy, OK or hard."))
    note = " ".join((note or "").split())[:NOTE_MAX] or None
    row = PatientSession(referral_id=link.referral_id, link_id=link.id, done_on=done_on,
                         pain=pain_value, difficulty=difficulty, note=note)
    session.add(row)
    session.flush()
    return row


def sessions(session, referral_id: str, limit: int | None = None) -> list[PatientSession]:
    """The referral's logged sessions, newest first."""
    query = (select(PatientSession).where(PatientSession.referral_id == referral_id)
             .order_by(PatientSession.done_on.desc(), PatientSession.id.desc()))
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def rising_pain(pains: list[int]) -> bool:
    """The last three ratings' mean is at least ``RISING_BY`` above the first
    three's (oldest first; four ratings or more)."""
    if len(pains) < 4:
        return False
    first, last = pains[:3], pains[-3:]
    return sum(last) / 3 - sum(first) / 3 >= RISING_BY


def summary(session, referral_id: str, today: dt.date, weeks: int = SUMMARY_WEEKS) -> dict:
    """Adherence for staff: sessions per week (the last ``weeks``, oldest
    first), the pain ratings in order, the last session, and the alerts."""
    rows = sorted(sessions(session, referral_id), key=lambda r: (r.done_on, r.id))
    this_week = week_start(today)
    starts = [this_week - dt.timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    counts = {s: 0 for s in starts}
    for r in rows:
        start = week_start(r.done_on)
        if start in counts:
            counts[start] += 1
    pains = [(r.done_on, r.pain) for r in rows if r.pain is not None]
    last = rows[-1].done_on if rows else None
    stopped = last is not None and (today - last).days >= STOPPED_DAYS
    return {
        "total": len(rows),
        "per_week": [(s, counts[s]) for s in starts],
        "pains": pains,
        "last": last,
        "stopped": stopped,
        "rising": rising_pain([p for _, p in pains]),
        "recent": list(reversed(rows[-10:])),
    }


def alerts(session, today: dt.date) -> list[dict]:
    """Patients staff should call: stopped logging (no session for
    ``STOPPED_DAYS`` after having logged) or reporting rising pain. Only
    referrals with a link in force count (a revoked link ended the follow-up)."""
    now = utcnow()
    open_links = select(PatientLink.referral_id).where(PatientLink.revoked_at.is_(None),
                                                       PatientLink.expires_at > now)
    last = dict(session.execute(
        select(PatientSession.referral_id, func.max(PatientSession.done_on))
        .where(PatientSession.referral_id.in_(open_links))
        .group_by(PatientSession.referral_id)).all())
    pains: dict[str, list[int]] = {}
    for rid, pain in session.execute(
            select(PatientSession.referral_id, PatientSession.pain)
            .where(PatientSession.referral_id.in_(list(last)), PatientSession.pain.is_not(None))
            .order_by(PatientSession.done_on, PatientSession.id)):
        pains.setdefault(rid, []).append(pain)
    found = []
    for rid, day in last.items():
        reasons = []
        if (today - day).days >= STOPPED_DAYS:
            reasons.append(f"no session logged since {day.isoformat()}")
        if rising_pain(pains.get(rid, [])):
            reasons.append("pain rising (last ratings " + ", ".join(
                str(p) for p in pains[rid][-3:]) + ")")
        if reasons:
            found.append({"referral_id": rid, "last": day, "reasons": reasons})
    return sorted(found, key=lambda a: a["last"])


def program_start(session, referral_id: str) -> dt.datetime | None:
    """When the plan reached the patient: its first link was made (a new link
    does not start the program again)."""
    return session.scalar(select(func.min(PatientLink.created_at))
                          .where(PatientLink.referral_id == referral_id))


def this_week(plan: dict, since: dt.date, today: dt.date) -> tuple[int, list[dict]]:
    """The program week (1 from the day the link was made) and the plan's
    exercises that apply in it (those of a later stage start in its first week)."""
    week = max(1, (today - since).days // 7 + 1)
    first_week = {ph.get("phase"): ph.get("week_from") for ph in plan.get("phases") or []}
    shown = []
    for ex in plan.get("exercises") or []:
        start = first_week.get(ex.get("phase_from") or 1) or 1
        if start <= week:
            shown.append(ex)
    return week, shown
