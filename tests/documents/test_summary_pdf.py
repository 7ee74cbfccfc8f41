"""The referrer's summary: one page a referring doctor reads — the decision, why in plain
words, what the clinic needs from them, the plan in brief — with no rule names or codes."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re

import pytest
from documents_pdf_checks import fill_colours, font_sizes, fonts, page_texts, plain

from refflow.documents.summary import render_summary
from refflow.intake.schemas import Referral
from refflow.planning.engine import build_plan

AS_OF = dt.date(2026, 11, 25)
PAPERS = ("letter", "a4")
LONG = "Maria-Fernanda Alexandra Guadalupe Villanueva-Hernandez de la Cruz y Montenegro " * 3
# Something in the doctor's words never looks like an identifier such as
# needs_review, bp_160_179_or_100_109 or squat_to_chair.
IDENTIFIER = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")


def referral(**clinical) -> Referral:
    facts = {"t_score": -1.9, "fractures": [], "falls_last_12_months": 0, "mobility_aid": "none",
             "can_rise_from_floor": True, "conditions": [], "medications": ["vitamin d"],
             "activity_level": "light", "exercise_history": "walks the dog"}
    return Referral.model_validate({
        "patient": {"given_name": "Joan", "family_name": "Okafor", "birth_date": "1956-04-10",
                    "sex": "female"},
        "referrer": {"name": "Dr. L. Chen", "fax": "+1 763 555 0198"},
        "diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
        "clinical": facts | clinical, "goals": ["stay strong"]})


MANY_FLAGS = {
    "t_score": -3.4, "falls_last_12_months": 3, "injurious_fall": True, "mobility_aid": "walker",
    "can_rise_from_floor": False,
    "fractures": [{"site": "vertebral", "level": "L1", "date": "2026-11-10", "low_trauma": True},
                  {"site": "wrist", "low_trauma": True},
                  {"site": "vertebral", "level": "T8", "date": "2025-01-01", "low_trauma": True}],
    "pain": {"score": 5, "site": "back", "since": "2026-11-01"},
    "blood_pressure": {"systolic": 168, "diastolic": 96},
    "conditions": ["coronary artery disease", "parkinson disease", "dementia",
                   "rheumatoid arthritis", "type 2 diabetes", "COPD", "hyperkyphosis",
                   "severe knee osteoarthritis", "zebra syndrome"],
    "medications": ["prednisone", "warfarin", "metoprolol", "insulin", "zolpidem", "frobnicol"],
    "activity_level": "sedentary", "contraindications_text": "no lifting over 5 lb",
}
DO_NOT_EXERCISE = {"pain": {"score": 8, "site": "back", "since": "2026-11-20"},
                   "blood_pressure": {"systolic": 186, "diastolic": 112}}


def text_of(pdf: bytes) -> str:
    return plain(" ".join(page_texts(pdf)))


def no_identifiers(text: str, plan: dict) -> None:
    assert not IDENTIFIER.findall(text)
    codes = {f["code"] for f in plan.get("flags") or []}
    codes |= {r["rule"] for r in plan.get("rules_applied") or [] if "_" in r["rule"]}
    codes |= {e["id"] for e in plan.get("exercises") or []}
    assert not [c for c in codes if c in text]


@pytest.fixture(scope="module")
def plain_plan():
    return build_plan(referral(), as_of=AS_OF)


def test_a_released_plan_says_what_a_doctor_needs_on_one_page(plain_plan, clinic):
    pdf = render_summary(referral(), plain_plan, clinic)
    text = text_of(pdf)
    assert len(page_texts(pdf)) == 1
    for wanted in ("Okafor, Joan", "April 10, 1956", "Dr. L. Chen", "November 25, 2026",
                   "Plan released", "What we need from you", "Nothing: no action is needed",
                   "Strength 2 days a week", "balance daily", "building to 150 minutes a week",
                   "review at 12 weeks", "no high impact", clinic.phone, clinic.fax,
                   clinic.name):
        assert wanted in text
    no_identifiers(text, plain_plan)
    assert min(font_sizes(pdf)) >= 10  # the letterhead; the body is 11 pt
    assert fill_colours(pdf) <= {"0 g", "0 G"}
    assert all(fonts(pdf).values())


def test_the_approver_and_the_day_are_named(plain_plan, clinic):
    plan = dict(plain_plan, approved={"by": "Dr. Pat Kim, PT", "at": "2026-11-26T15:00:00+00:00"})
    assert "Approved by Dr. Pat Kim, PT on November 26, 2026." in text_of(
        render_summary(referral(), plan, clinic))


def test_dates_follow_the_clinics_locale(plain_plan, clinic):
    british = dataclasses.replace(clinic, locale="en_GB")
    text = text_of(render_summary(referral(), plain_plan, british))
    assert "10 April 1956" in text and "25 November 2026" in text
    assert "April 10, 1956" not in text


def test_flags_become_plain_sentences_and_requests(clinic):
    plan = build_plan(referral(medications=["prednisone"], conditions=["heart failure"],
                               t_score=None), as_of=AS_OF)
    text = text_of(render_summary(referral(), plan, clinic))
    assert "Held for review" in text
    assert "Heart disease is listed: we need medical clearance" in text
    assert "Please confirm the glucocorticoid dose and start date." in text
    assert "Please send the T-score." in text
    no_identifiers(text, plan)


def test_do_not_exercise_asks_the_doctor_to_see_the_patient_first(clinic):
    plan = build_plan(referral(**DO_NOT_EXERCISE), as_of=AS_OF)
    assert plan["decision"] == "do_not_exercise"
    text = text_of(render_summary(referral(), plan, clinic))
    assert "Do not exercise yet" in text
    requests = text.split("What we need from you", 1)[1]
    assert requests.lstrip(" •").startswith("Please see the patient before any exercise starts.")
    assert "No exercise plan was made" in text
    no_identifiers(text, plan)


def fifteen_flags(plan: dict) -> dict:
    plan = copy.deepcopy(plan)
    plan["decision"] = "review"
    plan["flags"] = [{"code": f"clinic_rule_{n}", "severity": "needs_review",
                      "message": f"The clinic's own check number {n} found something in the "
                                 "referral that a clinician must look at before the plan goes "
                                 "out; this message is deliberately long to fill the page.",
                      "source": "plugin"} for n in range(15)]
    return plan


WORST = {
    "many_flags": lambda: (referral(**MANY_FLAGS),
                           build_plan(referral(**MANY_FLAGS), as_of=AS_OF)),
    "do_not_exercise": lambda: (referral(**DO_NOT_EXERCISE),
                                build_plan(referral(**DO_NOT_EXERCISE), as_of=AS_OF)),
    "review_15_flags": lambda: (referral(), fifteen_flags(build_plan(referral(), as_of=AS_OF))),
    "long_names": lambda: (referral(**MANY_FLAGS).model_copy(update={
        "patient": referral().patient.model_copy(update={"given_name": LONG[:200],
                                                         "family_name": LONG[:200]}),
        "referrer": referral().referrer.model_copy(update={"name": LONG[:200]}),
        "external_id": "X" * 64}), build_plan(referral(**MANY_FLAGS), as_of=AS_OF)),
}


@pytest.mark.parametrize("paper", PAPERS)
@pytest.mark.parametrize("case", list(WORST))
def test_the_worst_cases_still_fit_one_page(case, paper, clinic):
    ref, plan = WORST[case]()
    text = page_texts(render_summary(ref, plan, clinic, paper=paper))
    assert len(text) == 1
    page = plain(text[0])
    assert "What we need from you" in page and "The plan in brief" in page
    assert clinic.phone in page  # the contact line is never the part that is cut
    if case in ("many_flags", "review_15_flags"):
        assert re.search(r"and \d+ more – see the chart record", page)


def test_every_flag_the_engine_raises_has_plain_words_for_the_doctor():
    """A new rule's flag code must not reach the referring doctor as a code or as
    the clinician's message: each one the built-in rules can raise is in the
    summary's table (or deliberately left off with None)."""
    from pathlib import Path

    import refflow.planning.gates as gates
    import refflow.planning.rules as rules
    from refflow.documents.summary import FLAG_TEXT

    source = Path(gates.__file__).read_text() + Path(rules.__file__).read_text()
    codes = set(re.findall(r'd\.flag\(\s*"([a-z0-9_]+)"', source))
    codes |= {code for _, code, _ in gates._COMORBID}
    codes |= {code for _, code, _ in gates._MED_CAUTIONS}
    assert len(codes) > 30
    assert sorted(codes - set(FLAG_TEXT)) == []
