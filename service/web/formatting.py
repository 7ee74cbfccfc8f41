"""How the pages show dates, ages, states and actors (dates in the clinic's time zone)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

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
                   "retrying": "Retrying", "failed": "Failed"}
CHANNEL_LABELS = {"fax": "Fax to referrer", "email": "Email to patient",
                  "pdf": "Chart PDF"}
DOCUMENT_LABELS = {"handout.pdf": "Patient handout (PDF)",
                   "summary.pdf": "Referrer summary (PDF)",
                   "fax.tiff": "Fax (TIFF)"}
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


def local_time(value: dt.datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
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


def init_app(app, settings) -> None:
    tz = ZoneInfo(settings.clinic_timezone)

    app.add_template_filter(lambda v, fmt="%Y-%m-%d %H:%M %Z": local_time(v, tz, fmt), "local")
    app.add_template_filter(duration, "duration")
    app.add_template_filter(lambda s: STATE_LABELS.get(s, s), "state")
    app.add_template_filter(lambda s: DELIVERY_LABELS.get(s, s), "delivery_state")
    app.add_template_filter(lambda s: CHANNEL_LABELS.get(s, s), "channel")
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
