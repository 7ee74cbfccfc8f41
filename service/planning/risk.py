"""Facts derived from a referral, and the risk classification (guidance §2).

``derive_facts`` turns the validated referral into plain values the rules
need (ages and intervals computed against ``as_of``, vocabulary matched).
``assess_risk`` applies guidance §2.1 (bone category A/B/C, first match wins
top down, then the glucocorticoid upgrade) and §2.2 (falls overlay).
Unknown is the cautious case throughout: unknown fracture history is
category C, unknown falls history is high falls risk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from refflow.intake.schemas import Condition, Medication, Referral
from refflow.planning import vocabulary as vocab

RECENT_FRACTURE_DAYS = 84  # 12 weeks  [D; ROS via BMJ BP 4-12 weeks]
VERY_RECENT_VERTEBRAL_DAYS = 28  # 4 weeks
ACUTE_PAIN_DAYS = 42  # 6 weeks
GC_DOSE_MG = 7.5
GC_DAYS = 90  # 3 months
GC_VERY_HIGH_MG = 30.0
GC_VERY_HIGH_DAYS = 30


@dataclass(frozen=True, slots=True)
class FractureFact:
    site: str
    days_ago: int | None  # None = date unknown
    low_trauma: bool  # unknown counts as low trauma (cautious)
    date: dt.date | None


@dataclass(frozen=True, slots=True)
class Glucocorticoid:
    pred_mg: float | None  # prednisolone-equivalent mg/day; None = unknown
    days: int | None  # how long (courses: days taken in the last year), None = unknown
    since: dt.date | None
    intermittent: bool = False  # taken in courses, not every day


@dataclass(frozen=True, slots=True)
class Facts:
    as_of: dt.date
    age: int
    diagnoses: frozenset[str]  # subset of vocab.BONE_DIAGNOSES
    diagnosis_concepts: frozenset[str]
    dx_implies_fracture: bool
    dx_implies_vertebral: bool
    t_score: float | None
    frax_mof: float | None
    frax_hip: float | None
    fractures_known: bool
    fractures: tuple[FractureFact, ...]
    falls: int | None
    injurious_fall: bool | None
    fear_of_falling: bool | None
    aid: str | None
    can_rise: bool | None
    pain_score: int | None
    pain_spinal: bool
    pain_days: int | None
    pain_after_minor_trauma: bool | None
    bp: tuple[int, int] | None
    conditions: frozenset[str]  # acute, current or of unknown status (the cautious case)
    past_conditions: tuple[str, ...]  # entries (the referral's words) past, resolved or stable
    unknown_conditions: tuple[str, ...]
    med_classes: frozenset[str]
    unknown_meds: tuple[str, ...]
    glucocorticoids: tuple[Glucocorticoid, ...]
    lives_alone: bool
    language: str  # the patient's preferred language (BCP 47, e.g. "en", "es")
    activity: str | None
    new_to_exercise: bool
    habitual_runner: bool
    gym_access: bool
    restrictions_text: bool
    goals_text: str  # normalised, for keyword matching only (never echoed)

    @property
    def low_trauma_fractures(self) -> tuple[FractureFact, ...]:
        return tuple(f for f in self.fractures if f.low_trauma)

    @property
    def any_vertebral(self) -> bool:
        return self.dx_implies_vertebral or "vertebral_fracture" in self.conditions or any(
            f.site == "vertebral" for f in self.fractures)

    @property
    def on_glucocorticoid(self) -> bool:
        return bool(self.glucocorticoids)


_RUN_WORDS = (" run", " runs", " running", " runner", " jog", " jogs", " jogging", " parkrun")
_NONE_WORDS = (" none ", " no exercise", " never ", " nothing ", " inactive ", " sedentary ")


def _days(as_of: dt.date, day: dt.date | None) -> int | None:
    if day is None:
        return None
    return max((as_of - day).days, 0)


def derive_facts(referral: Referral, as_of: dt.date) -> Facts:
    c = referral.clinical
    dx_concepts: set[str] = set()
    for code in referral.diagnosis.codes:
        dx_concepts |= vocab.match_condition(code)
    if referral.diagnosis.text:
        dx_concepts |= vocab.match_condition(referral.diagnosis.text)
    codes = referral.diagnosis.codes
    implies_fracture = any(code.startswith("M80") for code in codes)
    if implies_fracture:  # "osteoporosis with current pathological fracture", whatever the site
        dx_concepts.add("osteoporosis")
    diagnoses = frozenset(dx_concepts & set(vocab.BONE_DIAGNOSES))
    implies_vertebral = "vertebral_fracture" in dx_concepts

    conditions, past, unknown_conditions = _read_conditions(c.conditions or (), as_of)
    if "vertebral_fracture" in dx_concepts:
        conditions.add("vertebral_fracture")

    med_classes: set[str] = set()
    unknown_meds = []
    gcs = []
    for med in c.medications or ():
        if not isinstance(med, Medication):
            med = Medication(name=med)
        match = vocab.match_medication(med.name)
        if match.drug_class is None:
            unknown_meds.append(med.name)
            continue
        if match.drug_class == "glucocorticoid" and (med.route or match.route) in vocab.LOCAL_ROUTES:
            med_classes.add("local_steroid")
            continue
        med_classes.add(match.drug_class)
        if match.drug_class == "glucocorticoid":
            gcs.append(_glucocorticoid(med, match, as_of))

    if "oxygen" in med_classes:
        conditions.add("severe_lung_disease")
    lives_alone = "lives_alone" in conditions or vocab.mentions(referral.notes or "", "lives_alone")

    fractures = []
    for f in c.fractures or ():
        fractures.append(FractureFact(
            site=f.site,
            days_ago=None if f.date is None else (as_of - f.date).days,
            low_trauma=f.low_trauma is not False,
            date=f.date,
        ))

    pain = c.pain
    history = vocab.normalise_text(c.exercise_history or "")
    habitual_runner = c.activity_level == "active" and any(w in history for w in _RUN_WORDS)
    new_to_exercise = c.activity_level == "sedentary" or (
        c.activity_level is None and (not c.exercise_history or any(w in history for w in _NONE_WORDS)))
    return Facts(
        as_of=as_of,
        age=referral.age_on(as_of),
        diagnoses=diagnoses,
        diagnosis_concepts=frozenset(dx_concepts),
        dx_implies_fracture=implies_fracture,
        dx_implies_vertebral=implies_vertebral,
        t_score=c.t_score,
        frax_mof=c.frax.major_osteoporotic if c.frax else None,
        frax_hip=c.frax.hip if c.frax else None,
        fractures_known=c.fractures is not None,
        fractures=tuple(fractures),
        falls=c.falls_last_12_months,
        injurious_fall=c.injurious_fall,
        fear_of_falling=c.fear_of_falling,
        aid=c.mobility_aid,
        can_rise=c.can_rise_from_floor,
        pain_score=pain.score if pain else None,
        pain_spinal=bool(pain) and (pain.site is None or vocab.is_spinal_site(pain.site)),
        pain_days=_days(as_of, pain.since) if pain else None,
        pain_after_minor_trauma=pain.after_minor_trauma if pain else None,
        bp=(c.blood_pressure.systolic, c.blood_pressure.diastolic) if c.blood_pressure else None,
        conditions=frozenset(conditions),
        past_conditions=tuple(dict.fromkeys(past)),
        unknown_conditions=tuple(unknown_conditions),
        med_classes=frozenset(med_classes),
        unknown_meds=tuple(unknown_meds),
        glucocorticoids=tuple(gcs),
        lives_alone=lives_alone,
        language=referral.patient.preferred_language,
        activity=c.activity_level,
        new_to_exercise=new_to_exercise,
        habitual_runner=habitual_runner,
        gym_access=bool(c.gym_access),
        restrictions_text=bool(c.contraindications_text and c.contraindications_text.strip()),
        goals_text=vocab.normalise_text(" | ".join(referral.goals)),
    )


def _read_conditions(entries, as_of: dt.date) -> tuple[set[str], list[str], list[str]]:
    """(current concepts, the entries that are past or stable and no longer count as
    anything else, unrecognised texts)."""
    current: set[str] = set()
    past: list[str] = []
    unknown: list[str] = []
    for entry in entries:
        if isinstance(entry, Condition):
            text = entry.text or ""
            found = set(vocab.match_condition(entry.code)) if entry.code else set()
            timing = vocab.condition_timing(text) if text else vocab.Timing(None, None)
            said = vocab.STATUS_READING.get(entry.status or "", timing.said)
            on = entry.since or timing.on
        else:
            text, found, (said, on) = entry, set(), vocab.condition_timing(entry)
        if text:
            found |= vocab.match_condition(text)
        if not found:
            unknown.append(text or entry.code)
        for concept in found:
            if vocab.is_current(concept, said, on, as_of):
                current.add(vocab.WHEN_CURRENT.get(concept, concept))
            else:
                current.add(vocab.WHEN_NOT_CURRENT[concept])
                if vocab.WHEN_NOT_CURRENT[concept] == "past_condition":
                    past.append(_words(entry))
    return current, past, unknown


def _words(entry) -> str:
    """A condition entry in the referral's own words (for the reviewer's flag)."""
    if isinstance(entry, str):
        return entry
    said = ", ".join(x for x in (entry.status, entry.since and f"since {entry.since}") if x)
    return " ".join(x for x in (entry.text, entry.code) if x) + (f" ({said})" if said else "")


def _glucocorticoid(med: Medication, match: vocab.MedMatch, as_of: dt.date) -> Glucocorticoid:
    """How much and how long: every day since a date, or in courses (guidance §2.1)."""
    def pred(dose: float | None) -> float | None:
        return dose * match.pred_factor if (dose is not None and match.pred_factor) else None

    dose = med.dose_mg_per_day if med.dose_mg_per_day is not None else match.dose_mg
    if med.courses:
        last_year = [x for x in med.courses if (as_of - x.start).days <= 365]
        doses = [pred(x.dose_mg_per_day if x.dose_mg_per_day is not None else dose) for x in last_year]
        counted = [x.days for x, d in zip(last_year, doses) if d is None or d >= GC_DOSE_MG]
        known = [d for d in doses if d is not None]
        return Glucocorticoid(pred_mg=max(known) if known else None, days=sum(counted),
                              since=min((x.start for x in last_year), default=None), intermittent=True)
    if med.course == "intermittent" or (med.course is None and match.short_course):
        return Glucocorticoid(pred_mg=pred(dose), days=match.course_days, since=None, intermittent=True)
    return Glucocorticoid(pred_mg=pred(dose), days=_days(as_of, med.since), since=med.since)


# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Risk:
    bone_category: str
    falls_high: bool
    reasons: tuple[str, ...]
    gc_upgrade: bool
    gc_assumed: bool  # upgrade applied because dose or duration was unknown

    def as_dict(self) -> dict:
        return {"bone_category": self.bone_category, "falls_high": self.falls_high,
                "reasons": list(self.reasons)}


def glucocorticoid_upgrade(facts: Facts) -> tuple[bool, bool]:
    """(upgrade, assumed): prednisolone-eq >= 7.5 mg/day for >= 3 months (§2.1)."""
    upgrade = assumed = False
    for gc in facts.glucocorticoids:
        dose_ok = gc.pred_mg is None or gc.pred_mg >= GC_DOSE_MG
        if gc.intermittent and gc.days is None:
            continue  # courses of unknown length: not read as daily use (a caution says so)
        days_ok = gc.days is None or gc.days >= GC_DAYS
        if dose_ok and days_ok:
            upgrade = True
            if gc.pred_mg is None or gc.days is None:
                assumed = True
    return upgrade, assumed


def assess_risk(facts: Facts) -> Risk:
    reasons: list[str] = []
    low = facts.low_trauma_fractures
    vertebral = [f for f in low if f.site == "vertebral"]
    # --- §2.1 category C
    c_reasons = []
    if vertebral or facts.dx_implies_vertebral or "vertebral_fracture" in facts.conditions:
        c_reasons.append("low-trauma vertebral fracture")
    if len(low) >= 2:
        c_reasons.append("two or more low-trauma fractures")
    if facts.t_score is not None and facts.t_score <= -3.5:
        c_reasons.append("T-score -3.5 or lower")
    if (facts.frax_mof is not None and facts.frax_mof >= 30) or (
            facts.frax_hip is not None and facts.frax_hip >= 4.5):
        c_reasons.append("FRAX at very-high-risk level (MOF >=30% or hip >=4.5%)")
    if not facts.fractures_known:
        c_reasons.append("fracture history unknown (treated as the cautious case)")
    b_reasons = []
    if "osteoporosis" in facts.diagnoses:
        b_reasons.append("diagnosis of osteoporosis")
    if "high_fracture_risk" in facts.diagnoses:
        b_reasons.append("diagnosis of high fracture risk")
    if facts.t_score is not None and facts.t_score <= -2.5:
        b_reasons.append("T-score -2.5 or lower")
    if len(low) == 1 and not vertebral:
        b_reasons.append("one low-trauma non-vertebral fracture")
    if (facts.frax_mof is not None and facts.frax_mof >= 20) or (
            facts.frax_hip is not None and facts.frax_hip >= 3):
        b_reasons.append("FRAX at intervention level (MOF >=20% or hip >=3%)")
    if facts.dx_implies_fracture and not c_reasons:
        b_reasons.append("diagnosis code implies a current fragility fracture")
    if c_reasons:
        category, reasons = "C", c_reasons
    elif b_reasons:
        category, reasons = "B", b_reasons
    else:
        category = "A"
        reasons = ["low bone mass without osteoporosis-level criteria"]
    upgrade, assumed = glucocorticoid_upgrade(facts)
    upgrade = upgrade and category != "C"  # C is the highest: nothing to raise
    if upgrade:
        category = "B" if category == "A" else "C"
        reasons.append("long-term glucocorticoids (>=7.5 mg/day prednisolone-equivalent for >=3 months)"
                       + (", dose or duration not given: assumed" if assumed else ""))
    # --- §2.2 falls overlay
    falls_reasons = []
    if facts.falls is None:
        falls_reasons.append("falls history unknown (treated as high falls risk)")
    elif facts.falls >= 2:
        falls_reasons.append("two or more falls in 12 months")
    if facts.injurious_fall:
        falls_reasons.append("injurious fall")
    if facts.aid in ("cane", "walker", "rollator", "wheelchair"):
        falls_reasons.append(f"uses a walking aid ({facts.aid})")
    if facts.fear_of_falling or "unsteadiness" in facts.conditions:
        falls_reasons.append("fear of falling or unsteadiness")
    if facts.age >= 80 and facts.falls is not None and facts.falls >= 1:
        falls_reasons.append("age 80+ with a fall in 12 months")
    reasons.extend(falls_reasons)
    return Risk(category, bool(falls_reasons), tuple(reasons), upgrade, upgrade and assumed)
