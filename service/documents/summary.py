"""The referrer's summary: one page for the referring doctor, always.

Who the patient is, the decision in words, why in plain words, what the clinic
needs from the doctor, the plan in brief, who approved it and how to reach the
clinic. No rule names, flag codes or catalog ids: the flags are translated
into sentences (``FLAG_TEXT``); the full record with every rule is the chart
record (``chart.py``). When the content would run past one page the lists are
cut ("and 3 more – see the chart record") and tried again, never a second page.

Written for a fax: 11 pt and larger, black on white, thin black rules.
"""

from __future__ import annotations

import datetime as dt

from refflow.documents import formatting as fmt
from refflow.documents.clinic import ClinicInfo
from refflow.documents.fonts import BOLD, REGULAR
from refflow.documents.layout import Flow, Style
from refflow.documents.letterhead import draw_letterhead

BODY = Style(REGULAR, 11, 14)
BOLD_BODY = Style(BOLD, 11, 14)
TITLE = Style(BOLD, 16, 20)
H1 = Style(BOLD, 12.5, 16)
DECISION = Style(BOLD, 12.5, 16)
LABEL = 110
# List lengths tried, longest first, until the page holds everything.
LIMITS = (12, 8, 5, 3, 2, 1)
LONGEST = 150  # characters of one free-text value (a name, a reference) on this page

DECISIONS = {
    "release": "Plan released: the patient has been sent the exercise plan.",
    "review": "Held for review: a clinician at the clinic is checking the plan. The patient "
              "has not been sent anything yet.",
    "do_not_exercise": "Do not exercise yet: please see the patient before any exercise starts. "
                       "No exercise plan was sent to the patient.",
}
SEE_PATIENT = "Please see the patient before any exercise starts."
FALLS_SERVICE = "Please refer the patient to a falls service, if not done already."
BP_READING = "Please send us a current resting blood pressure reading."
FRACTURE_DATES = "Please send the site and date of each fracture."
CONFIRM_DIAGNOSIS = "Please confirm the diagnosis."
BONE_TREATMENT = "Please make sure the patient is on bone-protective treatment."

# flag code -> (why, in plain words; what we need from the doctor, or None).
# A code mapped to None is the clinic's own business, not the doctor's.
FLAG_TEXT: dict[str, tuple[str, str | None] | None] = {
    # no exercise until a doctor has seen the patient
    "urgent_medical": ("A warning sign needs a doctor to check the patient before any exercise.",
                       SEE_PATIENT),
    "suspected_vertebral_fracture": (
        "Severe or sudden back pain: it may be a new fracture of the spine.",
        "Please check the patient for a new spinal fracture before any exercise starts."),
    "back_pain_after_minor_trauma": (
        "Back pain after a minor fall or knock: a spinal fracture must be ruled out.",
        "Please check the back pain for a spinal fracture."),
    "spinal_red_flag": ("Warning signs in the back are listed (such as cancer, infection or "
                        "nerve symptoms).", "Please arrange an urgent check of the back."),
    "bp_ge_180_110": ("Resting blood pressure is 180/110 or higher: too high to start exercise.",
                      "Please treat the blood pressure and send us a new reading."),
    "unstable_cardiopulmonary_condition": (
        "An unstable heart or lung condition, or an acute illness, is listed.",
        "Please confirm the condition is stable before exercise starts."),
    # the plan waits for a clinician
    "diagnosis_out_of_scope": ("The diagnosis is not osteoporosis, low bone mass or high "
                               "fracture risk, so no plan was drafted.", CONFIRM_DIAGNOSIS),
    "out_of_scope_age": ("The patient is under 18: this program is for adults.", None),
    "invalid_fracture_date": ("A fracture is dated after the referral.", FRACTURE_DATES),
    "recent_fracture_lt_12wk": (
        "A fracture in the last 12 weeks: the exercises must be fitted around it.",
        "Please tell us of any weight-bearing or surgical precautions for the fracture."),
    "vertebral_fracture_lt_4wk": ("A spinal fracture less than 4 weeks ago: exercise usually "
                                  "starts 4 to 12 weeks after one, once the pain eases.", None),
    "fracture_date_unknown": ("A fracture has no date, so it may be recent.", FRACTURE_DATES),
    "diagnosis_implies_fracture": ("The diagnosis code says there is a current fracture, but "
                                   "no fracture is listed.", FRACTURE_DATES),
    "multiple_vertebral_fractures": ("Two or more spinal fractures, or a painful curved upper "
                                     "back: a physical therapist assesses the patient first.",
                                     None),
    "significant_back_pain": ("Significant or new back pain: it is assessed before exercise "
                              "starts.", None),
    "severe_pain": ("Severe pain (7 out of 10 or more): it is assessed before exercise starts.",
                    None),
    "high_falls_risk": ("High risk of falls: strength and balance come first, with a physical "
                        "therapist.", FALLS_SERVICE),
    "non_ambulatory": ("The patient uses a wheelchair: only seated exercises apply, fitted by "
                       "a physical therapist.", None),
    "cardiovascular_disease": ("Heart disease is listed: we need medical clearance before the "
                               "patient exercises hard.",
                               "Please confirm the patient is cleared for exercise."),
    "bp_160_179_or_100_109": ("Resting blood pressure is 160-179 / 100-109: strength work stays "
                              "light until it is reviewed.",
                              "Please review the blood pressure and send us a new reading."),
    "elevated_blood_pressure": ("Blood pressure is above 140/90: we watch it and teach the "
                                "patient to breathe out when lifting.", None),
    "uncontrolled_hypertension_reported": ("Uncontrolled high blood pressure is listed without "
                                           "a reading.", BP_READING),
    "blood_pressure_not_reported": ("High blood pressure is listed without a reading.",
                                    BP_READING),
    "neurological_or_vestibular_condition": ("A nerve or inner-ear (balance) condition is "
                                             "listed: balance work is fitted to it.", None),
    "cognitive_impairment": ("Memory or thinking problems are listed: exercising alone at home "
                             "may not be safe.",
                             "Please tell us who can help the patient exercise at home."),
    "inflammatory_arthritis_flare": ("Inflammatory arthritis is listed: we check for a flare "
                                     "and adjust impact and loading.", None),
    "severe_oa_limits_weight_bearing": ("Severe osteoarthritis is listed: impact and loading "
                                        "are adjusted.", None),
    "uncontrolled_metabolic_disease": ("An uncontrolled metabolic disease is listed.",
                                       "Please confirm the condition is under control."),
    "surgical_precautions": ("Recent surgery is listed: precautions depend on the operation.",
                             "Please send the surgical precautions."),
    "active_cancer": ("Active cancer is listed: spread to the bones must be ruled out.",
                      "Please tell us whether the cancer involves the bones."),
    "pregnancy": ("Pregnancy is listed: this program does not cover pregnancy.", None),
    "osteoarthritis": ("Osteoarthritis: impact is kept low.", None),
    "diabetes": ("Diabetes: the patient checks their blood sugar around sessions.", None),
    "chronic_lung_disease": ("Lung disease: the patient paces exercise by breathlessness.",
                             None),
    "hyperkyphosis": ("A curved upper back: the plan stresses posture work.", None),
    "age_lt_50_or_premenopausal": ("The patient is under 50 or premenopausal: the guidelines "
                                   "are written for older adults.",
                                   "Please consider tests for other causes of bone loss."),
    "glucocorticoid_very_high_dose": ("Steroid tablets (glucocorticoids) of 30 mg a day or "
                                      "more for over 30 days: very high fracture risk.",
                                      BONE_TREATMENT),
    "fracture_on_glucocorticoid": ("A fracture while taking steroid tablets (glucocorticoids): "
                                   "very high fracture risk.", BONE_TREATMENT),
    "glucocorticoid_courses": ("Steroids taken in short courses: not counted as long-term use.",
                               "Please tell us how many steroid courses the patient takes a "
                               "year."),
    "glucocorticoid_upgrade": ("Long-term steroid tablets (glucocorticoids): bone risk is "
                               "treated as one level higher.", None),
    "glucocorticoid_dose_unknown": ("The glucocorticoid dose or start date is missing, so a "
                                    "high dose was assumed.",
                                    "Please confirm the glucocorticoid dose and start date."),
    "missing_fracture_history": ("No fracture history was given, so the highest bone risk is "
                                 "assumed.", "Please send the patient's fracture history."),
    "missing_tscore": ("No T-score was given.", "Please send the T-score."),
    "diagnosis_tscore_mismatch": ("The diagnosis and the T-score disagree.", CONFIRM_DIAGNOSIS),
    "referrer_restrictions": ("The referral lists restrictions: a clinician checks the plan "
                              "against them.", None),
    "recommend_pt": ("A physical therapist should supervise the first sessions.", None),
    "recommend_falls_service": ("High risk of falls.", FALLS_SERVICE),
    "frailty_falls_review": ("Signs of frailty (such as great age, a walking aid, not able to "
                             "get up from the floor, living alone): a falls assessment comes "
                             "first.", FALLS_SERVICE),
    "severe_lung_disease": ("Severe lung disease or long-term oxygen is listed: exercise starts "
                            "under supervision, paced by breathlessness.",
                            "Please confirm the patient may exercise, and any oxygen needed "
                            "during exercise."),
    "interpreter_needed": ("The patient prefers a language other than English: we arrange an "
                           "interpreter or a translated handout.", None),
    "past_condition": ("A past or settled condition is listed: it does not stop exercise.", None),
    "past_surgery": ("A past joint replacement or operation is listed, with no precautions.",
                     "Please tell us of any lasting precautions from the operation."),
    "inflammatory_arthritis_stable": ("Inflammatory arthritis, stable: loading eases during a "
                                      "flare.", None),
    "missing_falls_history": ("No falls history was given, so a high falls risk is assumed.",
                              "Please tell us how many times the patient fell in the last "
                              "12 months."),
    "refer_supervised_program": ("The goals include heavy lifting or jumping: that needs a "
                                 "supervised program; the home plan keeps loads moderate.",
                                 None),
    "goal_activity_not_advised": ("Some activities in the patient's goals are not advised for "
                                  "now.", None),
    "unrecognised_conditions": ("Some listed conditions were not recognized: a clinician "
                                "checks them.", None),
    "unrecognised_medications": ("Some listed medications were not recognized: a clinician "
                                 "checks them.", None),
    "beta_blocker": ("A beta-blocker is listed: the patient rates effort on a 0-10 scale, not "
                     "by heart rate.", None),
    "anticoagulant": ("A blood thinner is listed: the patient reports any fall at once.", None),
    "fall_risk_medication": ("A medication that raises the risk of falls is listed.",
                             "Please review the medications that raise the risk of falls."),
    "hypoglycaemia_risk": ("A glucose-lowering medication is listed: the patient watches for "
                           "low blood sugar around sessions.", None),
    # the engine's and the clinic's own checks
    "plugin_failed": ("One of the clinic's checks needs a clinician to look at the plan.", None),
    "plugin_safety_override": None,
    "invalid_plugin_exercise": None,
    "duplicate_plugin_exercise": None,
}
SEVERITY_ORDER = {"needs_review": 0, "caution": 1, "info": 2}
# What the rules kept out of the plan, in the doctor's words (by the rule's name).
PRECAUTIONS = {
    "no_high_impact": "no high impact",
    "no_loaded_or_end_range_flexion": "no loaded forward bending",
    "no_loaded_or_end_range_rotation": "no twisting",
    "no_floor_exercises": "no exercises on the floor",
    "avoid_for_falls_risk": "balance work beside a support",
}
PARTS = (  # (component, words): the plan's parts in the order a doctor reads them
    ("strength", "strength"), ("balance", "balance"), ("aerobic", "walking"),
    ("spinal_extensor", "posture"), ("mobility", "mobility"), ("impact", "impact loading"),
)
BONE_RISK = {"A": "osteopenia-level", "B": "osteoporosis-level",
             "C": "very high (spinal or several fractures)"}


def render_summary(
    referral,
    plan: dict,
    clinic: ClinicInfo,
    *,
    paper: str = "letter",
    generated_at: dt.datetime | None = None,
) -> bytes:
    """The one-page referrer summary PDF (bytes)."""
    for limit in LIMITS:
        flow = _summary(referral, plan, clinic, paper=paper, generated_at=generated_at,
                        limit=limit)
        if flow.page == 1:
            break
    return flow.finish()


def _cut(items: list[str], limit: int) -> list[str]:
    """At most ``limit`` items, the last one saying how many more the chart has."""
    if len(items) <= limit:
        return items
    shown = items[:max(limit - 1, 1)]
    return [*shown, f"and {len(items) - len(shown)} more – see the chart record."]


def reasons_and_requests(plan: dict) -> tuple[list[str], list[str]]:
    """(why, what we need from the doctor): the flags in plain sentences, most
    serious first, each said once."""
    why: list[str] = []
    needs: list[str] = []
    flags = [f for f in plan.get("flags") or [] if isinstance(f, dict)]
    for flag in sorted(flags, key=lambda f: SEVERITY_ORDER.get(f.get("severity"), 3)):
        code = str(flag.get("code") or "")
        if code in FLAG_TEXT:
            text = FLAG_TEXT[code]
            if text is None:
                continue
            reason, need = text
        else:  # a clinic's own rule: its message is written for people
            reason, need = fmt.sentence(str(flag.get("message") or "")), None
        if reason and reason not in why:
            why.append(reason)
        if need and need not in needs:
            needs.append(need)
    if plan.get("decision") == "do_not_exercise":  # the first thing the doctor reads
        needs = [SEE_PATIENT, *(n for n in needs if n != SEE_PATIENT)]
    return why, needs


def plan_in_brief(plan: dict) -> list[str]:
    """A few lines: the plan's parts and how often, how long, the precautions."""
    exercises = [e for e in plan.get("exercises") or [] if isinstance(e, dict)]
    if plan.get("decision") == "do_not_exercise":
        return ["No exercise plan was made: the patient was asked to see their doctor or "
                "urgent care first."]
    if not exercises:
        return ["No exercises were drafted yet: a clinician at the clinic will write the plan."]
    targets = plan.get("targets") or {}
    parts = []
    for component, words in PARTS:
        count = sum(1 for e in exercises if e.get("component") == component)
        if not count:
            continue
        days = (targets.get(component) or {}).get("days_per_week") or max(
            e.get("days_per_week") or 0 for e in exercises if e.get("component") == component)
        text = f"{words} {'daily' if days >= 7 else fmt.days_text(days)}"
        if component == "aerobic" and (targets.get(component) or {}).get("minutes_per_week"):
            text += f", building to {targets[component]['minutes_per_week']} minutes a week"
        elif count > 1:
            text += f" ({count} exercises)"
        parts.append(text)
    lines = [fmt.sentence(", ".join(parts))]
    weeks = [p.get("week_to") for p in plan.get("phases") or [] if isinstance(p, dict)
             and isinstance(p.get("week_to"), int)]
    if weeks:
        lines.append(f"{max(weeks)} weeks to the target level, then keep it up; review at "
                     f"{max(weeks)} weeks.")
    effort = (targets.get("strength") or {}).get("effort_max") or {}
    if effort:
        lines.append(f"Strength effort builds up to {max(effort.values())} out of 10.")
    excluded = {str(e.get("rule")) for e in plan.get("excluded_exercises") or []
                if isinstance(e, dict)}
    precautions = [words for rule, words in PRECAUTIONS.items() if rule in excluded]
    if precautions:
        lines.append("Precautions: " + ", ".join(precautions) + ".")
    return lines


def _summary(referral, plan, clinic: ClinicInfo, *, paper, generated_at, limit) -> Flow:
    locale = clinic.locale
    printed = fmt.date_time(fmt.local(generated_at, clinic.zone), locale)

    def decorate(flow: Flow) -> None:
        draw_letterhead(flow, clinic, f"CONFIDENTIAL – protected health information. "
                                      f"Printed {printed}.")

    flow = Flow(paper=paper, margin=50, top=64, bottom=54,
                title="Exercise referral – plan summary", author=clinic.name,
                subject="Exercise referral: decision and plan summary", decorate=decorate)
    flow.lines(["Exercise referral – plan summary"], TITLE)
    flow.space(4)
    p = referral.patient
    row = {"style": BODY, "bold": BOLD_BODY, "label_width": LABEL}
    flow.label_value("Patient", fmt.clip(f"{p.family_name}, {p.given_name}", LONGEST), **row)
    flow.label_value("Born", fmt.date_text(p.birth_date, locale), **row)
    if referral.referrer.name:
        flow.label_value("Referred by", fmt.clip(referral.referrer.name, LONGEST), **row)
    if referral.external_id:
        flow.label_value("Your reference", fmt.clip(referral.external_id, LONGEST), **row)
    flow.label_value("Plan date", fmt.date_text(plan.get("as_of"), locale), **row)
    flow.space(6)

    decision = plan.get("decision", "review")
    flow.box(DECISIONS.get(decision, DECISIONS["review"]), [], DECISION, BODY,
             line_width=2, padding=7)
    why, needs = reasons_and_requests(plan)
    if not why:
        why = [_no_flags(plan)]
    flow.heading("Why", H1, rule=True, before=4, keep_with=30)
    flow.bullets(_cut(why, limit), BODY, after=1)
    flow.heading("What we need from you", H1, rule=True, before=6, keep_with=30)
    if needs:
        flow.bullets(_cut(needs, limit), BODY, after=1)
    else:
        flow.paragraph("Nothing: no action is needed from you." if decision == "release" else
                       "Nothing for now: we will let you know when the plan is decided.", BODY)
    flow.heading("The plan in brief", H1, rule=True, before=6, keep_with=30)
    for line in plan_in_brief(plan):
        flow.paragraph(line, BODY, after=2)
    approved = plan.get("approved") or {}
    if decision == "release" and approved.get("at"):
        flow.paragraph(f"Approved by {fmt.clip(approved.get('by') or 'a clinician', 80)} on "
                       f"{fmt.date_text(str(approved['at']), locale)}.", BOLD_BODY, after=2)
    flow.space(6)
    flow.rule(1, after=4)
    flow.paragraph(f"Questions? Call {clinic.name} at {clinic.phone} (fax {clinic.fax}). The "
                   "full chart record of this referral is available from the clinic.", BODY)
    return flow


def _no_flags(plan: dict) -> str:
    """Why, when no flag says anything: the patient's bone and falls risk."""
    risk = plan.get("risk") or {}
    bone = BONE_RISK.get(risk.get("bone_category"))
    text = "Nothing in the referral stops a home exercise program"
    if bone:
        text += f": bone risk is {bone}"
        if risk.get("falls_high") is False:
            text += " and the risk of falls is not high"
    return text + "."
