"""The plan's exercises in the words the patient reads, in their language:
the cards of the printed handout (``documents.handout``) and of the
patient's page (``web.patient``) are made from the same rows, so the two
never say different things. No layout here (and no ReportLab): the web
process imports it without the renderers.
"""

from __future__ import annotations

from refflow.documents import formatting as fmt
from refflow.documents import translations as tr
from refflow.documents.translations import N_, _

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def handout_language(plan: dict) -> str:
    """The language the plan's engine chose for the patient (``plan["language"]``),
    if the handout can be written in it: its catalogue ships and every
    exercise carries its texts in it; else English."""
    language = plan.get("language") or tr.SOURCE_LANGUAGE
    if language == tr.SOURCE_LANGUAGE or not tr.available(language):
        return tr.SOURCE_LANGUAGE
    if any(language not in (ex.get("translations") or {}) for ex in plan.get("exercises") or []):
        return tr.SOURCE_LANGUAGE
    return language


UNREVIEWED_NOTICE = N_("This translation has not yet been checked by a native speaker. If "
                       "anything is unclear, please call us.")
UNREVIEWED_ENGLISH = ("This translation has not yet been checked by a native speaker. If "
                      "anything is unclear, please call us.")


def unreviewed_translation(plan: dict) -> bool:
    """Whether the texts are in a translation not yet reviewed (the current
    language's catalogue or the plan's exercise texts): the handout and the
    patient's page say so."""
    language = tr.current_language()
    return language != tr.SOURCE_LANGUAGE and not (plan.get("translation_reviewed") is True
                                                   and tr.reviewed(language))


def in_language(exercises: list[dict]) -> list[dict]:
    """The plan's exercises with their texts in the current language (the
    plan's ``translations``; English as they are)."""
    language = tr.current_language()
    if language == tr.SOURCE_LANGUAGE:
        return exercises
    return [{**ex, **ex["translations"][language]} for ex in exercises]


def start_weeks(plan: dict) -> dict[str, int]:
    """The week each exercise that starts in a later stage starts in (by id):
    the first week of its ``phase_from``. Exercises of the first stage are
    not listed."""
    first_week = {ph.get("phase"): ph.get("week_from") for ph in plan.get("phases") or []}
    starts = {}
    for ex in plan.get("exercises") or []:
        phase = ex.get("phase_from") or 1
        week = first_week.get(phase)
        if phase > 1 and week:
            starts[ex.get("id")] = week
    return starts


def exercise_days(schedule: list[dict]) -> dict[str, list[str]]:
    """The days of the week each exercise is scheduled on (by id)."""
    days: dict[str, list[str]] = {}
    for day in schedule:
        for ex_id in day.get("exercises") or []:
            days.setdefault(ex_id, []).append(day.get("day") or "")
    return days


def days_words(days: list[str]) -> str:
    """"every day", "Monday and Thursday", "every day except Thursday and Sunday"."""
    if len(days) >= 7:
        return _("every day")
    if len(days) >= 5:
        return _("every day except {days}").format(days=and_days([d for d in DAYS if d not in days]))
    return and_days(days)


def and_days(words: list[str]) -> str:
    """Day names joined in the current language: "Monday and Thursday"."""
    return tr.and_list([tr.day_name(w, "en_US") for w in words])  # day names in the language


def exercise_rows(ex: dict, start_week: int | None = None,
                   days: list[str] | None = None) -> list[tuple[str, str]]:
    """The exercise card as (label, text) rows; a label "1." … is a numbered step.
    "You need" lists only the equipment the steps do not already name."""
    english = tr.current_language() == tr.SOURCE_LANGUAGE
    when = days_words(days) if days else (
        fmt.days_text(ex.get("days_per_week")) if english else tr.days_words(ex.get("days_per_week")))
    if start_week:
        when += _(", from week {n}").format(n=start_week)
    dose = fmt.dose_text(ex.get("dose")) if english else (
        tr.dose_words(ex.get("dose")) or fmt.dose_text(ex.get("dose")))
    rows = [(_("Do:"), fmt.sentence(f"{dose}, {when}"))]
    steps = " ".join(ex.get("instructions") or []).lower()
    equipment = [item.strip() for item in (ex.get("equipment") or "").replace(";", ",").split(",")]
    needed = [item for item in equipment if item and item.lower() not in steps
              and item.lower() not in {"none", "no equipment", _("none")}]
    if needed:  # what the steps do not name already
        rows.append((_("You need:"), fmt.sentence(", ".join(needed))))
    for i, step in enumerate(ex.get("instructions") or [], 1):
        rows.append((f"{i}.", fmt.sentence(step)))
    for label, key in ((_("Stay safe:"), "safety_cue"), (_("When easy:"), "progression"),
                       (_("If too hard:"), "regression")):
        if ex.get(key):
            rows.append((label, fmt.sentence(ex[key])))
    return rows
