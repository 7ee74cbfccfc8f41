"""The handout as a 78-year-old reads it (issue 16): large type, the stop box on
page 1, few pages, cards that never repeat or contradict themselves, stages
and cards with the same doses, "Your week" and the log with the same days,
precautions about this plan only, what to do after a fall, US English and
the clinic's units. Real plans from the engine, real PDFs read with PDFium."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import re

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from documents_pdf_checks import page_texts, plain

from refflow.documents.handout import render_handout
from refflow.intake.schemas import Referral
from refflow.planning import rules as R
from refflow.planning.catalog import load_catalog
from refflow.planning.engine import build_plan
from refflow.planning.risk import assess_risk, derive_facts
from refflow.planning.text import render_text

AS_OF = dt.date(2026, 12, 7)
PLAIN = {  # the plain osteopenia referral
    "patient": {"given_name": "Joan", "family_name": "Okafor", "birth_date": "1956-04-10",
                "sex": "female"},
    "referrer": {"name": "Dr. L. Chen", "fax": "+1 763 555 0198"},
    "diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
    "clinical": {"t_score": -1.9, "fractures": [], "falls_last_12_months": 0,
                 "mobility_aid": "none", "can_rise_from_floor": True, "conditions": [],
                 "medications": ["vitamin d"], "activity_level": "light",
                 "exercise_history": "walks the dog"},
    "goals": ["stay strong"],
}
VERTEBRAL = {"t_score": -2.8, "fractures": [{"site": "vertebral", "level": "T12",
                                             "date": "2024-03-01", "low_trauma": True}]}
FALLS = {"t_score": -2.6, "falls_last_12_months": 2, "mobility_aid": "walker",
         "can_rise_from_floor": False}


def referral(**clinical) -> Referral:
    return Referral.model_validate({**PLAIN, "clinical": {**PLAIN["clinical"], **clinical}})


@pytest.fixture(scope="module")
def plans() -> dict[str, tuple[Referral, dict]]:
    out = {}
    for name, clinical in (("plain", {}), ("vertebral", VERTEBRAL), ("falls", FALLS)):
        r = referral(**clinical)
        out[name] = r, build_plan(r, as_of=AS_OF)
    r, plan = out["plain"]
    assert plan["decision"] == "release"
    out["plain"] = r, {**plan, "approved": {"by": "pt@example.org", "at": "2026-12-07T15:00:00Z"}}
    return out


def char_sizes(pdf: bytes) -> collections.Counter:
    """How many visible characters are set in each font size (points)."""
    sizes: collections.Counter = collections.Counter()
    doc = pdfium.PdfDocument(pdf)
    try:
        for i in range(len(doc)):
            textpage = doc[i].get_textpage()
            for index in range(textpage.count_chars()):
                if not chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, index)).isspace():
                    sizes[round(pdfium_c.FPDFText_GetFontSize(textpage.raw, index))] += 1
    finally:
        doc.close()
    return sizes


def text_of(pdf: bytes) -> str:
    return plain(" ".join(page_texts(pdf)))


@pytest.mark.parametrize("paper", ["letter", "a4"])
def test_the_plain_osteopenia_handout_is_seven_pages_at_most_in_14_pt(plans, clinic, paper):
    """Six pages of words; the exercise drawings (issue 19) add one on Letter."""
    r, plan = plans["plain"]
    pdf = render_handout(r, plan, clinic, paper=paper)
    assert len(page_texts(pdf)) <= 7
    sizes = char_sizes(pdf)
    assert min(sizes) >= 12
    assert sizes.most_common(1)[0][0] == 14  # the body
    assert sum(n for size, n in sizes.items() if size < 14) < 0.05 * sum(sizes.values())


def test_large_print_sets_the_body_in_16_pt(plans, clinic):
    r, plan = plans["plain"]
    sizes = char_sizes(render_handout(r, plan, dataclasses.replace(clinic, large_print=True)))
    assert min(sizes) >= 12 and sizes.most_common(1)[0][0] == 16


@pytest.mark.parametrize("name", ["plain", "vertebral", "falls"])
def test_the_stop_box_is_on_page_one(plans, clinic, name):
    r, plan = plans[name]
    first = plain(page_texts(render_handout(r, plan, clinic))[0])
    assert "Stop and call us if" in first
    for item in plan["stop_and_call_if"]:
        assert plain(item) in first


def _card_lines(entry: dict) -> list[str]:
    return [*entry["instructions"], entry["safety_cue"], entry["progression"], entry["regression"]]


def _words(line: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", line.lower()))


def _entries():
    """Every home-plan catalogue exercise as the engine writes it, with and
    without the high-falls-risk overlay."""
    catalog = load_catalog()
    for clinical in ({}, FALLS):
        facts = derive_facts(referral(**clinical), AS_OF)
        d = R.Draft(facts=facts, risk=assess_risk(facts), catalog=catalog)
        R.impact_limit(d)
        for e in catalog.exercises:
            if "all" not in e.avoid_for:
                yield d.risk.falls_high, R.exercise_entry(e, R.component_of(e), d, e.days_per_week)


def test_no_card_repeats_a_line():
    """No step, safety line, progression or regression says the same as another
    line of its card: the same words, or a line of four words or more inside
    another ("Stand up." may begin "Stand up without using your hands")."""
    for falls_high, entry in _entries():
        lines = [_words(line) for line in _card_lines(entry)]
        for i, a in enumerate(lines):
            for b in lines[i + 1:]:
                short, long = sorted((a, b), key=len)
                assert short != long, (entry["id"], falls_high, a)
                assert len(short.split()) < 4 or short not in long, (entry["id"], falls_high, a, b)


def test_balance_cards_reduce_hand_support_step_by_step():
    """Hold on with both hands to start, then one hand, fingertips, none: no card
    starts with one hand and then asks for both, and only the first step says
    how to hold on."""
    for falls_high, entry in _entries():
        if entry["component"] != "balance":
            continue
        steps = [line.lower() for line in entry["instructions"]]
        holds = [s for s in steps if "hand" in s]
        assert len(holds) <= 1, entry["id"]
        if holds and "both hands" in holds[0]:
            assert "one hand" in entry["progression"].lower(), entry["id"]
        card = " ".join(_card_lines(entry)).lower()
        assert not ("one hand" in " ".join(steps) and "both hands" in card), entry["id"]
        if falls_high:
            assert entry["safety_cue"].startswith(R.FALLS_SUPPORT)
            assert entry["safety_cue"].count("support") == 1


@pytest.mark.parametrize("name", ["plain", "vertebral", "falls"])
def test_the_stages_give_the_doses_the_cards_give(plans, name):
    """Stage 1 names the strength cards' starting sets and repeats; stage 3
    their full sets (dose_target): one source of truth for the plan JSON, the
    text of `refflow plan` and the handout."""
    _, plan = plans[name]
    strength = [e for e in plan["exercises"] if e["component"] == "strength" and e["dose"]["reps"]]
    reps = sorted({e["dose"]["reps"] for e in strength})
    span = f"{reps[0]}-{reps[-1]}" if len(reps) > 1 else str(reps[0])
    sets = {e["dose"]["sets"] for e in strength}
    full = {e["dose_target"]["sets"] for e in strength}
    assert len(sets) == 1 and len(full) == 1
    stage1, _, stage3, _ = (p["changes"] for p in plan["phases"])
    assert f"Strength: {sets.pop()} set of {span}," in stage1
    assert f"Strength: {full.pop()} sets of {span}," in stage3
    assert "10-12" not in " ".join(p["changes"] for p in plan["phases"])
    walk = next(e for e in plan["exercises"] if e["component"] == "aerobic")
    assert f"{walk['dose']['minutes']} minutes" in stage1
    assert f"{walk['dose_target']['minutes']} minutes" in stage3
    text = plain(render_text(plan))
    for phase in plan["phases"]:
        assert plain(phase["changes"]) in text


@pytest.mark.parametrize("name", ["plain", "vertebral", "falls"])
def test_your_week_and_the_log_agree_on_the_days(plans, clinic, name):
    """A day with exercises in "Your week" has a tick box in the log; "Rest" is
    written only on a day without any exercise, in both."""
    r, plan = plans[name]
    texts = page_texts(render_handout(r, plan, clinic))
    text = plain(" ".join(texts))
    [log] = [t for t in texts if "My exercise log" in t]
    rest = [d["day"] for d in plan["weekly_schedule"] if not d["exercises"]]
    assert ("Rest" in log) == bool(rest)
    assert ("Rest day" in text) == bool(rest)
    for day in plan["weekly_schedule"]:  # each card names its days
        for ex_id in day["exercises"]:
            assert any(e["id"] == ex_id for e in plan["exercises"])


@pytest.mark.parametrize("name", ["plain", "vertebral", "falls"])
def test_precautions_speak_only_of_what_the_plan_holds(plans, name):
    _, plan = plans[name]
    ids = {e["id"] for e in plan["exercises"]}
    text = " ".join(plan["precautions"]).lower()
    if "brisk_walking" not in ids:
        assert "brisk walking" not in text
    if "jogging" not in ids:
        assert "unless this plan lists" not in text
    if not plan["risk"]["falls_high"]:
        assert R.FALL_PLAN_TITLE.lower() not in text


def test_a_falls_risk_handout_says_what_to_do_after_a_fall(plans, clinic):
    r, plan = plans["falls"]
    assert plan["risk"]["falls_high"]
    assert "brisk_walking" not in {e["id"] for e in plan["exercises"]}
    text = text_of(render_handout(r, plan, clinic))
    assert "If you fall and cannot get up" in text
    for words in ("do not rush", "roll onto your side", "sturdy chair", "call for help",
                  "phone", "keep warm", "Tell your therapist"):
        assert words in text
    assert any("fall" in item for item in plan["stop_and_call_if"])
    assert "Stop and call us if" in text


@pytest.mark.parametrize("name", ["plain", "vertebral", "falls"])
def test_us_english_in_the_plan_and_the_handout(plans, clinic, name):
    r, plan = plans[name]
    words = (text_of(render_handout(r, plan, clinic)) + " " + render_text(plan)).lower()
    for british in ("programme", "practise", "familiarise", "centimetre", "metre "):
        assert british not in words


def test_weights_in_pounds_for_a_us_clinic_and_kilograms_elsewhere(clinic):
    r = referral(**FALLS)
    us = build_plan(r, as_of=AS_OF)
    uk = build_plan(r, as_of=AS_OF, locale="en_GB")
    us_text, uk_text = render_text(us), render_text(uk)
    assert "2 lb" in us_text and "kg" not in us_text
    assert "1 kg" in uk_text and " lb" not in uk_text
    assert "2 lb" in text_of(render_handout(r, {**us, "decision": "release"}, clinic))
    uk_clinic = dataclasses.replace(clinic, locale="en_GB")
    assert "1 kg" in text_of(render_handout(r, {**uk, "decision": "release"}, uk_clinic))


def test_the_handout_knows_the_plans_fall_plan_by_its_title():
    """documents may not import planning: the handout keeps the title the plan
    JSON's fall-plan precaution starts with, and it must stay the same."""
    from refflow.documents import handout
    from refflow.planning import rules

    assert handout.FALL_PLAN_TITLE == rules.FALL_PLAN_TITLE
