"""The patient's texts in their language (issue 19, "In the patient's language").

A Spanish-speaking patient's referral (``patient.preferred_language: "es"``)
gets a Spanish handout and a Spanish email when the clinic allows the
Spanish translation, which is honestly marked unreviewed; the referrer's
summary (and so the fax page) stays in English. A language without a
translation, or the unreviewed Spanish with the setting off, gives the
English handout and the ``interpreter_needed`` flag for staff.
"""

from __future__ import annotations

import copy
import datetime as dt
import email
import email.policy
import json
import re
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from babel.messages.pofile import read_po
from documents_pdf_checks import page_texts, plain

from refflow.config import load_settings
from refflow.documents import translations as tr
from refflow.documents.handout import render_handout
from refflow.documents.names import HANDOUT, SUMMARY
from refflow.documents.plan_text import plan_sentence
from refflow.documents.render import render_all
from refflow.intake.schemas import Referral
from refflow.planning import translations as planning_translations
from refflow.planning.catalog import load_catalog
from refflow.planning.engine import build_plan
from refflow.plugins.channels.base import Delivery
from refflow.plugins.channels.email import EmailChannel

AS_OF = dt.date(2026, 11, 25)
EXAMPLE = Path(__file__).parents[2] / "examples" / "referrals" / "design-example.json"
PO = tr.LOCALE_DIR / "es" / "LC_MESSAGES" / "refflow.po"


def referral_in(language: str | None, **clinical) -> Referral:
    data = json.loads(EXAMPLE.read_text())
    data["patient"]["preferred_language"] = language
    data["clinical"].update(clinical)
    return Referral.model_validate(data)


def released(plan: dict) -> dict:
    """The plan as it goes out (the example's flags hold it for a clinician)."""
    plan = copy.deepcopy(plan)
    plan["decision"] = "release"
    return plan


def pdf_text(pdf: bytes) -> str:
    return plain(" ".join(page_texts(pdf)))


def english_exercise_sentences() -> set[str]:
    """Every English sentence of the catalogue a card shows (names, steps, cues)."""
    out = set()
    for ex in load_catalog().exercises:
        out.update(s for s in ex.instructions)
        out.update({ex.safety_cue, ex.progression, ex.regression})
    return {s.strip() for s in out if len(s.split()) >= 3}


def shingles(text: str, n: int = 4) -> set[str]:
    words = re.findall(r"[A-Za-z']+", text.lower())
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


@pytest.fixture(scope="module")
def spanish_plan() -> dict:
    plan = build_plan(referral_in("es"), as_of=AS_OF, allow_unreviewed_translations=True)
    assert plan["language"] == "es" and plan["translation_reviewed"] is False
    assert "interpreter_needed" not in {f["code"] for f in plan["flags"]}
    return released(plan)


@pytest.fixture(scope="module")
def spanish_documents(spanish_plan, clinic) -> dict[str, bytes]:
    return render_all(referral_in("es"), spanish_plan, clinic, now=dt.datetime(2026, 11, 25, 15, 0,
                                                                                 tzinfo=dt.UTC))


# ---- the handout ---------------------------------------------------------------

def test_spanish_patient_gets_a_spanish_handout_without_english_exercise_text(
        spanish_plan, spanish_documents):
    text = pdf_text(spanish_documents[HANDOUT])
    for english in english_exercise_sentences():
        assert plain(english) not in text, english
    # nor any four English words in a row from the cards of this plan
    english_cards = set()
    for ex in spanish_plan["exercises"]:
        for part in [ex["name"], *ex["instructions"], ex["safety_cue"], ex["progression"],
                     ex["regression"]]:
            english_cards |= shingles(part)
    assert not english_cards & shingles(text)
    for ex in spanish_plan["exercises"]:
        spanish = ex["translations"]["es"]
        assert plain(spanish["instructions"][0]) in text
    for words in ("Su plan de ejercicios", "Pare y llámenos si", "Sus ejercicios", "Su semana",
                  "Mi registro de ejercicios", "miércoles, 25 de noviembre de 2026", "Página 1 de"):
        assert words in text, words


def test_the_unreviewed_spanish_says_so_in_both_languages(spanish_documents):
    text = pdf_text(spanish_documents[HANDOUT])
    assert "todavía no ha sido revisada" in text
    assert "This translation has not yet been checked by a native speaker" in text


def test_spanish_cards_keep_the_plans_numbers(spanish_plan, spanish_documents):
    """The same doses and days as the English plan: "1 set of 10" is "1 serie de 10"."""
    text = pdf_text(spanish_documents[HANDOUT])
    with tr.using("es"):
        for ex in spanish_plan["exercises"]:
            dose = tr.dose_words(ex["dose"])
            assert dose, ex["id"]
            numbers = re.findall(r"\d+", ex["dose"]["text"])
            assert re.findall(r"\d+", dose) == numbers
            assert dose in text


def test_every_sentence_the_engine_writes_has_spanish():
    """Stages, precautions, the fall plan and "stop and call us if…" of several
    different plans all have a translation (a new English sentence in
    planning/rules.py must be added to documents/plan_text.py and the .po)."""
    cases = [
        {},
        {"falls_last_12_months": 3, "injurious_fall": True, "mobility_aid": "walker",
         "medications": ["warfarin", "metformin"], "conditions": ["diabetes"]},
        {"fractures": [], "t_score": -1.8, "falls_last_12_months": 0, "mobility_aid": "none",
         "exercise_history": "jogs three times a week", "activity_level": "active"},
        {"fractures": [{"site": "vertebral", "date": "2025-01-01", "low_trauma": True},
                       {"site": "vertebral", "date": "2024-01-01", "low_trauma": True}]},
    ]
    seen = 0
    for clinical in cases:
        plan = build_plan(referral_in("es", **clinical), as_of=AS_OF,
                          allow_unreviewed_translations=True)
        names = {}
        with tr.using("es"):
            from refflow.documents.handout import _exercise_names
            names = _exercise_names(plan)
            texts = [*plan["precautions"], *plan["stop_and_call_if"]]
            texts += [p["name"] for p in plan["phases"]] + [p["changes"] for p in plan["phases"]]
            for text in texts:
                assert plan_sentence(text, names), text
                seen += 1
    assert seen > 40


# ---- the referrer's documents stay in the clinic's language ---------------------

def test_the_referrers_summary_and_fax_page_stay_english(spanish_plan, spanish_documents):
    summary = pdf_text(spanish_documents[SUMMARY])
    for words in ("Exercise referral – plan summary", "The plan in brief", "Precautions:"):
        assert words in summary
    for ex in spanish_plan["exercises"]:
        assert plain(ex["translations"]["es"]["name"])[:20] not in summary
    assert not re.search(r"\b(Su plan|Pare y llámenos|Página)\b", summary)
    # the fax's page after its cover is this same summary (render_all renders it once)
    assert spanish_documents["fax.tiff"][:2] in (b"II", b"MM")


# ---- no translation, or an unreviewed one not allowed: English + the flag -------

def _interpreter(plan: dict) -> str | None:
    return next((f["message"] for f in plan["flags"] if f["code"] == "interpreter_needed"), None)


def test_a_language_without_a_translation_gets_english_and_the_flag(clinic):
    plan = build_plan(referral_in("vi"), as_of=AS_OF, allow_unreviewed_translations=True)
    assert plan["language"] == "en"
    message = _interpreter(plan)
    assert message and "Vietnamese" in message and "no complete translation" in message
    text = pdf_text(render_handout(referral_in("vi"), released(plan), clinic))
    assert "Your exercise plan" in text and "Su plan" not in text
    assert plain(plan["exercises"][0]["instructions"][0]) in text


def test_unreviewed_spanish_with_the_setting_off_gets_english_and_the_flag(clinic):
    plan = build_plan(referral_in("es"), as_of=AS_OF)  # the default: not allowed
    assert plan["language"] == "en"
    message = _interpreter(plan)
    assert message and "Spanish" in message and "not been reviewed" in message
    text = pdf_text(render_handout(referral_in("es"), released(plan), clinic))
    assert "Your exercise plan" in text and "Su plan de ejercicios" not in text


def test_the_setting_is_read_from_the_environment(tmp_path):
    env = {"REFFLOW_DATA_DIR": str(tmp_path)}
    assert load_settings(env).allow_unreviewed_translations is False
    env["REFFLOW_ALLOW_UNREVIEWED_TRANSLATIONS"] = "true"
    assert load_settings(env).allow_unreviewed_translations is True


def test_a_plugin_exercise_carries_its_own_translation():
    extra = {"id": "garden_squat", "name": "Garden squat", "category": "strength",
             "impact": "none", "spinal_flexion": False, "spinal_rotation": False,
             "loaded": False, "end_range": False, "equipment": "sturdy chair",
             "instructions": ["Hold the chair.", "Bend your knees a little."],
             "safety_cue": "Keep your back straight.", "progression": "Add a set.",
             "regression": "Bend less.", "plugin": "garden"}
    spanish = {"name": "Sentadilla de jardín", "equipment": "silla firme",
               "instructions": ["Agárrese de la silla.", "Doble un poco las rodillas."],
               "safety_cue": "Mantenga la espalda recta.", "progression": "Agregue una serie.",
               "regression": "Doble menos."}
    ok = build_plan(referral_in("es"), as_of=AS_OF, allow_unreviewed_translations=True,
                    extra_exercises=[{**extra, "translations": {"es": spanish}}])
    ex = next(e for e in ok["exercises"] if e["id"] == "garden_squat")
    assert ok["language"] == "es" and ex["translations"]["es"]["name"] == "Sentadilla de jardín"
    without = build_plan(referral_in("es"), as_of=AS_OF, allow_unreviewed_translations=True,
                         extra_exercises=[extra])
    assert without["language"] == "en"
    assert "garden_squat" in _interpreter(without)


# ---- the catalogues: complete, compiled, honestly marked -------------------------

def test_the_spanish_catalogues_are_complete_compiled_and_marked_unreviewed():
    complete, reviewed = planning_translations.language_status("es", load_catalog())
    assert complete and not reviewed
    assert tr.available("es") and not tr.reviewed("es")
    with PO.open("rb") as f:
        po = read_po(f)
    with (tr.LOCALE_DIR / "refflow.pot").open("rb") as f:
        pot = read_po(f)
    assert {m.id for m in pot if m.id} <= {m.id for m in po if m.id}
    compiled = tr.catalog("es")
    for message in po:
        if not message.id:
            continue
        assert message.string and not message.fuzzy, message.id
        if isinstance(message.id, tuple):
            assert compiled.ngettext(*message.id, 2) == message.string[1]
        else:
            assert compiled.gettext(message.id) == message.string, "recompile the .mo"


# ---- the email -------------------------------------------------------------------

class _Recorder:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content,
                                                      policy=email.policy.default))
        return "250 OK queued"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send(settings, delivery: Delivery) -> email.message.EmailMessage:
    recorder = _Recorder()
    port = _free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel = EmailChannel(settings.with_overrides(smtp_url=f"smtp://127.0.0.1:{port}"))
        channel.send(delivery)
    finally:
        controller.stop()
    (message,) = recorder.messages
    return message


def _delivery(pdf: bytes, language: str) -> Delivery:
    return Delivery(id="dlv-es-1", referral_id="ref-es", channel="email",
                    target="ana.lopez@example.org", documents={HANDOUT: pdf},
                    subject="Your exercise plan from Lakeside Rehab", recipient_name="Ana López",
                    language=language, document_name=HANDOUT)


def test_spanish_patient_gets_a_spanish_email(tmp_path, spanish_documents):
    settings = load_settings({"REFFLOW_DATA_DIR": str(tmp_path)}, clinic_name="Lakeside Rehab",
                             clinic_phone="+1 763 555 0100")
    message = _send(settings, _delivery(spanish_documents[HANDOUT], "es"))
    assert message["Subject"] == "Su plan de ejercicios de Lakeside Rehab"
    body = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert body.startswith("Hola, Ana López:")
    assert "viene adjunto a este correo" in body and "pare y llámenos" in body
    assert "¿Preguntas? Llame a Lakeside Rehab al +1 763 555 0100." in body
    assert '<html lang="es">' in html and "<strong>Lakeside Rehab</strong>" in html
    for english in ("Hello", "Your home exercise plan", "Start slowly", "Questions?",
                    "by mistake"):
        assert english not in body and english not in html
    (attachment,) = message.iter_attachments()
    assert attachment.get_content() == spanish_documents[HANDOUT]


def test_the_english_email_is_unchanged(tmp_path, spanish_documents):
    settings = load_settings({"REFFLOW_DATA_DIR": str(tmp_path)}, clinic_name="Lakeside Rehab")
    message = _send(settings, _delivery(spanish_documents[HANDOUT], "en"))
    assert message["Subject"] == "Your exercise plan from Lakeside Rehab"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert body.startswith("Hello Ana López,") and "Start slowly." in body


# ---- a clinician's revision keeps the patient's language ---------------------------

def test_a_revised_spanish_plan_stays_spanish_or_falls_back_with_the_flag():
    from refflow.planning.revisions import revise

    referral = referral_in("es")
    plan = build_plan(referral, as_of=AS_OF, allow_unreviewed_translations=True)
    ids = [e["id"] for e in plan["exercises"]]
    assert "heel_raises" not in ids
    at = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    new = revise(referral, plan, {"exercises": [{"id": i} for i in ids] + [{"id": "heel_raises"}]},
                 as_of=AS_OF, author="pt@clinic.example", at=at, reason="add heel raises")
    assert new["language"] == "es"
    assert all("es" in e["translations"] for e in new["exercises"])
    extra = [{"id": "clinic_pool_walk", "name": "Pool walking", "category": "aerobic",
              "impact": "none", "spinal_flexion": False, "spinal_rotation": False,
              "loaded": False, "end_range": False, "instructions": ["Walk in the pool."],
              "dose": {"minutes": 20}, "plugin": "clinic"}]
    new = revise(referral, plan, {"exercises": [{"id": i} for i in ids]
                                  + [{"id": "clinic_pool_walk"}]},
                 as_of=AS_OF, author="pt@clinic.example", at=at, reason="pool access",
                 extra_exercises=extra)
    assert new["language"] == "en" and new["decision"] == "review"
    assert "clinic_pool_walk" in _interpreter(new)


# ---- a clinician's own dose words stay as written ------------------------------------

def test_a_dose_the_clinician_wrote_stays_as_written_and_the_others_are_translated(clinic):
    """The plan marks a dose text a clinician wrote (``text_edited``): the
    Spanish handout shows it as written; a dose in the engine's words is
    given in Spanish from its numbers."""
    from refflow.planning.revisions import revise

    referral = referral_in("es")
    plan = build_plan(referral, as_of=AS_OF, allow_unreviewed_translations=True)
    proposed = {"exercises": [{"id": e["id"], "dose": dict(e["dose"])} for e in plan["exercises"]]}
    own = "1 serie de 10 muy despacio, sin dolor"
    proposed["exercises"][0]["dose"]["text"] = own
    at = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    new = revise(referral, plan, proposed, as_of=AS_OF, author="pt@clinic.example", at=at,
                 reason="slower")
    edited, other = new["exercises"][0], new["exercises"][1]
    assert edited["dose"] == {**plan["exercises"][0]["dose"], "text": own, "text_edited": True}
    assert "text_edited" not in other["dose"]
    assert any("dose.text" in line for line in new["versions"][-1]["changes"])
    text = pdf_text(render_handout(referral, released(new), clinic))
    assert plain(own) in text
    with tr.using("es"):
        translated = tr.dose_words(other["dose"])
    assert translated and translated != other["dose"]["text"] and plain(translated) in text
    assert plain(other["dose"]["text"]) + "," not in text  # not the English words
    # the clinician's text sent back as read with new numbers goes back to the engine's words
    again = {"exercises": [{"id": e["id"], "dose": dict(e["dose"])} for e in new["exercises"]]}
    again["exercises"][0]["dose"]["reps"] = 12
    newer = revise(referral, new, again, as_of=AS_OF, author="pt@clinic.example", at=at,
                   reason="more repeats")
    assert "text_edited" not in newer["exercises"][0]["dose"]
    assert "12" in newer["exercises"][0]["dose"]["text"]
