"""How the pages show dates, ages, states, actors and phone numbers (dates in the
clinic's time zone; numbers as the documents write them, ``documents.formatting``)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from refflow.documents.facts import (
    UNKNOWN,
    conditions_text,
    fractures_text,
    medications_text,
    yes_no,
)
from refflow.documents.formatting import clinic_region, phone_text
from refflow.documents.names import DECLINE_NAMES

STATE_LABELS = {
    "received": "Received",
    "planning": "Planning",
    "needs_review": "Needs review",
    "planned": "Planned",
    "delivering": "Delivering",
    "completed": "Completed",
    "failed": "Failed",
    "rejected": "Rejected",
    "cancelled": "Cancelled",
}
STATE_HELP = {
    "received": "Accepted; the plan is about to be built.",
    "planning": "The plan is being built.",
    "needs_review": "The plan is held for a clinician to approve or reject.",
    "planned": "The plan is ready; documents are being prepared.",
    "delivering": "Documents are being sent.",
    "completed": "Everything was delivered.",
    "failed": "A delivery failed; staff can correct it and send again.",
    "rejected": "Not accepted (intake rules or a clinician).",
    "cancelled": "Cancelled.",
}
DELIVERY_LABELS = {"pending": "Waiting", "sending": "Sending", "sent": "Sent",
                   "retrying": "Retrying", "failed": "Failed",
                   "in_doubt": "May have been sent", "cancelled": "Cancelled"}
def delivery_title(delivery) -> str:
    """What a delivery is, for staff: its channel, or the letter to the referrer."""
    if delivery.document in DECLINE_NAMES:
        return {"email": "Letter to referrer (email)",
                "fax": "Letter to referrer (fax)"}.get(delivery.channel, "Letter to referrer")
    return CHANNEL_LABELS.get(delivery.channel, delivery.channel)


CHANNEL_LABELS = {"fax": "Fax to referrer", "email": "Email to patient",
                  "pdf": "Chart PDF"}
DOCUMENT_LABELS = {"handout.pdf": "Patient handout (PDF)",
                   "summary.pdf": "Referrer summary (PDF)",
                   "chart.pdf": "Chart record (PDF)",
                   "fax.tiff": "Fax (TIFF)",
                   "decline.pdf": "Letter: referral not accepted (PDF)",
                   "decline.tiff": "Fax: referral not accepted (TIFF)"}
BONE_CATEGORIES = {
    "A": "A — osteopenia level",
    "B": "B — osteoporosis level",
    "C": "C — vertebral or multiple fractures, very high risk",
}
DECISIONS = {
    "release": "Released to the patient",
    "review": "Held for clinician review",
    "do_not_exercise": "Do not exercise yet — the referrer is asked to see the patient first",
}


# The clinic's way of writing a day; times on the pages are this plus the clock.
DATE_FORMAT = "%Y-%m-%d"
TIME_FORMAT = f"{DATE_FORMAT} %H:%M %Z"


def local_time(value: dt.datetime | None, tz: ZoneInfo, fmt: str = TIME_FORMAT) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(tz).strftime(fmt)


def duration(seconds: float | None) -> str:
    """A short human age: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds is None:
        return "—"
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


# -- the referral's clinical facts, as the staff page shows them -------------------
# The payload is the referral's JSON (dates are ISO strings). Every fact a plan
# rule reads is shown, and an absent answer reads "not known", never nothing.

def day(value) -> str:
    """A day (a date or an ISO string) in the clinic's format; '' when absent."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime(DATE_FORMAT)


def known(value) -> str:
    """A value as written, or 'not known' when absent (0 and False are answers)."""
    if value is None or value == "":
        return UNKNOWN
    return _number(value)


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:g}"


def pain_text(pain) -> str:
    """'3/10, back, since 2026-04-20, not after minor trauma'."""
    if not pain:
        return UNKNOWN
    text = f"{pain.get('score', '?')}/10"
    if pain.get("site"):
        text += f", {pain['site']}"
    text += f", since {day(pain['since'])}" if pain.get("since") else ", since not known"
    trauma = pain.get("after_minor_trauma")
    text += ", " + {True: "after minor trauma",
                    False: "not after minor trauma"}.get(trauma, "after minor trauma not known")
    return text


def blood_pressure_text(bp) -> str:
    if not bp:
        return UNKNOWN
    return f"{bp.get('systolic')}/{bp.get('diastolic')} mmHg"


def diagnosis_text(diagnosis) -> str:
    """'M81.0, M85.80 — osteoporosis', a code or a text alone without a stray
    dash, or 'not known'."""
    diagnosis = diagnosis or {}
    parts = [", ".join(c for c in diagnosis.get("codes") or () if c),
             (diagnosis.get("text") or "").strip()]
    return " — ".join(p for p in parts if p) or UNKNOWN


def init_app(app, settings) -> None:
    tz = ZoneInfo(settings.clinic_timezone)
    region = clinic_region(settings.clinic_locale)

    app.add_template_filter(lambda v, fmt=TIME_FORMAT: local_time(v, tz, fmt), "local")
    app.add_template_filter(day, "day")
    app.add_template_filter(lambda v: phone_text(v, region), "phone")
    app.add_template_filter(diagnosis_text, "diagnosis")
    app.add_template_filter(yes_no, "yes_no")
    app.add_template_filter(known, "known")
    app.add_template_filter(fractures_text, "fractures")
    app.add_template_filter(medications_text, "medications")
    app.add_template_filter(conditions_text, "conditions")
    app.add_template_filter(pain_text, "pain")
    app.add_template_filter(blood_pressure_text, "blood_pressure")
    app.add_template_filter(duration, "duration")
    app.add_template_filter(lambda s: STATE_LABELS.get(s, s), "state")
    app.add_template_filter(lambda s: DELIVERY_LABELS.get(s, s), "delivery_state")
    app.add_template_filter(lambda s: CHANNEL_LABELS.get(s, s), "channel")
    app.add_template_filter(delivery_title, "delivery_title")
    app.add_template_filter(lambda s: DOCUMENT_LABELS.get(s, s), "document")

    @app.context_processor
    def _globals() -> dict:
        return {
            "clinic_name": settings.clinic_name,
            "clinic_timezone": settings.clinic_timezone,
            "STATE_LABELS": STATE_LABELS,
            "STATE_HELP": STATE_HELP,
            "BONE_CATEGORIES": BONE_CATEGORIES,
            "DECISIONS": DECISIONS,
        }
