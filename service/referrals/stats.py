"""The numbers staff see on the Reports page and in ``GET /api/v1/stats``.

Every figure is about one *cohort*: the referrals **received** (created) in
a period of clinic days, ``[from 00:00, to + 1 day 00:00)`` in the clinic's
time zone, optionally of one practice. The queries are bounded by that
period on ``referrals.created_at`` and ``deliveries.referral_created_at``
(both indexed), and read the times each referral keeps as it moves
(migration 0014) rather than its timeline, so they cost what the period
holds, never the whole history; a period is at most ``MAX_DAYS`` long.

Definitions (the JSON's field names):

- ``received``: referrals created in the period.
- ``released``: of those, how many had their plan released — the referral
  reached ``planned`` (the engine's plan went out by itself, or a clinician
  approved a held one); a do-not-exercise plan counts (it goes to the
  referrer and the chart).
- ``held``: how many were held for a clinician — reached ``needs_review``
  at least once.
- ``rejected``, ``completed``, ``failed``, ``cancelled``: how many have that
  status now (rejected, completed and cancelled are final); ``in_progress``:
  the rest (received, planning, needs_review, planned, delivering).
- ``receipt_to_release``: from created to the first ``planned``.
- ``receipt_to_referrer_notified``: from created to the first delivery to the
  referring office that was sent (the plan summary, by fax or as the PDF a
  routing plugin sends, or the "referral not accepted" letter by fax or
  email: documents ``refflow.documents.names.FOR_THE_REFERRER``, to a
  target — a delivery to no one, like the chart copy, does not count).
- ``held_in_review``: per held referral, the time spent in ``needs_review``
  (every stay added up); a referral still held is left out of the times and
  counted as ``still_held``.
  Each time gives ``count``, ``median_hours`` and ``p90_hours`` (the 90th
  percentile, interpolated like PostgreSQL's ``percentile_cont``).
- ``deliveries``: the cohort's deliveries by channel and status (``sent``,
  ``failed``, ``in_doubt``, ``cancelled``, or still open: ``pending``,
  ``sending``, ``retrying``).
- ``top_practices``: the practices that sent the most of the cohort.
- ``practices_falling_off``: practices that sent referrals in the previous
  period of the same length but none in this one (``stopped``), or at least
  ``FALL_MIN_PREVIOUS`` before and at most half as many now.

No patient data: counts, times, channel names and practice names only.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from refflow.db.durations import seconds_between
from refflow.db.models import Delivery, Practice, Referral
from refflow.referrals import states

DEFAULT_DAYS = 30
MAX_DAYS = 366
# dates a period may name (its previous period and its end stay valid dates)
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(9000, 12, 31)
TOP_PRACTICES = 10
FALL_MIN_PREVIOUS = 10  # "down sharply" only counts for a practice that sent this many before
COUNTS = ("received", "released", "held", "rejected", "completed", "failed", "cancelled",
          "in_progress")
TIMES = ("receipt_to_release", "receipt_to_referrer_notified", "held_in_review")


class InvalidPeriod(ValueError):
    """A ``from``/``to`` that is not a date, or a period that is backwards or too long."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Period:
    """Clinic days ``first``..``last`` (both included) in ``timezone``."""

    first: dt.date
    last: dt.date
    timezone: str

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time(), ZoneInfo(self.timezone))

    @property
    def end(self) -> dt.datetime:
        """The first instant after the period."""
        return dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(),
                                   ZoneInfo(self.timezone))

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.first - dt.timedelta(days=self.days),
                      self.first - dt.timedelta(days=1), self.timezone)

    def as_json(self) -> dict:
        return {"from": self.first.isoformat(), "to": self.last.isoformat(), "days": self.days,
                "timezone": self.timezone, "start": self.start.isoformat(),
                "end": self.end.isoformat()}


def period_from(first: str | None, last: str | None, *, today: dt.date,
                timezone: str) -> Period:
    """The period ``from``..``to`` (ISO dates, both included); ``to`` defaults to
    today, ``from`` to ``DEFAULT_DAYS`` days ending on ``to``."""
    last_day = _date("to", last) if last else today
    first_day = _date("from", first) if first else last_day - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise InvalidPeriod("from", "from must be on or before to")
    period = Period(first_day, last_day, timezone)
    if period.days > MAX_DAYS:
        raise InvalidPeriod("to", f"the period may be at most {MAX_DAYS} days long "
                                  f"(it is {period.days})")
    return period


def _date(parameter: str, text: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidPeriod(parameter, f"{parameter} must be a date written YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidPeriod(parameter, f"{parameter} must be between {FIRST_DAY} and {LAST_DAY}")
    return day


def summary(seconds: list[float]) -> dict:
    """``count``, ``median_hours`` and ``p90_hours`` of durations in seconds."""
    if not seconds:
        return {"count": 0, "median_hours": None, "p90_hours": None}
    if len(seconds) == 1:
        median = p90 = seconds[0]
    else:
        deciles = statistics.quantiles(seconds, n=10, method="inclusive")
        median, p90 = deciles[4], deciles[8]
    return {"count": len(seconds), "median_hours": round(median / 3600, 2),
            "p90_hours": round(p90 / 3600, 2)}


def report(session: Session, period: Period, practice_id: str | None = None) -> dict:
    """Every figure of the cohort received in ``period`` (of ``practice_id``),
    from the figures each referral keeps as it moves (``Referral.released_at``
    and the rest) and each delivery's copy of its referral's receipt time."""
    received = [Referral.created_at >= period.start, Referral.created_at < period.end]
    if practice_id is not None:
        received.append(Referral.practice_id == practice_id)
    rows = session.execute(
        select(Referral.status, seconds_between(Referral.created_at, Referral.released_at),
               seconds_between(Referral.created_at, Referral.referrer_notified_at),
               Referral.review_started_at.is_not(None), Referral.review_seconds)
        .where(*received)).all()
    by_status = Counter(status for status, *_ in rows)
    released = [seconds for _, seconds, _, _, _ in rows if seconds is not None]
    notified = [seconds for _, _, seconds, _, _ in rows if seconds is not None]
    held = [(status, seconds) for status, _, _, was_held, seconds in rows if was_held]
    still_held = sum(1 for status, _ in held if status == states.NEEDS_REVIEW)
    review = [seconds for status, seconds in held
              if status != states.NEEDS_REVIEW and seconds is not None]

    of_cohort = [Delivery.referral_created_at >= period.start,
                 Delivery.referral_created_at < period.end]
    if practice_id is not None:
        of_cohort.append(Delivery.referral_id.in_(select(Referral.id).where(*received)))
    deliveries = session.execute(
        select(Delivery.channel, Delivery.status, func.count()).where(*of_cohort)
        .group_by(Delivery.channel, Delivery.status)
        .order_by(Delivery.channel, Delivery.status)).all()

    counts = {
        "received": len(rows),
        "released": len(released),
        "held": len(held),
        "rejected": by_status[states.REJECTED],
        "completed": by_status[states.COMPLETED],
        "failed": by_status[states.FAILED],
        "cancelled": by_status[states.CANCELLED],
    }
    counts["in_progress"] = counts["received"] - sum(
        by_status[s] for s in (states.REJECTED, states.COMPLETED, states.FAILED,
                               states.CANCELLED))
    return {
        "period": period.as_json(),
        "previous_period": period.previous().as_json(),
        "practice": _practice(session, practice_id),
        "counts": counts,
        "times": {
            "receipt_to_release": summary(released),
            "receipt_to_referrer_notified": summary(notified),
            "held_in_review": {**summary(review), "still_held": still_held},
        },
        "deliveries": [{"channel": channel, "status": status, "count": count}
                       for channel, status, count in deliveries],
        **_practices(session, period, practice_id),
    }


def _practice(session: Session, practice_id: str | None) -> dict | None:
    if practice_id is None:
        return None
    name = session.scalar(select(Practice.name).where(Practice.id == practice_id))
    return {"id": practice_id, "name": name}


def _practices(session: Session, period: Period, practice_id: str | None) -> dict:
    """The top practices of the period and those whose referrals stopped coming
    (against the previous period of the same length)."""
    previous = period.previous()
    now = Referral.created_at >= period.start
    where = [Referral.created_at >= previous.start, Referral.created_at < period.end]
    if practice_id is not None:
        where.append(Referral.practice_id == practice_id)
    rows = session.execute(
        select(Referral.practice_id, func.sum(case((now, 1), else_=0)),
               func.sum(case((now, 0), else_=1)))
        .where(*where).group_by(Referral.practice_id)).all()
    counts = {pid: (int(current), int(before)) for pid, current, before in rows}
    top = sorted((pid for pid, (current, _) in counts.items() if current),
                 key=lambda pid: (-counts[pid][0], pid))[:TOP_PRACTICES]
    falling = [pid for pid, (current, before) in counts.items()
               if before and (current == 0 or (before >= FALL_MIN_PREVIOUS
                                               and current * 2 <= before))]
    names = dict(session.execute(select(Practice.id, Practice.name)
                                 .where(Practice.id.in_(top + falling))).all()) if counts else {}
    falling.sort(key=lambda pid: (counts[pid][0] / counts[pid][1], -counts[pid][1],
                                  names.get(pid) or ""))
    return {
        "top_practices": [{"id": pid, "name": names.get(pid), "referrals": counts[pid][0]}
                          for pid in top],
        "practices_falling_off": [
            {"id": pid, "name": names.get(pid), "referrals": counts[pid][0],
             "previous_referrals": counts[pid][1], "stopped": counts[pid][0] == 0}
            for pid in falling],
    }


def csv_rows(body: dict) -> list[tuple[str, str, str, object]]:
    """The report as long-format rows ``(section, item, measure, value)``: one
    table a spreadsheet opens, filterable by section."""
    rows: list[tuple[str, str, str, object]] = []
    for key in ("from", "to", "days", "timezone"):
        rows.append(("period", "", key, body["period"][key]))
    if body["practice"]:
        rows.append(("period", "", "practice", body["practice"]["name"]))
    rows += [("referrals", key, "count", body["counts"][key]) for key in COUNTS]
    for name in TIMES:
        for measure, value in body["times"][name].items():
            rows.append(("times", name, measure, "" if value is None else value))
    rows += [("deliveries", f"{d['channel']} {d['status']}", "count", d["count"])
             for d in body["deliveries"]]
    rows += [("top_practices", p["name"], "referrals", p["referrals"])
             for p in body["top_practices"]]
    for p in body["practices_falling_off"]:
        rows.append(("practices_falling_off", p["name"], "referrals", p["referrals"]))
        rows.append(("practices_falling_off", p["name"], "previous_referrals",
                     p["previous_referrals"]))
    return rows
