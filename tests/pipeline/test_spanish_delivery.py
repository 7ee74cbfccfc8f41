"""The patient's language through the pipeline: a Spanish-speaking patient's
referral, with the clinic allowing the (unreviewed) Spanish, is released
with a Spanish handout and its email goes out in Spanish (the embedded
mail outbox); the referrer's fax stays in the clinic's language. With the
setting off, the same referral is held for staff with ``interpreter_needed``."""

from __future__ import annotations

import email
import email.policy

from sample_referrals import routine
from sqlalchemy import select

from refflow.db.models import Delivery, Plan
from refflow.pipeline import flow, outbox
from refflow.pipeline.context import Pipeline
from refflow.referrals import states


def _spanish_referral() -> dict:
    body = routine(external_id="EHR-ES")
    body["patient"] = {**body["patient"], "preferred_language": "es",
                       "given_name": "María", "family_name": "López"}
    return body


def _submit(client, auth) -> str:
    r = client.post("/api/v1/referrals", json=_spanish_referral(), headers=auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def test_spanish_patient_gets_the_email_in_spanish(client, auth, settings, db):
    settings = settings.with_overrides(allow_unreviewed_translations=True)
    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    rid = _submit(client, auth)
    outbox.relay(db, lambda task, args: None)
    assert flow.build_plan(p, rid) == states.DELIVERING
    with db.session() as session:
        plan = session.scalar(select(Plan.body).where(Plan.referral_id == rid))
        deliveries = {d.channel: d.id for d in session.scalars(
            select(Delivery).where(Delivery.referral_id == rid))}
    assert plan["language"] == "es" and plan["translation_reviewed"] is False
    assert flow.deliver(p, deliveries["email"]) == "sent"
    (eml,) = settings.mail_outbox_dir.glob(f"{deliveries['email']}.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == f"Su plan de ejercicios de {settings.clinic_name}"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert body.startswith("Hola, María López:") and "Hello" not in body
    if "fax" in deliveries:  # the referrer's fax: the English summary, as for anyone
        assert flow.deliver(p, deliveries["fax"]) == "sent"


def test_with_the_setting_off_the_spanish_patient_is_held_for_staff(client, auth, settings, db):
    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    rid = _submit(client, auth)
    outbox.relay(db, lambda task, args: None)
    assert flow.build_plan(p, rid) == states.NEEDS_REVIEW
    with db.session() as session:
        plan = session.scalar(select(Plan.body).where(Plan.referral_id == rid))
    assert plan["language"] == "en"
    assert "interpreter_needed" in {f["code"] for f in plan["flags"]}
