"""The gates (guidance §1-§3): who is in scope, what stops exercise, what holds a plan.

Each gate takes the ``Draft`` (facts, risk, and the plan being built), does one
thing, and records what it did with ``draft.flag`` and
``draft.applied(rule, effect)``; the guideline behind it comes from
``evidence.RULES``. The engine runs ``GATES`` in order before the
prescription rules of ``rules.py`` choose exercises, doses and phases.
"""

from __future__ import annotations

from collections.abc import Iterable

from refflow.planning import vocabulary as vocab
from refflow.planning.risk import (
    ACUTE_PAIN_DAYS,
    GC_VERY_HIGH_DAYS,
    GC_VERY_HIGH_MG,
    RECENT_FRACTURE_DAYS,
    VERY_RECENT_VERTEBRAL_DAYS,
)
from refflow.planning.rules import Draft, Rule
from refflow.planning.translations import handout_language, language_status


def _labels(keys: Iterable[str]) -> str:
    return ", ".join(sorted({vocab.concept_label(k) for k in keys}))


# ==========================================================================
# Intake scope (§1)


def diagnosis_in_scope(d: Draft) -> None:
    if not d.facts.diagnoses:
        d.withheld = True
        d.flag("diagnosis_out_of_scope", "needs_review",
               "The diagnosis is not osteoporosis, osteopenia/low bone mass or high fracture risk; "
               "no plan was drafted. A clinician must decide.")
        d.applied("diagnosis_in_scope", "diagnosis out of scope: no exercises drafted")


def age_in_scope(d: Draft) -> None:
    if d.facts.age < 18:
        d.withheld = True
        d.flag("out_of_scope_age", "needs_review", "Patient is under 18; the rule set covers adults only.")
        d.applied("age_in_scope", "under 18: no exercises drafted")


def fracture_dates_valid(d: Draft) -> None:
    if any(f.days_ago is not None and f.days_ago < 0 for f in d.facts.fractures):
        d.withheld = True
        d.flag("invalid_fracture_date", "needs_review",
               "A fracture is dated after the referral date; please correct the fracture history.")
        d.applied("fracture_dates_valid", "fracture dated in the future: no exercises drafted")


# ==========================================================================
# Urgent gates (§3.1): do not exercise


def suspected_vertebral_fracture(d: Draft) -> None:
    f = d.facts
    if f.pain_score is None or not f.pain_spinal:
        return
    acute = f.pain_days is None or f.pain_days <= ACUTE_PAIN_DAYS
    if f.pain_score >= 7 and acute:
        d.urgent = True
        d.flag("suspected_vertebral_fracture", "needs_review",
               "Severe spinal pain (7/10 or more) of recent or unknown onset: possible new vertebral "
               "fracture. See the doctor for assessment before starting exercise.")
        d.applied("suspected_vertebral_fracture", "acute severe spinal pain: do not exercise")
    elif f.pain_after_minor_trauma and acute and f.pain_score > 0:
        if d.risk.bone_category in ("B", "C") or f.on_glucocorticoid:
            d.urgent = True
            d.flag("suspected_vertebral_fracture", "needs_review",
                   "Sudden back pain after minor trauma with osteoporosis or glucocorticoid use: "
                   "possible new vertebral fracture. See the doctor before starting exercise.")
            d.applied("suspected_vertebral_fracture", "back pain after minor trauma: do not exercise")
        else:
            d.flag("back_pain_after_minor_trauma", "needs_review",
                   "Back pain after minor trauma with low bone mass: assess for vertebral fracture "
                   "before the plan is released.")
            d.applied("suspected_vertebral_fracture", "back pain after minor trauma (category A): review")


def spinal_red_flag(d: Draft) -> None:
    f = d.facts
    back_pain = f.pain_score is not None and f.pain_score > 0 and f.pain_spinal
    hits = []
    if "spinal_red_flag" in f.conditions:
        hits.append("spinal red-flag symptoms")
    if back_pain and ("cancer" in f.conditions):
        hits.append("back pain with active cancer")
    if back_pain and ("immunosuppression" in f.conditions or "immunosuppressant" in f.med_classes):
        hits.append("back pain with immunosuppression")
    if back_pain and "acute_illness" in f.conditions:
        hits.append("back pain with fever or infection")
    if hits:
        d.urgent = True
        d.flag("spinal_red_flag", "needs_review",
               "Spinal red flag (" + "; ".join(hits) + "): urgent medical assessment before exercise.")
        d.applied("spinal_red_flag", "spinal red flag: do not exercise")


def blood_pressure_urgent(d: Draft) -> None:
    bp = d.facts.bp
    if bp and (bp[0] >= 180 or bp[1] >= 110):
        d.urgent = True
        d.flag("bp_ge_180_110", "needs_review",
               "Resting blood pressure is 180/110 or higher: blood pressure must be controlled "
               "before exercise starts.")
        d.applied("blood_pressure_urgent", "resting BP >=180/110: do not exercise")


def unstable_cardiopulmonary(d: Draft) -> None:
    hits = d.facts.conditions & {"unstable_cardiac", "heart_inflammation", "acute_vascular",
                                 "acute_illness"}
    if hits:
        d.urgent = True
        d.flag("unstable_cardiopulmonary_condition", "needs_review",
               f"Referral lists an absolute contraindication ({_labels(hits)}): medical review "
               "before exercise.")
        d.applied("unstable_cardiopulmonary", "absolute contraindication: do not exercise")


# ==========================================================================
# Review gates (§3.2): draft the plan, hold it for a clinician


def recent_fracture(d: Draft) -> None:
    f = d.facts
    recent = [x for x in f.fractures if x.days_ago is not None and 0 <= x.days_ago < RECENT_FRACTURE_DAYS]
    undated = [x for x in f.fractures if x.days_ago is None]
    if recent:
        sites = ", ".join(sorted({x.site for x in recent}))
        d.flag("recent_fracture_lt_12wk", "needs_review",
               f"Fracture within the last 12 weeks ({sites}): exercise must be individualized and "
               "any surgical or weight-bearing precautions checked.")
        d.applied("recent_fracture", f"fracture <12 weeks ({sites}): review")
    very = [x for x in recent if x.site == "vertebral" and x.days_ago < VERY_RECENT_VERTEBRAL_DAYS]
    if very:
        d.flag("vertebral_fracture_lt_4wk", "needs_review",
               "Vertebral fracture less than 4 weeks ago: exercise usually starts 4-12 weeks after, "
               "once acute pain has eased.")
        d.applied("recent_fracture", "vertebral fracture <4 weeks: review")
    if undated:
        d.flag("fracture_date_unknown", "needs_review",
               "A fracture has no date, so it may be recent: please give the fracture date.")
        d.applied("recent_fracture", "undated fracture treated as possibly recent: review")
    if d.facts.dx_implies_fracture and not f.fractures:
        d.flag("diagnosis_implies_fracture", "needs_review",
               "The diagnosis code describes a current fragility fracture, but no fracture is listed.")
        d.applied("recent_fracture", "diagnosis code implies a current fracture: review")


def multiple_vertebral_fractures(d: Draft) -> None:
    f = d.facts
    vertebral = [x for x in f.fractures if x.site == "vertebral"]
    painful_kyphosis = "hyperkyphosis" in f.conditions and f.pain_spinal and (f.pain_score or 0) > 0
    if len(vertebral) >= 2 or painful_kyphosis:
        d.flag("multiple_vertebral_fractures", "needs_review",
               "Two or more vertebral fractures or painful hyperkyphosis: physical therapist "
               "assessment before a home program.")
        d.applied("multiple_vertebral_fractures", "highest-risk spine: review")


def back_pain(d: Draft) -> None:
    f = d.facts
    if d.urgent or f.pain_score is None:
        return
    acute = f.pain_days is None or f.pain_days <= ACUTE_PAIN_DAYS
    if f.pain_spinal and (f.pain_score >= 7 or (4 <= f.pain_score <= 6 and acute)):
        d.flag("significant_back_pain", "needs_review",
               "Significant or new back pain: needs assessment before the plan is released.")
        d.applied("back_pain", "significant back pain: review")
    elif not f.pain_spinal and f.pain_score >= 7:
        d.flag("severe_pain", "needs_review", "Severe pain (7/10 or more): needs assessment first.")
        d.applied("back_pain", "severe pain: review")


def falls_review(d: Draft) -> None:
    f = d.facts
    reasons = []
    if f.falls is not None and f.falls >= 2:
        reasons.append("two or more falls")
    if f.injurious_fall:
        reasons.append("an injurious fall")
    if f.aid in ("walker", "rollator", "wheelchair"):
        reasons.append(f"uses a {f.aid}")
    if reasons:
        d.flag("high_falls_risk", "needs_review",
               "High falls risk (" + ", ".join(reasons) + "): falls service or a PT-delivered "
               "Otago program; strength and balance first.")
        d.applied("falls_review", "high falls risk: review")
    if f.aid == "wheelchair":
        d.flag("non_ambulatory", "needs_review",
               "Uses a wheelchair: the standing program does not apply; the draft keeps only "
               "exercises done sitting, and a PT must tailor it.")
        d.applied("falls_review", "non-ambulatory: review")


FRAIL_AGE = 85  # "very old age" [D; Otago's most benefit at 80+]


def frailty_review(d: Draft) -> None:
    """Frailty as NICE NG249 case-finds it and the Otago program serves it:
    not only the count of falls. Two signs, or one with a fall this year."""
    f = d.facts
    if any(x["code"] == "high_falls_risk" for x in d.flags):
        return  # the falls review already holds the plan for the same service
    signs = []
    if f.age >= FRAIL_AGE:
        signs.append(f"aged {FRAIL_AGE} or over")
    if "frailty" in f.conditions:
        signs.append("described as frail")
    if f.aid in ("cane", "walker", "rollator"):
        signs.append(f"uses a {f.aid}")
    if f.can_rise is False:
        signs.append("cannot get up from the floor")
    if f.lives_alone:
        signs.append("lives alone")
    fell = f.falls is not None and f.falls >= 1
    if len(signs) >= 2 or (signs and fell):
        d.flag("frailty_falls_review", "needs_review",
               "Signs of frailty (" + ", ".join(signs + (["a fall this year"] if fell else []))
               + "): a falls assessment and a therapist-led Otago program before a home program.")
        d.applied("frailty_review", f"{len(signs)} frailty sign(s): review")


def cardiovascular_review(d: Draft) -> None:
    if "cardiac_disease" in d.facts.conditions:
        d.aerobic_effort_cap = min(d.aerobic_effort_cap, 6)
        d.flag("cardiovascular_disease", "needs_review",
               "Known heart disease: medical clearance needed; aerobic effort is capped at moderate "
               "(6/10) until cleared.")
        d.applied("cardiovascular_review", "heart disease: review, aerobic effort <=6")


def blood_pressure_review(d: Draft) -> None:
    bp, conds = d.facts.bp, d.facts.conditions
    if d.urgent and bp and (bp[0] >= 180 or bp[1] >= 110):
        return
    if bp and (160 <= bp[0] <= 179 or 100 <= bp[1] <= 109):
        d.strength_effort_cap = min(d.strength_effort_cap, 5)
        d.aerobic_effort_cap = min(d.aerobic_effort_cap, 6)
        d.flag("bp_160_179_or_100_109", "needs_review",
               "Resting blood pressure 160-179 / 100-109: a relative contraindication to resistance "
               "training; effort is capped until blood pressure is reviewed.")
        d.applied("blood_pressure_review", "BP 160-179/100-109: review, strength effort <=5")
    elif bp and (bp[0] >= 140 or bp[1] >= 90):
        d.flag("elevated_blood_pressure", "caution",
               "Resting blood pressure above 140/90: monitor; avoid breath-holding when lifting.")
        d.applied("blood_pressure_review", "BP 140-159/90-99: caution")
    if "uncontrolled_hypertension" in conds and not bp:
        d.flag("uncontrolled_hypertension_reported", "needs_review",
               "Uncontrolled hypertension is reported without a blood pressure reading.")
        d.applied("blood_pressure_review", "uncontrolled hypertension without a reading: review")
    elif "hypertension" in conds and not bp:
        d.flag("blood_pressure_not_reported", "caution",
               "Hypertension is listed but no resting blood pressure was given.")
        d.applied("blood_pressure_review", "hypertension without a reading: caution")


_COMORBID = (
    ("neuro_vestibular", "neurological_or_vestibular_condition",
     "falls risk; balance work must be tailored"),
    ("cognitive", "cognitive_impairment", "an unsupervised program may be unsafe"),
    ("inflammatory_arthritis", "inflammatory_arthritis_flare",
     "check for an active flare; impact and loading may need modifying"),
    ("severe_osteoarthritis", "severe_oa_limits_weight_bearing", "impact and loading need modifying"),
    ("metabolic_uncontrolled", "uncontrolled_metabolic_disease", "a relative contraindication"),
    ("surgery", "surgical_precautions", "precautions depend on the surgical approach"),
    ("cancer", "active_cancer", "bone involvement must be ruled out"),
    ("pregnancy", "pregnancy", "outside the rule set"),
    ("severe_lung_disease", "severe_lung_disease",
     "needs a supervised start (pulmonary rehabilitation) and a plan paced by breathlessness"),
)


def comorbidity_review(d: Draft) -> None:
    for concept, code, why in _COMORBID:
        if concept in d.facts.conditions and not (concept == "cancer" and d.urgent):
            d.flag(code, "needs_review", f"{vocab.concept_label(concept).capitalize()}: {why}.")
            d.applied("comorbidity_review", f"{code}: review")
    for concept, code, why in (("osteoarthritis", "osteoarthritis", "impact limited to low"),
                               ("diabetes", "diabetes", "check glucose around sessions"),
                               ("respiratory", "chronic_lung_disease", "pace by breathlessness"),
                               ("hyperkyphosis", "hyperkyphosis", "emphasize posture work"),
                               ("inflammatory_arthritis_stable", "inflammatory_arthritis_stable",
                                "ease the loading if it flares"),
                               ("past_surgery", "past_surgery",
                                "no precautions were given; check there are none")):
        if concept in d.facts.conditions:
            d.flag(code, "caution", f"{vocab.concept_label(concept).capitalize()}: {why}.")
            d.applied("comorbidity_review", f"{code}: caution")


def past_conditions(d: Draft) -> None:
    """Only an acute or current condition is an absolute contraindication
    (guidance §3.1); one the referral calls past, resolved or stable is a caution."""
    past = d.facts.past_conditions
    if past:
        shown = "; ".join(p[:80] for p in past)
        d.flag("past_condition", "caution",
               f"Listed as past, resolved or stable, so not treated as a contraindication now "
               f"(check that it is): {shown}.")
        d.applied("past_conditions", f"{len(past)} past or stable condition(s): caution")


def age_premenopausal_review(d: Draft) -> None:
    if 18 <= d.facts.age < 50 or "premenopausal" in d.facts.conditions:
        d.flag("age_lt_50_or_premenopausal", "needs_review",
               "Age under 50 or premenopausal: the guidelines target postmenopausal women and men "
               "50+; consider a secondary-cause work-up.")
        d.applied("age_premenopausal_review", "under 50 or premenopausal: review")


def glucocorticoid_review(d: Draft) -> None:
    f = d.facts
    for gc in f.glucocorticoids:
        long = gc.days > GC_VERY_HIGH_DAYS if gc.days is not None else not gc.intermittent
        if gc.pred_mg is not None and gc.pred_mg >= GC_VERY_HIGH_MG and long:
            d.flag("glucocorticoid_very_high_dose", "needs_review",
                   "Glucocorticoid 30 mg/day or more for over 30 days: very high fracture risk.")
            d.applied("glucocorticoid_review", "very high glucocorticoid dose: review")
            break
    if f.glucocorticoids and f.fractures:
        for gc in f.glucocorticoids:
            on_gc = any(
                (gc.since is not None and x.date is not None and x.date >= gc.since)
                or (gc.since is None and (x.days_ago is None or x.days_ago <= 365))
                for x in f.fractures)
            if on_gc:
                d.flag("fracture_on_glucocorticoid", "needs_review",
                       "A fracture occurred while on glucocorticoids (or cannot be ruled out): very "
                       "high fracture risk.")
                d.applied("glucocorticoid_review", "fracture on glucocorticoids: review")
                break
    if d.risk.gc_upgrade:
        d.flag("glucocorticoid_upgrade", "info",
               "Long-term glucocorticoids: bone category raised one level.")
        d.applied("glucocorticoid_upgrade", "bone category raised one level")
    if any(gc.intermittent for gc in f.glucocorticoids) and not d.risk.gc_upgrade:
        d.flag("glucocorticoid_courses", "caution",
               "Glucocorticoid taken in short courses: not counted as long-term use. Check how many "
               "courses a year: courses that add up to 3 months raise the bone category.")
        d.applied("glucocorticoid_review", "short glucocorticoid courses: caution")
    if d.risk.gc_assumed:
        d.flag("glucocorticoid_dose_unknown", "caution",
               "Glucocorticoid dose or start date not given: long-term use at 7.5 mg/day or more "
               "was assumed (the cautious case).")
        d.applied("glucocorticoid_upgrade", "dose or duration unknown: upgrade assumed")


def missing_fracture_history(d: Draft) -> None:
    if not d.facts.fractures_known:
        d.flag("missing_fracture_history", "needs_review",
               "Fracture history not given: a vertebral fracture cannot be ruled out, so the most "
               "cautious category (C) is used.")
        d.applied("missing_fracture_history", "unknown fracture history: category C, review")


def diagnosis_consistency(d: Draft) -> None:
    """The T-score and the diagnosis must agree (WHO: normal above -1.0,
    osteopenia -1.0 to -2.5, osteoporosis -2.5 or lower); a fragility fracture
    or a high FRAX makes osteoporosis a clinical diagnosis at any T-score."""
    f = d.facts
    if f.t_score is None:
        d.flag("missing_tscore", "info", "No T-score given: classified from diagnosis and fractures.")
        d.applied("diagnosis_consistency", "no T-score: classified without it")
        return
    says = "osteoporosis" if "osteoporosis" in f.diagnoses else (
        "osteopenia" if "osteopenia" in f.diagnoses else None)
    clinical = bool(f.low_trauma_fractures) or f.dx_implies_fracture or any(
        x is not None and x >= limit for x, limit in ((f.frax_mof, 20), (f.frax_hip, 3)))
    problem = None
    if says == "osteopenia" and f.t_score <= -2.5:
        problem = (f"the diagnosis says osteopenia but the T-score ({f.t_score:g}) is in the "
                   "osteoporosis range; the worse category is used")
    elif says == "osteopenia" and f.t_score > -1.0:
        problem = (f"the diagnosis says osteopenia but the T-score ({f.t_score:g}) is normal "
                   "(above -1.0)")
    elif says == "osteoporosis" and f.t_score > -2.5 and not clinical:
        problem = (f"the diagnosis says osteoporosis but the T-score ({f.t_score:g}) is above -2.5 "
                   "and no fragility fracture or high FRAX is given")
    if problem:
        d.flag("diagnosis_tscore_mismatch", "needs_review",
               f"Diagnosis and T-score disagree: {problem}. Please confirm the diagnosis.")
        d.applied("diagnosis_consistency", f"diagnosis {says} with T-score {f.t_score:g}: review")


# The languages refflow ships the patient's texts in. English is the source;
# another is used only when its translation is complete and reviewed, or the
# clinic allows unreviewed translations (REFFLOW_ALLOW_UNREVIEWED_TRANSLATIONS).
HANDOUT_LANGUAGES = ("en", "es")


def language_review(d: Draft) -> None:
    language = d.facts.language.split("-")[0].split("_")[0].lower()
    if language == "en":
        return
    chosen, reviewed = (None, False)
    if language in HANDOUT_LANGUAGES:
        chosen, reviewed = handout_language(language, d.catalog, d.allow_unreviewed_translations)
    if chosen:
        d.language, d.language_reviewed = chosen, reviewed
        d.applied("language_review", f"handout in {language}"
                  + ("" if reviewed else " (unreviewed translation, allowed by the clinic)"))
        return
    name = vocab.language_name(language)
    why = ("its translation has not been reviewed yet" if language in HANDOUT_LANGUAGES
           and language_status(language, d.catalog)[0] else "there is no complete translation")
    d.flag("interpreter_needed", "needs_review",
           f"The patient's preferred language is {name}; the handout is in English ({why}). "
           "Arrange an interpreter or a translated handout before the plan goes to the patient.")
    d.applied("language_review", f"preferred language {language}: review")


def referrer_restrictions(d: Draft) -> None:
    if d.facts.restrictions_text:
        d.flag("referrer_restrictions", "needs_review",
               "The referral states restrictions in free text; a clinician must check the plan "
               "against them.")
        d.applied("referrer_restrictions", "free-text restrictions: review")


def falls_overlay(d: Draft) -> None:
    if d.risk.falls_high:
        d.applied("falls_overlay", "high falls risk overlay applied")


def bone_category(d: Draft) -> None:
    d.applied("bone_category", f"bone category {d.risk.bone_category}")


# ==========================================================================
# Soft flags (§3.3) and vocabulary


_SUPERVISED_GOAL_WORDS = (" heavy lifting", " deadlift", " powerlifting", " weightlifting",
                          " liftmor", " 1rm", " one rep max", " jump", " jumping", " plyometric",
                          " box jump")
GOAL_ACTIVITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jogging", (" jog", " jogging", " run ", " running", " runs ")),
    ("tennis", (" tennis", " pickleball", " squash", " badminton", " racquet")),
    ("golf_full_swing", (" golf",)),
    ("yoga_forward_fold", (" yoga",)),
    ("sit_up_crunch", (" sit up", " situp", " crunch")),
    ("jump_rope", (" jump rope", " skipping", " skip rope")),
    ("box_jumps", (" plyometric", " box jump")),
    ("heavy_deadlift_liftmor", (" deadlift", " heavy lifting", " powerlifting", " weightlifting")),
    ("social_dancing", (" dance", " dancing")),
    ("water_aerobics", (" swim", " swimming", " pool", " aqua")),
    ("stationary_bike_upright", (" bike", " cycling", " cycle")),
    ("nordic_walking", (" nordic", " pole walking")),
    ("rowing_machine", (" rowing",)),
)


def soft_flags(d: Draft) -> None:
    f, r = d.facts, d.risk
    why = []
    if r.bone_category == "C":
        why.append("category C")
    if f.new_to_exercise:
        why.append("new to exercise")
    if f.pain_score is not None and 4 <= f.pain_score <= 6:
        why.append("pain 4-6/10")
    if why:
        d.flag("recommend_pt", "caution",
               "A physical therapist should supervise the start (" + ", ".join(why) + ").")
        d.applied("soft_flags", "recommend PT")
    if r.falls_high:
        d.flag("recommend_falls_service", "caution", "High falls risk: refer to a falls service.")
        d.applied("soft_flags", "recommend falls service")
    if f.falls is None:
        d.flag("missing_falls_history", "info",
               "Falls history not given: treated as high falls risk.")
        d.applied("soft_flags", "unknown falls history treated as high risk")
    if any(w in f.goals_text for w in _SUPERVISED_GOAL_WORDS):
        d.flag("refer_supervised_program", "caution",
               "Goals mention heavy lifting or jumping: that needs a supervised program; the home "
               "plan stays at moderate loads.")
        d.applied("soft_flags", "refer to a supervised program")
    d.goal_exercises = tuple(ex_id for ex_id, words in GOAL_ACTIVITIES
                             if any(w in f.goals_text for w in words))


def vocabulary(d: Draft) -> None:
    f = d.facts
    if f.unknown_conditions:
        shown = "; ".join(sorted({c[:60] for c in f.unknown_conditions}))
        d.flag("unrecognised_conditions", "caution",
               f"{len(f.unknown_conditions)} condition(s) not recognized by the rules, check them: {shown}")
        d.applied("vocabulary", f"{len(f.unknown_conditions)} unrecognised condition(s) flagged")
    if f.unknown_meds:
        shown = "; ".join(sorted({m[:60] for m in f.unknown_meds}))
        d.flag("unrecognised_medications", "caution",
               f"{len(f.unknown_meds)} medication(s) not recognized by the rules, check them: {shown}")
        d.applied("vocabulary", f"{len(f.unknown_meds)} unrecognised medication(s) flagged")


_MED_CAUTIONS = (
    ("beta_blocker", "beta_blocker", "Beta-blocker: heart rate will not reflect effort; use the 0-10 effort scale."),
    ("anticoagulant", "anticoagulant", "Blood thinner: a fall can cause serious bleeding; report any fall."),
    ("fall_risk", "fall_risk_medication", "Medication that raises falls risk: review with the prescriber."),
    ("hypoglycaemic", "hypoglycaemia_risk", "Glucose-lowering medication: check for low blood sugar around sessions."),
)


def medication_cautions(d: Draft) -> None:
    for cls, code, message in _MED_CAUTIONS:
        if cls in d.facts.med_classes:
            d.flag(code, "caution", message)
            d.applied("medication_cautions", f"{code}: caution")


GATES: tuple[Rule, ...] = (
    diagnosis_in_scope, age_in_scope, fracture_dates_valid,
    bone_category, falls_overlay,
    suspected_vertebral_fracture, spinal_red_flag, blood_pressure_urgent, unstable_cardiopulmonary,
    recent_fracture, multiple_vertebral_fractures, back_pain, falls_review, frailty_review,
    cardiovascular_review, blood_pressure_review, comorbidity_review, past_conditions,
    age_premenopausal_review, glucocorticoid_review, missing_fracture_history,
    diagnosis_consistency, referrer_restrictions, language_review,
    soft_flags, vocabulary, medication_cautions,
)
