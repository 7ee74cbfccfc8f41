"""The chart record: the clinic's full record of a referral — the referral's
facts, every flag with its rule, the rules applied with their evidence, the
exercises with their doses and what the rules excluded. (The referring doctor
gets the one-page summary, ``summary.py``, instead.)

Written for a clinician, printed or filed: 10.5 pt and larger, black on white,
no grey fills, thin black rules. Every optional referral field that is absent
is printed as "not known" (which is not the same as "none").
"""

from __future__ import annotations

import datetime as dt

from refflow.documents import facts
from refflow.documents import formatting as fmt
from refflow.documents.clinic import ClinicInfo
from refflow.documents.fonts import BOLD, REGULAR
from refflow.documents.layout import Flow, Style
from refflow.documents.letterhead import draw_letterhead

BODY = Style(REGULAR, 10.5, 13.5)
BOLD_BODY = Style(BOLD, 10.5, 13.5)
TITLE = Style(BOLD, 17, 21)
H1 = Style(BOLD, 12.5, 16)
DECISION = Style(BOLD, 12.5, 16)

DECISIONS = {
    "release": "RELEASED – the plan goes to the patient",
    "review": "HELD FOR REVIEW – a clinician must approve the plan before the patient gets it",
    "do_not_exercise": "DO NOT EXERCISE – please see the patient before any exercise starts",
}
BONE_CATEGORY = {
    "A": "A – osteopenia-level risk",
    "B": "B – osteoporosis-level risk",
    "C": "C – vertebral or multiple fractures / very high risk",
}
LABEL = 150


def render_chart(
    referral,
    plan: dict,
    clinic: ClinicInfo,
    *,
    paper: str = "letter",
    generated_at: dt.datetime | None = None,
) -> bytes:
    """The chart record PDF (bytes)."""
    locale = clinic.locale
    printed = fmt.date_time(fmt.local(generated_at, clinic.zone), locale)

    def decorate(flow: Flow) -> None:
        draw_letterhead(flow, clinic,
                        f"CONFIDENTIAL – protected health information. Printed {printed}.")
        flow.draw_page_of(36, REGULAR, 10)

    flow = Flow(paper=paper, margin=50, top=64, bottom=54,
                title="Exercise referral – chart record", author=clinic.name,
                subject="Referral, exercise plan and its reasoning", decorate=decorate)
    flow.lines(["Exercise referral – chart record"], TITLE)
    flow.space(4)
    decision = plan.get("decision", "review")
    text = DECISIONS.get(decision, str(decision))
    approved = plan.get("approved") or {}
    if decision == "release" and approved.get("at"):
        who = str(approved.get("by") or "a clinician")
        text = (f"RELEASED – approved by {who} on "
                f"{fmt.date_text(str(approved['at']), locale)}; "
                "the plan goes to the patient")
    flow.box("Decision: " + text, [], DECISION, BODY,
             line_width=2, padding=7)
    _versions(flow, plan, locale)

    _patient(flow, referral, plan, locale)
    _clinical(flow, referral, locale)
    _risk(flow, plan)
    _flags(flow, plan)
    _plan_in_brief(flow, plan)
    _rules(flow, plan)
    flow.space(6)
    flow.paragraph(
        f"Plan engine {plan.get('engine_version') or fmt.UNKNOWN}, exercise catalog "
        f"{plan.get('catalog_version') or fmt.UNKNOWN}, plan date "
        f"{fmt.date_text(plan.get('as_of'), locale)}. Questions: {clinic.name}, phone {clinic.phone}, "
        f"fax {clinic.fax}.", BODY)
    return flow.finish()


def _kv(flow: Flow, label: str, value) -> None:
    flow.label_value(label, str(value), BODY, BOLD_BODY, label_width=LABEL)


def _patient(flow: Flow, referral, plan, locale: str) -> None:
    p = referral.patient
    as_of = plan.get("as_of")
    try:
        age_day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    except ValueError:
        age_day = dt.date.today()
    flow.heading("Patient and referral", H1, rule=True, keep_with=60)
    _kv(flow, "Patient", f"{p.family_name}, {p.given_name}")
    _kv(flow, "Born", f"{fmt.date_text(p.birth_date, locale)} (age {referral.age_on(age_day)}), "
                      f"sex {p.sex}")
    _kv(flow, "Patient contact", f"phone {fmt.phone(p.phone, locale)}; "
                                 f"email {p.email or fmt.UNKNOWN}; language {p.preferred_language}")
    r = referral.referrer
    who = r.name or fmt.UNKNOWN
    if r.npi:
        who += f" (NPI {r.npi})"
    _kv(flow, "Referred by", who)
    _kv(flow, "Referrer contact", f"phone {fmt.phone(r.phone, locale)}; "
                                  f"fax {fmt.phone(r.fax, locale)}; email {r.email or fmt.UNKNOWN}")
    _kv(flow, "Referral", f"{referral.external_id or 'no external id'}; urgency {referral.urgency}")
    d = referral.diagnosis
    diag = ", ".join(d.codes) if d.codes else "no code"
    if d.text:
        diag += f" – {d.text}"
    _kv(flow, "Diagnosis", diag)
    if referral.goals:
        _kv(flow, "Goals", "; ".join(referral.goals))
    if referral.notes:
        _kv(flow, "Notes", referral.notes)


def _as_json(items):
    """Fractures or medications as the referral's JSON has them (the shared text)."""
    if items is None:
        return None
    return [i if isinstance(i, str) else i.model_dump(mode="json") for i in items]


def _clinical(flow: Flow, referral, locale: str) -> None:
    c = referral.clinical
    flow.heading("Clinical information", H1, rule=True, keep_with=60)
    frax = c.frax
    frax_text = fmt.UNKNOWN
    if frax is not None:
        frax_text = (f"major osteoporotic {fmt.known(frax.major_osteoporotic, '%')}, "
                     f"hip {fmt.known(frax.hip, '%')}")
    _kv(flow, "T-score", fmt.known(c.t_score))
    _kv(flow, "FRAX (10-year)", frax_text)
    _kv(flow, "Fractures", facts.fractures_text(_as_json(c.fractures)))
    falls = fmt.known(c.falls_last_12_months)
    falls += f"; injurious fall {fmt.yes_no(c.injurious_fall)}; fear of falling " \
             f"{fmt.yes_no(c.fear_of_falling)}"
    _kv(flow, "Falls (12 months)", falls)
    _kv(flow, "Mobility", f"aid {fmt.known(c.mobility_aid)}; can rise from floor "
                          f"{fmt.yes_no(c.can_rise_from_floor)}")
    pain = fmt.UNKNOWN
    if c.pain is not None:
        pain = f"{c.pain.score}/10"
        if c.pain.site:
            pain += f", {c.pain.site}"
        if c.pain.since:
            pain += f", since {fmt.date_text(c.pain.since, locale)}"
        if c.pain.after_minor_trauma is not None:
            pain += f", after minor trauma {fmt.yes_no(c.pain.after_minor_trauma)}"
    _kv(flow, "Pain", pain)
    bp = c.blood_pressure
    _kv(flow, "Blood pressure", f"{bp.systolic}/{bp.diastolic} mmHg" if bp else fmt.UNKNOWN)
    _kv(flow, "Conditions", facts.conditions_text(_as_json(c.conditions)))
    _kv(flow, "Medications", facts.medications_text(_as_json(c.medications)))
    _kv(flow, "Activity", f"{fmt.known(c.activity_level)}; gym access {fmt.yes_no(c.gym_access)}")
    if c.exercise_history:
        _kv(flow, "Exercise history", c.exercise_history)
    if c.contraindications_text:
        _kv(flow, "Contraindications", c.contraindications_text)


def _risk(flow: Flow, plan: dict) -> None:
    risk = plan.get("risk") or {}
    flow.heading("Risk", H1, rule=True, keep_with=50)
    cat = risk.get("bone_category")
    _kv(flow, "Bone category", BONE_CATEGORY.get(cat, fmt.known(cat)))
    falls_high = risk.get("falls_high")
    _kv(flow, "Falls risk", "HIGH" if falls_high else ("not high" if falls_high is False
                                                      else fmt.UNKNOWN))
    reasons = risk.get("reasons") or []
    if reasons:
        flow.paragraph("Reasons:", BOLD_BODY, after=0)
        flow.bullets([fmt.sentence(r) for r in reasons], BODY, after=1)


def _flags(flow: Flow, plan: dict) -> None:
    flags = plan.get("flags") or []
    flow.heading("Flags", H1, rule=True, keep_with=70)
    if not flags:
        flow.paragraph("None.", BODY)
        return
    order = {"needs_review": 0, "caution": 1, "info": 2}
    rows = [["Severity", "Flag", "Message", "Source"]]
    for f in sorted(flags, key=lambda f: order.get(f.get("severity"), 3)):
        severity = str(f.get("severity", ""))
        rows.append(["NEEDS REVIEW" if severity == "needs_review" else severity,
                     str(f.get("code", "")), str(f.get("message", "")), str(f.get("source", ""))])
    flow.table(rows, [1.1, 1.7, 4, 1.3], BODY, BOLD_BODY, padding=3)


def _plan_in_brief(flow: Flow, plan: dict) -> None:
    flow.heading("The plan in brief", H1, rule=True, keep_with=80)
    exercises = plan.get("exercises") or []
    if not exercises:
        flow.paragraph("No exercises prescribed.", BOLD_BODY)
    else:
        rows = [["Exercise", "Category", "Dose", "Days/wk", "Phase"]]
        for ex in exercises:
            rows.append([str(ex.get("name") or ex.get("id")), str(ex.get("category", "")),
                         fmt.dose_text(ex.get("dose")), str(ex.get("days_per_week") or "–"),
                         str(ex.get("phase_from") or 1)])
        flow.table(rows, [3.1, 1.25, 3, 1.05, 0.9], BODY, BOLD_BODY, padding=3)
    targets = plan.get("targets") or {}
    if targets and exercises:
        rows = [["Target", "Days/wk", "Min/wk", "Max effort (0–10) by phase"]]
        for name, t in targets.items():
            effort = t.get("effort_max") or {}
            effort_text = ", ".join(f"phase {k}: {v}" for k, v in sorted(effort.items()))
            rows.append([name.replace("_", " "), fmt.known(t.get("days_per_week")),
                         fmt.known(t.get("minutes_per_week")), effort_text or "–"])
        flow.table(rows, [2, 1, 1, 4], BODY, BOLD_BODY, padding=3)
    phases = plan.get("phases") or []
    if phases and exercises:
        flow.paragraph("Phases:", BOLD_BODY, after=0)
        flow.bullets([
            f"{fmt.weeks_text(p.get('week_from'), p.get('week_to'))}: "
            f"{p.get('name') or 'phase ' + str(p.get('phase'))}"
            + (f" – {p['changes']}" if p.get("changes") else "")
            for p in phases], BODY, after=1)
    precautions = plan.get("precautions") or []
    if precautions:
        flow.paragraph("Precautions given to the patient:", BOLD_BODY, after=0)
        flow.bullets([fmt.sentence(p) for p in precautions], BODY, after=1)
    notes = [n for n in plan.get("patient_notes") or [] if isinstance(n, str) and n.strip()]
    if notes:
        flow.paragraph("Notes to the patient from the clinician:", BOLD_BODY, after=0)
        flow.bullets([fmt.sentence(n) for n in notes], BODY, after=1)
    excluded = plan.get("excluded_exercises") or []
    if excluded:
        by_rule: dict[str, list[str]] = {}
        for e in excluded:
            by_rule.setdefault(str(e.get("rule")), []).append(str(e.get("id")))
        flow.paragraph("Excluded by rules:", BOLD_BODY, after=0)
        flow.bullets([f"{rule}: {', '.join(ids)}" for rule, ids in by_rule.items()], BODY,
                     after=1)


def _versions(flow: Flow, plan: dict, locale: str) -> None:
    """Which version this is, who changed it, and every safety rule a clinician overrode."""
    version = plan.get("version")
    edits = [v for v in plan.get("versions") or [] if isinstance(v, dict) and v.get("version") != 1]
    if isinstance(version, int) and edits:
        who = sorted({str(v.get("author")) for v in edits})
        flow.paragraph(f"Plan version {version}: the engine's draft changed by {', '.join(who)} "
                       f"({len(edits)} change{'s' if len(edits) != 1 else ''}; the last: "
                       f"{fmt.sentence(str(edits[-1].get('reason') or ''))})", BODY, after=2)
    overrides = [o for o in plan.get("overrides") or [] if isinstance(o, dict)]
    if not overrides:
        return
    flow.heading("Safety rules overridden by a clinician", H1, rule=True, keep_with=60)
    rows = [["Rule", "Exercise", "Reason", "By"]]
    for o in overrides:
        by = str(o.get("by") or "")
        if o.get("at"):
            by += f", {fmt.date_text(str(o['at']), locale)}"
        rows.append([str(o.get("rule") or ""), str(o.get("exercise") or "whole plan"),
                     str(o.get("reason") or ""), by])
    flow.table(rows, [2.2, 2, 3.3, 1.8], BODY, BOLD_BODY, padding=3)


def _split_sources(text: str) -> list[str]:
    """Split "A; B (x; y); C" at the "; " outside parentheses."""
    parts: list[str] = []
    for piece in text.split("; "):
        if parts and parts[-1].count("(") > parts[-1].count(")"):
            parts[-1] += "; " + piece
        else:
            parts.append(piece)
    return [p.strip() for p in parts if p.strip()]


def _sources(evidence: list[dict]) -> tuple[list[str], dict[str, list[int]]]:
    """Unique literature sources, numbered, and each rule's reference numbers.

    Engines cite several sources per rule separated by "; " and the same
    guideline backs many rules, so listing each once keeps the fax short.
    """
    numbers: dict[str, int] = {}
    refs: dict[str, list[int]] = {}
    for e in evidence:
        for source in _split_sources(str(e.get("source") or "")):
            if not source:
                continue
            number = numbers.setdefault(source, len(numbers) + 1)
            cited = refs.setdefault(str(e.get("rule")), [])
            if number not in cited:
                cited.append(number)
    return list(numbers), refs


def _rules(flow: Flow, plan: dict) -> None:
    rules = plan.get("rules_applied") or []
    evidence = plan.get("evidence") or []
    summaries: dict[str, list[str]] = {}
    for e in evidence:
        if e.get("summary"):
            summaries.setdefault(str(e.get("rule")), []).append(str(e["summary"]))
    sources, refs = _sources(evidence)
    flow.heading("Rules applied and evidence", H1, rule=True, keep_with=60)
    if not rules:
        flow.paragraph("No rules changed the plan.", BODY)
    for r in rules:
        name = str(r.get("rule", ""))
        plugin = r.get("plugin")
        label = name if not plugin or plugin == "refflow" else f"{name} ({plugin})"
        text = fmt.sentence(str(r.get("effect", "")))
        for summary in summaries.get(name, []):
            text += f" {fmt.sentence(summary)}"
        if refs.get(name):
            text += " [" + ", ".join(str(n) for n in refs[name]) + "]"
        flow.label_value(label, text, BODY, BOLD_BODY, label_width=LABEL, after=3)
    if sources:
        flow.heading("Sources", H1, rule=True, keep_with=40)
        flow.bullets([f"{source}" for source in sources], BODY, after=1,
                     bullet_numbers=True)
