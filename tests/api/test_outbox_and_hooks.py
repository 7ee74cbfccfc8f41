"""The outbox relay, idempotency-key expiry and the status hook, on both databases."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from refflow.db.models import IdempotencyKey, OutboxMessage, utcnow
from refflow.intake.idempotency import expire
from refflow.pipeline import outbox


def post(client, auth, body, **headers):
    return client.post("/api/v1/referrals", json=body, headers={**auth, **headers})


def test_relay_publishes_due_messages_once_and_keeps_them_when_the_broker_fails(
        client, auth, referral_body, db):
    ids = [post(client, auth, referral_body).get_json()["id"] for _ in range(3)]
    with db.session() as session:
        outbox.enqueue(session, "refflow.deliver", {"delivery_id": "later"},
                       available_at=utcnow() + dt.timedelta(hours=1))

    def broken(task, args):
        raise ConnectionError("broker down")

    assert outbox.relay(db, broken) == 0
    with db.session() as session:
        assert outbox.backlog(session) == 4
        attempts = session.scalars(select(OutboxMessage.relay_attempts)
                                   .order_by(OutboxMessage.id)).all()
    assert attempts[0] == 1

    published = []
    assert outbox.relay(db, lambda task, args: published.append((task, args))) == 3
    assert [(task, args["referral_id"]) for task, args in published] == [
        ("refflow.build_plan", i) for i in ids]
    assert all(args["request_id"] for _, args in published)  # for the worker's logs
    assert outbox.relay(db, lambda task, args: published.append((task, args))) == 0
    with db.session() as session:
        assert outbox.backlog(session) == 1  # the delayed retry waits for its time


def test_idempotency_keys_expire_after_retention(client, auth, referral_body, db):
    post(client, auth, referral_body, **{"Idempotency-Key": "old"})
    post(client, auth, referral_body, **{"Idempotency-Key": "new"})
    with db.session() as session:
        row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "old"))
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
    with db.session() as session:
        assert expire(session) == 1
        assert session.scalars(select(IdempotencyKey.key)).all() == ["new"]
    # after expiry the key is free again: a new referral, not a replay
    again = post(client, auth, referral_body, **{"Idempotency-Key": "old"})
    assert again.status_code == 202
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 2


def test_status_hook_runs_after_commit_with_ids_only(client, auth, referral_body, app, db):
    from refflow.plugins import hookimpl
    from refflow.plugins.manager import get_plugin_manager

    seen, design_style = [], []

    class Listener:
        @hookimpl
        def refflow_referral_status_changed(self, referral_id, old, new):
            seen.append((referral_id, old, new))

    class DesignSignature:  # DESIGN.md's (referral, old, new): a reference, no patient data
        @hookimpl
        def refflow_referral_status_changed(self, referral, old, new):
            design_style.append((referral, old, new))

    class Broken:
        @hookimpl
        def refflow_referral_status_changed(self, referral_id, old, new):
            raise RuntimeError("notification service down")

    pm = get_plugin_manager(app.extensions["refflow.settings"])
    pm.register(Listener(), name="listener")
    pm.register(Broken(), name="broken-notifier")
    pm.register(DesignSignature(), name="design-signature")
    try:
        rid = post(client, auth, referral_body).get_json()["id"]
        r = client.post(f"/api/v1/referrals/{rid}/cancel", headers=auth)
        assert r.status_code == 200  # a failing notifier never undoes the change
        # a refused change (already cancelled) notifies nobody
        client.post(f"/api/v1/referrals/{rid}/cancel", headers=auth)
    finally:
        pm.unregister(name="listener")
        pm.unregister(name="broken-notifier")
        pm.unregister(name="design-signature")
    # the referral's first status (received) is a change like any other
    assert seen == [(rid, None, "received"), (rid, "received", "cancelled")]
    [_, (referral, old, new)] = design_style
    assert (referral.id, referral.status, old, new) == (rid, "cancelled", "received", "cancelled")
    assert set(vars(referral)) == {"id", "status"}  # nothing about the patient
    # the notifier that raised is recorded against the referral (name and error class)
    from sqlalchemy import select

    from refflow.db.models import ReferralEvent

    with db.session() as session:
        failed = session.scalars(select(ReferralEvent.reason).where(
            ReferralEvent.referral_id == rid, ReferralEvent.kind == "plugin_failed")).all()
    assert failed == ["plugin 'broken-notifier' failed in refflow_referral_status_changed "
                      "(RuntimeError)"] * 2


def test_inline_render_commits_plan_documents_and_deliveries_together(client, auth, settings,
                                                                      db, monkeypatch):
    """build_plan renders in the same worker and commits the plan with its
    documents and deliveries: a worker that dies in between leaves the referral
    in planning (re-driven as build_plan), never a plan without its deliveries;
    a worker that does not die leaves only the deliver messages to publish."""
    from sample_referrals import routine

    from refflow.db.models import Plan, Referral, ReferralEvent
    from refflow.pipeline import flow
    from refflow.pipeline.context import Pipeline

    p = Pipeline(settings, db=db)
    rid = post(client, auth, routine()).get_json()["id"]
    assert outbox.relay(db, lambda task, args: None) == 1  # the build_plan message

    # the worker dies while rendering: nothing of the plan is committed
    def dies(*_args):
        raise RuntimeError("worker lost")

    with monkeypatch.context() as m:
        m.setattr(flow, "_render", dies)
        try:
            flow.build_plan(p, rid)
        except RuntimeError:
            pass
    with db.session() as session:
        assert session.get(Referral, rid).status == "planning"
        assert session.scalar(select(func.count()).select_from(Plan)
                              .where(Plan.referral_id == rid)) == 0
    assert outbox.relay(db, lambda task, args: None) == 0

    # the re-driven run (or the normal case): planned and rendered in one go
    assert flow.build_plan(p, rid) == "delivering"
    with db.session() as session:
        waiting = session.scalars(select(OutboxMessage.task).where(
            OutboxMessage.sent_at.is_(None))).all()
        moves = session.execute(select(ReferralEvent.from_status, ReferralEvent.to_status)
                                .where(ReferralEvent.referral_id == rid,
                                       ReferralEvent.kind == "status")
                                .order_by(ReferralEvent.id)).all()
    assert sorted(waiting) == ["refflow.deliver"] * 3
    assert [tuple(m) for m in moves] == [(None, "received"), ("received", "planning"),
                                         ("planning", "planned"),
                                         ("planned", "delivering")]
