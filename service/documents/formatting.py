"""How values read on paper: dates in the clinic's zone, phone numbers, doses, unknowns."""

from __future__ import annotations

import datetime as dt
from typing import Any

import phonenumbers

from refflow.documents.facts import UNKNOWN
from refflow.documents.facts import yes_no as yes_no  # the documents' formatting, one place


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def local(moment: dt.datetime | None, zone) -> dt.datetime:
    """``moment`` (naive = UTC) in the clinic's zone; ``None`` means now."""
    moment = moment or now_utc()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(zone)


def long_date(day: dt.date | str | None) -> str:
    """'Wednesday, November 25, 2026' style (no leading zero on the day)."""
    if day is None:
        return UNKNOWN
    if isinstance(day, str):
        try:
            day = dt.date.fromisoformat(day)
        except ValueError:
            return day
    return f"{day:%A, %B} {day.day}, {day.year}"


def date_time(moment: dt.datetime) -> str:
    """'2026-11-24 20:54 CST' (already converted to the clinic's zone)."""
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or ''}".strip()


def phone(value: str | None) -> str:
    """An E.164 number written for people: '+1 763-555-0198'."""
    if not value:
        return UNKNOWN
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def known(value: Any, unit: str = "") -> str:
    if value is None or value == "":
        return UNKNOWN
    return f"{value}{unit}"


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = str(text).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?…:" else text + "."


def dose_text(dose: dict | None) -> str:
    """The dose as the engine wrote it, or built from its numbers."""
    if not dose:
        return "as your therapist showed you"
    if dose.get("text"):
        return str(dose["text"])
    parts = []
    if dose.get("sets") and dose.get("reps"):
        parts.append(f"{dose['sets']} sets of {dose['reps']}")
    elif dose.get("reps"):
        parts.append(f"{dose['reps']} times")
    elif dose.get("sets"):
        parts.append(f"{dose['sets']} times")
    if dose.get("hold_seconds"):
        parts.append(f"hold {dose['hold_seconds']} seconds")
    if dose.get("minutes"):
        parts.append(f"{dose['minutes']} minutes")
    return ", ".join(parts) or "as your therapist showed you"


def days_text(days: int | None) -> str:
    if not days:
        return "as your therapist advises"
    if days >= 7:
        return "every day"
    return "1 day a week" if days == 1 else f"{days} days a week"


def weeks_text(week_from: int | None, week_to: int | None) -> str:
    if week_from is None:
        return ""
    if week_to is None:
        return f"Week {week_from} onwards"
    if week_to == week_from:
        return f"Week {week_from}"
    return f"Weeks {week_from}–{week_to}"

