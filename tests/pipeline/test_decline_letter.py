"""A clinician's rejection reaches the referring office: the "referral not
accepted" letter goes by a real SMTP server to the referrer's email (with the
clinician's reason) and into the fax spool for the referrer's fax, never to
the patient; the referral stays rejected. SQLite and PostgreSQL alike."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import io
import json
import threading

import pytest
from aiosmtpd.controller import Controller
from PIL import Image
from sample_referrals import flagged
from sqlalchemy import select

from refflow import embedded
from refflow.db.models import Delivery, Document, Referral, ReferralEvent
from refflow.pipeline import flow, staff_actions
from refflow.pipeline.context import Pipeline, StepError
from refflow.referrals import states

REASON = "The surgeon's hip precautions must be in writing before we can plan exercise."


class Sink:
    def __init__(self) -> None:
        self.messages: list = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos),
                                  email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink():
    sink = Sink()
    port = embedded.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    yield sink
    controller.stop()


def _held(client, auth, p, body) -> str:
    r = client.post("/api/v1/referrals", json=body, headers=auth)
    assert r.status_code == 202, r.get_json()
    rid = r.get_json()["id"]
    assert flow.build_plan(p, rid) == states.NEEDS_REVIEW
    return rid


def _deliveries(db, rid) -> dict:
    with db.session() as session:
        return {d.channel: d for d in session.scalars(
            select(Delivery).where(Delivery.referral_id == rid))}


def test_a_rejection_sends_the_referrer_the_letter_by_email_and_fax(
        client, auth, settings, db, smtp_sink):
    settings = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")
    p = Pipeline(settings, db=db)
    body = flagged()
    body["referrer"]["email"] = "office@northfamily.example.org"
    rid = _held(client, auth, p, body)

    assert staff_actions.reject(p, rid, actor="user:physio", note=REASON) == states.REJECTED
    deliveries = _deliveries(db, rid)
    assert {(c, d.document, d.target, d.status) for c, d in deliveries.items()} == {
        ("email", "decline.pdf", "office@northfamily.example.org", "pending"),
        ("fax", "decline.tiff", "+17635550198", "pending")}
    for delivery in deliveries.values():
        assert flow.deliver(p, delivery.id) == "sent"

    # the email: to the referrer only, the reason in its body, the letter attached
    assert len(smtp_sink.messages) == 1
    rcpt, message = smtp_sink.messages[0]
    assert rcpt == ["office@northfamily.example.org"]
    assert "mary.stone@example.org" not in str(message)
    assert message["Subject"].startswith("Referral not accepted")
    assert deliveries["email"].id in message["Message-ID"]
    text = message.get_body(("plain",)).get_content()
    assert REASON in text and "Your reference: EHR-FLAGGED" in text
    assert "Stone" not in text  # the patient is named in the attached letter only
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "referral-not-accepted.pdf"
    assert attachment.get_content().startswith(b"%PDF")

    # the fax: cover page + letter in the spool, addressed to the referrer's number
    spool = settings.fax_spool_dir
    job = json.loads((spool / "sendq" / f"{deliveries['fax'].id}.json").read_text())
    assert (job["number"], job["pages"]) == ("+17635550198", 2)
    with Image.open(io.BytesIO((spool / job["document"]).read_bytes())) as tiff:
        assert tiff.n_frames == 2
    with db.session() as session:
        stored = session.scalar(select(Document).where(Document.referral_id == rid,
                                                       Document.name == "decline.tiff"))
        assert stored.pages == 2
        # the referral stays rejected; the timeline says what went out
        assert session.get(Referral, rid).status == states.REJECTED
        kinds = [(e.kind, e.reason) for e in session.scalars(
            select(ReferralEvent).where(ReferralEvent.referral_id == rid)
            .order_by(ReferralEvent.id))]
    assert ("status", f"plan rejected: {REASON}") in kinds
    assert ("decline_letter", "'referral not accepted' letter queued to the referrer by fax "
                              "and email") in kinds or \
        ("decline_letter", "'referral not accepted' letter queued to the referrer by email "
                           "and fax") in kinds
    assert [k for k, _ in kinds].count("delivery_sent") == 2

    # a second deliver message changes nothing
    for delivery in deliveries.values():
        assert flow.deliver(p, delivery.id) == "sent"
    assert len(smtp_sink.messages) == 1


def test_without_fax_or_email_the_letter_is_kept_and_nothing_is_sent(
        client, auth, settings, db, smtp_sink):
    settings = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")
    p = Pipeline(settings, db=db)
    body = flagged()
    body["deliver"] = {"fax_to_referrer": False}
    rid = _held(client, auth, p, body)
    staff_actions.reject(p, rid, actor="user:physio", note=REASON)
    assert _deliveries(db, rid) == {}
    with db.session() as session:
        names = set(session.scalars(select(Document.name).where(Document.referral_id == rid)))
    assert names == {"decline.pdf", "decline.tiff", "decline.txt"}
    assert smtp_sink.messages == []


def test_only_a_held_referral_is_rejected_and_a_plan_delivery_of_a_rejected_one_is_not_sent(
        client, auth, settings, db):
    p = Pipeline(settings, db=db)
    rid = _held(client, auth, p, flagged())
    staff_actions.reject(p, rid, actor="user:physio", note=REASON)
    with pytest.raises(StepError, match="a rejected referral cannot be rejected"):
        staff_actions.reject(p, rid, actor="user:physio", note=REASON)
    # a plan document's delivery on a rejected referral is never claimed
    with db.session() as session:
        stray = Delivery(referral_id=rid, channel="pdf", document="summary.pdf", target="",
                         status="pending", max_attempts=3)
        session.add(stray)
        session.flush()
        stray_id = stray.id
    assert flow.deliver(p, stray_id) == "pending"


def test_staff_can_send_a_failed_letter_again_and_the_referral_stays_rejected(
        client, auth, settings, db, smtp_sink):
    settings = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")
    p = Pipeline(settings, db=db)
    body = flagged()
    body["referrer"]["email"] = "office@northfamily.example.org"
    rid = _held(client, auth, p, body)
    staff_actions.reject(p, rid, actor="user:physio", note=REASON)
    email = _deliveries(db, rid)["email"]
    with db.session() as session:  # the referrer's mail server refused it for good
        row = session.get(Delivery, email.id)
        row.status, row.last_error = "failed", "email: 550 mailbox unavailable"
    staff_actions.retry_delivery(p, email.id, actor="user:staff",
                                 target="frontdesk@northfamily.example.org")
    assert flow.deliver(p, email.id) == "sent"
    rcpt, _message = smtp_sink.messages[-1]
    assert rcpt == ["frontdesk@northfamily.example.org"]
    with db.session() as session:
        assert session.get(Referral, rid).status == states.REJECTED
