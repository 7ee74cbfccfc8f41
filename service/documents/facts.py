"""The referral's clinical facts as text, the same on the staff page and on the
referrer's summary: every fact a plan rule reads, and "not known" where the
referral does not say (never nothing). Values are the referral's JSON (ISO
dates); no framework, no renderer."""

from __future__ import annotations

UNKNOWN = "not known"


def yes_no(value: bool | None) -> str:
    if value is None:
        return UNKNOWN
    return "yes" if value else "no"


def fractures_text(fractures: list[dict] | None) -> str:
    """'vertebral T12, 2026-05-01, low trauma'; several joined with '; ' (the
    referral's JSON: ISO dates). None: 'not known'; []: 'none'."""
    if fractures is None:
        return UNKNOWN
    if not fractures:
        return "none"
    parts = []
    for f in fractures:
        text = str(f.get("site") or "site not known")
        if f.get("level"):
            text += f" {f['level']}"
        text += f", {f['date']}" if f.get("date") else ", date not known"
        low = f.get("low_trauma")
        text += ", " + {True: "low trauma", False: "not low trauma"}.get(low, "trauma not known")
        parts.append(text)
    return "; ".join(parts)


def medications_text(medications: list | None) -> str:
    """'alendronate; prednisone 10 mg/day since 2025-10-01' (the referral's JSON:
    names, or objects with a dose and a start). None: 'not known'; []: 'none'."""
    if medications is None:
        return UNKNOWN
    if not medications:
        return "none"
    parts = []
    for m in medications:
        if isinstance(m, str):
            parts.append(m)
            continue
        text = str(m.get("name", ""))
        if m.get("dose_mg_per_day") is not None:
            text += f" {m['dose_mg_per_day']:g} mg/day"
        if m.get("route"):
            text += f" ({m['route']})"
        if m.get("since"):
            text += f" since {m['since']}"
        courses = m.get("courses") or []
        if courses:
            text += ", courses: " + ", ".join(
                f"{c.get('days')} days from {c.get('start')}"
                + (f" at {c['dose_mg_per_day']:g} mg/day" if c.get("dose_mg_per_day") is not None else "")
                for c in courses)
        elif m.get("course"):
            text += f", {m['course']}"
        parts.append(text)
    return "; ".join(parts)


def conditions_text(conditions: list | None) -> str:
    """'hypertension; pulmonary embolism (resolved, since 2015-03-01)' (the
    referral's JSON: strings, or objects with a status and a date). None: 'not
    known'; []: 'none'."""
    if conditions is None:
        return UNKNOWN
    if not conditions:
        return "none"
    parts = []
    for c in conditions:
        if isinstance(c, str):
            parts.append(c)
            continue
        text = " ".join(str(c[k]) for k in ("text", "code") if c.get(k))
        said = [str(c["status"])] if c.get("status") else []
        if c.get("since"):
            said.append(f"since {c['since']}")
        parts.append(text + (f" ({', '.join(said)})" if said else ""))
    return "; ".join(parts)
