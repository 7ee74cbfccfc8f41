"""The patient's page (Flask test client, SQLite and PostgreSQL): the link a
released plan gets (handout QR code, email), opened with the date of birth,
rate limited, expiring and revocable; sessions logged with pain and
difficulty; what staff see (exercise log, dashboard alerts); no token in the
logs or the audit trail."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from sqlalchemy import select

from refflow.db.models import AuditEntry, Document, PatientLink, PatientSession, Referral
from refflow.pipeline import flow, outbox
from refflow.pipeline.context import Pipeline
from refflow.pipeline.stored_documents import document_bytes
from refflow.referrals import patient_page

BIRTH_DATE = "1962-04-11"
RELEASED = {  # an osteopenia referral the engine releases without review
    "external_id": "EHR-ROUTINE",
    "patient": {"given_name": "Mary", "family_name": "Stone", "birth_date": BIRTH_DATE,
                "sex": "female", "email": "mary.stone@example.org"},
    "referrer": {"name": "Dr. R. Patel", "npi": "1234567893", "fax": "+1 763 555 0198"},
    "diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
    "clinical": {"t_score": -1.8, "fractures": [], "falls_last_12_months": 0,
                 "mobility_aid": "none", "can_rise_from_floor": True,
                 "pain": {"score": 1}, "conditions": [], "medications": [],
                 "activity_level": "light", "blood_pressure": {"systolic": 124,
                                                               "diastolic": 78}},
    "goals": ["walk to the store"],
}


def stored(settings, rid: str, name: str) -> bytes:
    """A document's bytes, as the document store holds them."""
    p = Pipeline(settings)
    with p.db.session() as s:
        return document_bytes(p.store, s.scalar(select(Document).where(
            Document.referral_id == rid, Document.name == name)))


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _release(client, auth, settings, db, body: dict) -> tuple[str, str]:
    """Submit ``body`` and build its plan (released): (referral id, token)."""
    r = client.post("/api/v1/referrals", json=body, headers=auth)
    assert r.status_code == 202, r.text
    rid = r.get_json()["id"]
    outbox.relay(db, lambda task, args: None)
    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    assert flow.build_plan(p, rid) == "delivering"
    url = stored(settings, rid, "patient-link.txt").decode()
    assert url.startswith(settings.public_url + "/p/")
    return rid, url.rsplit("/", 1)[1]


@pytest.fixture
def released(client, auth, settings, db):
    """A referral whose plan was released: (referral id, token)."""
    return _release(client, auth, settings, db, RELEASED)


def _open(client, token: str, birth_date: str = BIRTH_DATE):
    page = client.get(f"/p/{token}")
    assert page.status_code == 200 and 'name="birth_date"' in page.text
    return client.post(f"/p/{token}", data={"birth_date": birth_date,
                                             "csrf_token": csrf(page.text)})


def test_release_makes_a_link_stored_hashed_and_in_the_handout(released, db, settings):
    rid, token = released
    with db.session() as s:
        links = s.scalars(select(PatientLink).where(PatientLink.referral_id == rid)).all()
    handout = stored(settings, rid, "handout.pdf")
    assert len(links) == 1 and links[0].token_hash == patient_page.hash_token(token)
    assert token not in links[0].token_hash
    days = (links[0].expires_at - links[0].created_at).days
    assert days == 180
    import io

    from pypdf import PdfReader

    text = PdfReader(io.BytesIO(handout)).pages[0].extract_text()
    assert "Scan to see your exercises and log them" in text
    # the QR code on page 1 reads back as the link (a phone camera's view: 150 dpi)
    import pypdfium2 as pdfium
    import zxingcpp

    doc = pdfium.PdfDocument(handout)
    image = doc[0].render(scale=150 / 72).to_pil()
    codes = [c.text for c in zxingcpp.read_barcodes(image)]
    assert codes == [f"{settings.public_url}/p/{token}"]


def test_api_lists_no_link_document(client, auth, released):
    rid, _ = released
    items = client.get(f"/api/v1/referrals/{rid}/documents", headers=auth).get_json()["items"]
    assert "patient-link.txt" not in {d["name"] for d in items}
    assert client.get(f"/api/v1/referrals/{rid}/documents/patient-link.txt",
                      headers=auth).status_code == 404


def test_email_carries_the_link(settings):
    from refflow.plugins.channels.base import Delivery
    from refflow.plugins.channels.email import EmailChannel

    url = settings.public_url + "/p/abc"
    d = Delivery(id="0f0e0d0c-0b0a-4909-8807-060504030201", referral_id="r", channel="email",
                 target="ann@example.org", subject="s", document_name="handout.pdf",
                 documents={"handout.pdf": b"%PDF-1.4", "patient-link.txt": url.encode()})
    msg = EmailChannel(settings).build_message(d, "ann@example.org")
    body = msg.get_body(("plain",)).get_content()
    assert url in body and "date of birth" in body
    assert f'href="{url}"' in msg.get_body(("html",)).get_content()


def test_wrong_birth_date_is_refused_kindly_and_the_right_one_opens(client, released, db):
    rid, token = released
    r = _open(client, token, "1951-03-03")
    assert r.status_code == 403 and "does not match our records" in r.text
    assert "Your exercises" not in r.text
    r = _open(client, token, "04/11/1962")  # US format works too
    assert r.status_code == 303
    page = client.get(f"/p/{token}")
    assert page.status_code == 200
    assert "This week&#39;s exercises" in page.text or "This week's exercises" in page.text
    assert "I did my exercises today" in page.text
    with db.session() as s:
        actions = [a for a, in s.execute(select(AuditEntry.action).where(
            AuditEntry.referral_id == rid, AuditEntry.action.like("patient%")))]
    assert "patient_page.birth_date_refused" in actions
    assert "patient_page.view" in actions


def test_the_cookie_opens_only_its_own_link(client, released, db, settings):
    rid, token = released
    assert _open(client, token).status_code == 303
    with db.session() as s:
        other = s.scalar(select(Referral.id).where(Referral.id != rid))
        _, other_token = patient_page.make_link(s, rid if other is None else other, days=1)
    page = client.get(f"/p/{other_token}")
    assert "Show my exercises" in page.text  # asks again


def test_attempts_are_rate_limited_per_link(client, released):
    _, token = released
    for _ in range(5):
        assert _open(client, token, "1960-01-01").status_code == 403
    r = _open(client, token)  # even the right date waits now
    assert r.status_code == 429 and "Too many tries" in r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert "1962" not in r.headers.get("Location", "")


def test_expired_and_revoked_links_say_so_with_the_phone(client, released, db, settings):
    rid, token = released
    with db.session() as s:
        link = s.scalar(select(PatientLink).where(PatientLink.referral_id == rid))
        link.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    r = client.get(f"/p/{token}")
    assert r.status_code == 410 and "expired" in r.text and settings.clinic_phone in r.text
    with db.session() as s:
        patient_page.revoke(s, rid, actor="user:test")
    r = client.get(f"/p/{token}")
    assert r.status_code == 410 and "no longer in use" in r.text
    assert client.post(f"/p/{token}", data={"birth_date": BIRTH_DATE}).status_code in (400, 410)
    r = client.get("/p/not-a-real-token")
    assert r.status_code == 404 and settings.clinic_phone in r.text


def test_revoking_closes_an_open_page(client, released, db):
    rid, token = released
    assert _open(client, token).status_code == 303
    with db.session() as s:
        patient_page.revoke(s, rid, actor="user:test")
    assert client.get(f"/p/{token}").status_code == 410


def _log(client, token: str, **fields):
    page = client.get(f"/p/{token}")
    return client.post(f"/p/{token}/sessions", data={"csrf_token": csrf(page.text), **fields})


def test_logging_sessions_and_the_summary(client, released, db, settings):
    rid, token = released
    assert _open(client, token).status_code == 303
    from refflow.intake.validation import clinic_today

    today = clinic_today(settings.clinic_timezone)
    yesterday = today - dt.timedelta(days=1)
    r = _log(client, token, done_on=yesterday.isoformat(), pain="2", difficulty="easy")
    assert r.status_code == 303
    r = _log(client, token, pain="4", difficulty="hard", note="knee a bit sore")
    page = client.get(r.headers["Location"])
    assert "Your session is saved" in page.text and "pain 4/10" in page.text
    r = _log(client, token, pain="11")
    assert "Pain is a number from 0 to 10" in client.get(r.headers["Location"]).text
    r = _log(client, token, done_on=(today + dt.timedelta(days=1)).isoformat())
    assert "in the future" in client.get(r.headers["Location"]).text
    with db.session() as s:
        rows = s.scalars(select(PatientSession).where(PatientSession.referral_id == rid)
                         .order_by(PatientSession.done_on)).all()
        assert [(r.done_on, r.pain, r.difficulty) for r in rows] == [
            (yesterday, 2, "easy"), (today, 4, "hard")]
        summary = patient_page.summary(s, rid, today)
    assert summary["total"] == 2 and [p for _, p in summary["pains"]] == [2, 4]
    assert sum(n for _, n in summary["per_week"]) == 2 and len(summary["per_week"]) == 8
    assert summary["per_week"][-1][1] == (2 if yesterday >= patient_page.week_start(today)
                                          else 1)
    assert not summary["stopped"] and not summary["rising"]


def test_alerts_for_stopped_logging_and_rising_pain(released, db):
    rid, _ = released
    with db.session() as s:
        link = s.scalar(select(PatientLink).where(PatientLink.referral_id == rid))
        today = dt.date(2026, 9, 1)
        for days_ago, pain in ((30, 1), (28, 1), (26, 2), (24, 4), (22, 4), (20, 5)):
            patient_page.log_session(s, link, done_on=today - dt.timedelta(days=days_ago),
                                     today=today - dt.timedelta(days=days_ago), pain=pain)
        alerts = patient_page.alerts(s, today)
    assert [a["referral_id"] for a in alerts] == [rid]
    reasons = alerts[0]["reasons"]
    assert any(r.startswith("no session logged since") for r in reasons)
    assert any(r.startswith("pain rising") for r in reasons)
    assert patient_page.rising_pain([1, 1, 2, 4, 4, 5])
    assert not patient_page.rising_pain([3, 3, 3, 4])


def test_staff_see_the_log_and_revoke_the_link(client, released, db, settings):
    from refflow.accounts.users import create_user

    rid, token = released
    assert _open(client, token).status_code == 303
    _log(client, token, pain="3")
    with db.session() as s:
        create_user(s, "staff@clinic.example", "correct horse battery", role="staff")
    staff = client.application.test_client()
    page = staff.get("/login")
    assert staff.post("/login", data={"email": "staff@clinic.example",
                                      "password": "correct horse battery",
                                      "csrf_token": csrf(page.text)}).status_code == 302
    page = staff.get(f"/referrals/{rid}")
    section = page.text.split('id="exercise-log"', 1)[1].split("</section>", 1)[0]
    assert "1 session logged" in section and "pain 3/10" in section and "<svg" in section
    r = staff.post(f"/referrals/{rid}/patient-link/new", data={"csrf_token": csrf(page.text)})
    new_url = re.search(r"data-new-patient-url>([^<]+)<", r.text).group(1)
    # the handout and the email's link now carry the new link
    assert stored(settings, rid, "patient-link.txt").decode() == new_url
    assert client.get(f"/p/{token}").status_code == 410  # the old link stopped
    with db.session() as s:  # the program's weeks count from the first link
        first = s.scalar(select(PatientLink.created_at).where(PatientLink.referral_id == rid)
                         .order_by(PatientLink.created_at).limit(1))
        assert patient_page.program_start(s, rid) == first
    page = staff.get(f"/referrals/{rid}")
    staff.post(f"/referrals/{rid}/patient-link/revoke", data={"csrf_token": csrf(page.text)})
    assert client.get("/p/" + new_url.rsplit("/", 1)[1]).status_code == 410
    assert "Patients to call about their exercises" in staff.get("/").text


def test_no_token_in_logs_or_audit(client, released, db, caplog):
    rid, token = released
    caplog.set_level(logging.DEBUG)
    _open(client, token, "1900-01-01")
    _open(client, token)
    _log(client, token, pain="1")
    client.get(f"/p/{token}")
    assert token not in caplog.text
    assert patient_page.hash_token(token) not in caplog.text
    with db.session() as s:
        for row in s.scalars(select(AuditEntry)):
            assert token not in f"{row.actor} {row.action} {row.detail}"
    metrics = client.get("/metrics").text
    assert token not in metrics and "/p/<token>" in metrics


# ---- in the patient's language --------------------------------------------------------

def _words(html_text: str) -> str:
    """The page's text as a person reads it (tags gone, entities decoded, spaces joined)."""
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_text)).split())


@pytest.fixture
def spanish(client, auth, settings, db):
    """A Spanish-speaking patient's released plan (the clinic allows the
    unreviewed Spanish): (referral id, token, plan)."""
    from refflow.db.models import Plan

    body = {**RELEASED, "external_id": "EHR-ES",
            "patient": {**RELEASED["patient"], "preferred_language": "es"}}
    rid, token = _release(client, auth, settings.with_overrides(allow_unreviewed_translations=True),
                          db, body)
    with db.session() as s:
        plan = s.scalar(select(Plan.body).where(Plan.referral_id == rid))
    assert plan["language"] == "es" and plan["translation_reviewed"] is False
    return rid, token, plan


def test_a_spanish_speaking_patients_page_is_in_spanish(client, spanish, db, settings):
    from refflow.documents import translations as tr
    from refflow.planning.catalog import load_catalog

    rid, token, plan = spanish
    page = client.get(f"/p/{token}")
    assert page.status_code == 200 and '<html lang="es-US">' in page.text
    text = _words(page.text)
    for words in ("Su plan de ejercicios", "Fecha de nacimiento", "Ver mis ejercicios",
                  "¿Preguntas? Llámenos al", "todavía no ha sido revisada"):
        assert words in text, words
    for english in ("Date of birth", "Show my exercises", "Questions?", "Your exercise plan"):
        assert english not in text, english
    r = client.post(f"/p/{token}", data={"birth_date": "1951-03-03", "csrf_token": csrf(page.text)})
    assert r.status_code == 403 and "no coincide con nuestros datos" in _words(r.text)

    assert _open(client, token).status_code == 303
    text = _words(client.get(f"/p/{token}").text)
    assert "Los ejercicios de esta semana" in text and "Semana 1 de su plan" in text
    assert "Hice mis ejercicios hoy" in text and "todavía no ha sido revisada" in text
    english = set()
    for ex in load_catalog().exercises:  # every English sentence a card could show
        english.update({ex.name, *ex.instructions, ex.safety_cue, ex.progression, ex.regression})
    for sentence in english:
        if len(sentence.split()) >= 3:
            assert sentence.strip() not in text, sentence
    shown = [ex for ex in plan["exercises"] if (ex.get("phase_from") or 1) == 1]
    assert shown
    with tr.using("es"):
        for ex in shown:  # the handout's Spanish texts and dose words
            spanish_texts = ex["translations"]["es"]
            assert spanish_texts["name"] in text
            assert spanish_texts["instructions"][0].rstrip(".") in text
            assert tr.dose_words(ex["dose"]) in text
    for english_words in ("Log today's exercises", "This week's exercises", "Stay safe",
                          "sets of"):
        assert english_words not in text, english_words


def test_a_spanish_patient_logs_a_session_in_spanish(client, spanish, db, settings):
    _, token, _plan = spanish
    assert _open(client, token).status_code == 303
    r = _log(client, token, pain="11")
    assert "El dolor es un número del 0 al 10." in _words(client.get(r.headers["Location"]).text)
    r = _log(client, token, pain="4", difficulty="hard")
    text = _words(client.get(r.headers["Location"]).text)
    assert "¡Muy bien! Su sesión quedó guardada." in text
    assert "dolor 4/10 · difícil" in text
    from babel.dates import format_skeleton

    from refflow.intake.validation import clinic_today

    today = clinic_today(settings.clinic_timezone)
    assert format_skeleton("MMMMEEEEd", today, locale="es_US") in text  # "lunes, 7 de diciembre"


def test_a_spanish_patients_closed_link_is_in_spanish(client, spanish, db, settings):
    rid, token, _plan = spanish
    with db.session() as s:
        patient_page.revoke(s, rid, actor="user:test")
    r = client.get(f"/p/{token}")
    text = _words(r.text)
    assert r.status_code == 410 and "Este enlace ya no se usa" in text
    assert f"Por favor, llámenos al {settings.clinic_phone}" in text
    # a link not found: the browser's language among those shipped
    r = client.get("/p/not-a-real-token", headers={"Accept-Language": "es-US,es;q=0.9"})
    assert r.status_code == 404 and "No encontramos este enlace" in _words(r.text)
    r = client.get("/p/not-a-real-token", headers={"Accept-Language": "fr"})
    assert "We could not find this link" in _words(r.text)


# ---- staff "New link" emails the patient ------------------------------------------------

class _Mailbox:
    """A real SMTP server (aiosmtpd) on a free local port, keeping what it gets."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        import email
        import email.policy

        self.messages.append(email.message_from_bytes(envelope.original_content,
                                                      policy=email.policy.default))
        return "250 OK queued"


@pytest.fixture
def mailbox():
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    yield box
    controller.stop()


def _staff_login(app):
    staff = app.test_client()
    page = staff.get("/login")
    assert staff.post("/login", data={"email": "staff@clinic.example",
                                      "password": "correct horse battery",
                                      "csrf_token": csrf(page.text)}).status_code == 302
    return staff


def _staff_client(app, db):
    from refflow.accounts.users import create_user

    with db.session() as s:
        create_user(s, "staff@clinic.example", "correct horse battery", role="staff")
    return _staff_login(app)


def _page_status(app, url: str) -> int:
    return app.test_client().get("/p/" + url.rsplit("/", 1)[1]).status_code


def _new_link(staff, rid: str):
    page = staff.get(f"/referrals/{rid}")
    r = staff.post(f"/referrals/{rid}/patient-link/new", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 200, r.text
    return r, re.search(r"data-new-patient-url>([^<]+)<", r.text).group(1)


def _plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_new_link_is_emailed_to_the_patient_through_the_email_channel(settings, db, mailbox,
                                                                      auth):
    from refflow.app import create_app
    from refflow.db.models import Delivery, ReferralEvent

    settings = settings.with_overrides(smtp_url=mailbox.url)
    app = create_app(settings, {"TESTING": True})
    rid, token = _release(app.test_client(), auth, settings, db, RELEASED)
    staff = _staff_client(app, db)

    # the first email has not gone yet: it will carry the new link (nothing sent now)
    r, waiting_url = _new_link(staff, rid)
    assert "has not gone yet: it will carry the new link" in r.text and not mailbox.messages
    with db.session() as s:
        email_id = s.scalar(select(Delivery.id).where(Delivery.referral_id == rid,
                                                      Delivery.channel == "email"))
    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    assert flow.deliver(p, email_id) == "sent"
    (first,) = mailbox.messages
    assert waiting_url in _plain(first)

    # sent: a second email, to the same address, with the new link and handout
    r, new_url = _new_link(staff, rid)
    assert "New link sent by email to the patient." in r.text
    assert len(mailbox.messages) == 2
    second = mailbox.messages[1]
    assert second["To"] == first["To"] and "mary.stone@example.org" in second["To"]
    assert new_url in _plain(second) and waiting_url not in _plain(second)
    assert second["Message-ID"] != first["Message-ID"]  # not taken for a duplicate
    (attachment,) = second.iter_attachments()
    assert attachment.get_content() == stored(settings, rid, "handout.pdf")
    assert _page_status(app, new_url) == 200 and _page_status(app, waiting_url) == 410
    with db.session() as s:
        kinds = [k for k, in s.execute(select(ReferralEvent.kind).where(
            ReferralEvent.referral_id == rid))]
    assert "patient_link_emailed" in kinds

    # no SMTP server there (the discard port): staff are told it did not go
    down = create_app(settings.with_overrides(smtp_url="smtp://127.0.0.1:9"), {"TESTING": True})
    r, _ = _new_link(_staff_login(down), rid)
    assert "could not be sent" in r.text and "give the patient the new handout" in r.text
    assert len(mailbox.messages) == 2


def test_new_link_without_an_email_says_to_give_the_handout(client, auth, settings, db):
    body = {**RELEASED, "external_id": "EHR-NO-EMAIL",
            "patient": {k: v for k, v in RELEASED["patient"].items() if k != "email"}}
    rid, _ = _release(client, auth, settings, db, body)
    r, _ = _new_link(_staff_client(client.application, db), rid)
    assert "No email on file for the patient: give them the new handout" in r.text
