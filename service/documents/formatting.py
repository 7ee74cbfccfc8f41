"""How values read on paper: dates in the clinic's zone and locale, phone numbers,
doses, unknowns.

Dates follow the clinic's locale (``ClinicInfo.locale``, e.g. "en_US" or
"en_GB") through Babel's CLDR formats: "April 10, 1956" in the US,
"10 April 1956" in the UK."""

from __future__ import annotations

import datetime as dt
from typing import Any

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time

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


DEFAULT_LOCALE = "en_US"


def _day(day: dt.date | str | None, form: str, locale: str) -> str:
    if day is None:
        return UNKNOWN
    if isinstance(day, str):
        try:
            day = dt.date.fromisoformat(day[:10])
        except ValueError:
            return day
    return _spaces(format_date(day, form, locale=locale or DEFAULT_LOCALE))


def _spaces(text: str) -> str:
    """CLDR's narrow no-break spaces ("8:54\u202fPM") as plain spaces: faxes and
    text search read them as words apart."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def long_date(day: dt.date | str | None, locale: str = DEFAULT_LOCALE) -> str:
    """'Wednesday, November 25, 2026' (en_US) or 'Wednesday, 25 November 2026' (en_GB)."""
    return _day(day, "full", locale)


def date_text(day: dt.date | str | None, locale: str = DEFAULT_LOCALE) -> str:
    """'April 10, 1956' (en_US) or '10 April 1956' (en_GB); an ISO date string
    is read as one; 'not known' for None."""
    return _day(day, "long", locale)


def time_text(moment: dt.datetime, locale: str = DEFAULT_LOCALE) -> str:
    """'8:54 PM CST' (en_US) or '20:54 CST' (en_GB), already in the clinic's zone."""
    clock = format_time(moment, "short", locale=locale or DEFAULT_LOCALE)
    return _spaces(f"{clock} {moment.tzname() or ''}".strip())


def date_time(moment: dt.datetime, locale: str = DEFAULT_LOCALE) -> str:
    """'Nov 24, 2026, 8:54 PM CST' (en_US) or '24 Nov 2026, 20:54 CST' (en_GB),
    already converted to the clinic's zone."""
    day = _spaces(format_date(moment, "medium", locale=locale or DEFAULT_LOCALE))
    return f"{day}, {time_text(moment, locale)}"


def clinic_region(locale: str | None) -> str:
    """The clinic's country (``en_GB`` → ``GB``) from its locale; ``US`` when the
    locale names none."""
    try:
        territory = Locale.parse((locale or DEFAULT_LOCALE).replace("-", "_")).territory
    except (ValueError, UnknownLocaleError):
        territory = None
    return territory or "US"


def phone_text(number: str | None, region: str) -> str:
    """A phone or fax number as people in the clinic write it: the national format
    for a number of the clinic's country (``(763) 555-0198``), the international one
    for any other (``+44 20 7946 0018``), and as given when it is not a phone
    number (an email address, a fax machine's name); '' when absent. The one way
    numbers are written, on paper and on the pages."""
    number = (number or "").strip()
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_valid_number(parsed):
        return number
    same = phonenumbers.region_code_for_number(parsed) == region
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL if same
                                      else phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone(value: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """A number on paper as the clinic writes it ('(763) 555-0198' for a US
    clinic); 'not known' when absent."""
    return phone_text(value, clinic_region(locale)) or UNKNOWN


def known(value: Any, unit: str = "") -> str:
    if value is None or value == "":
        return UNKNOWN
    return f"{value}{unit}"


def clip(text: str, length: int) -> str:
    """``text`` on one line, cut to ``length`` characters with an ellipsis (a
    200-character name must not push a one-page letter onto a second page)."""
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[:length - 1].rstrip() + "…"


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

