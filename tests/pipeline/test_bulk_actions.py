"""Bulk staff actions on SQLite and PostgreSQL: 100 deliveries that failed on a
real SMTP server (aiosmtpd, 550 to every recipient) are sent again in one
action and each reaches the server exactly once, again or not; the filter
"all failed for a channel since" picks what it says; stuck referrals are
cancelled in one action, ended ones skipped with the reason."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from sample_referrals import routine
from sqlalchemy import func, select

from refflow.db.models import AuditEntry, Delivery, Document, Referral, utcnow
from refflow.documents.names import HANDOUT, PATIENT_LINK
from refflow.pipeline import bulk_actions, flow, outbox
from refflow.pipeline.context import WORKER, Pipeline
from refflow.pipeline.stored_documents import document_bytes, store_documents
from refflow.referrals import states

STAFF = "user:bulk-test"
REFUSED = "550 5.1.1 mailbox unavailable"


class Worker:
    """Runs what the relay publishes, as a Celery worker would (deliver only)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def publish(self, task: str, args: dict) -> None:
        with self.lock:
            self.messages.append((task, args))

    def run(self, p: Pipeline) -> dict[str, str]:
        with self.lock:
            messages, self.messages = self.messages, []
        return {args["delivery_id"]: flow.deliver(p, args["delivery_id"])
                for task, args in messages if task == outbox.DELIVER}


@pytest.fixture
def pipeline(settings, db, smtp):
    worker = Worker()
    p = Pipeline(settings.with_overrides(smtp_url=f"smtp://127.0.0.1:{smtp.port}"), db=db,
                 publish=worker.publish)
    p.worker = worker
    return p


def _delivering_referrals(client, auth, p: Pipeline, n: int) -> list[str]:
    """``n`` referrals delivering their handout by email (one real referral
    planned and rendered, its documents stored again for the others)."""
    r = client.post("/api/v1/referrals", json=routine(external_id=f"EHR-{uuid.uuid4().hex[:8]}"),
                    headers=auth)
    assert r.status_code == 202, r.get_json()
    outbox.relay(p.db, lambda task, args: None)
    assert flow.build_plan(p, r.get_json()["id"]) == states.DELIVERING
    with p.db.session() as session:
        model = session.get(Referral, r.get_json()["id"])
        docs = {doc.name: document_bytes(p.store, doc) for doc in session.scalars(select(
            Document).where(Document.referral_id == model.id,
                            Document.name.in_((HANDOUT, PATIENT_LINK))))}
        ids = []
        for _ in range(n):
            row = Referral(practice_id=model.practice_id, status=states.DELIVERING,
                           payload=model.payload, payload_sha256=model.payload_sha256,
                           received_on=model.received_on)
            session.add(row)
            session.flush()
            store_documents(p.store, session, row.id, docs)
            flow.create_deliveries(p, session, row, [
                {"channel": "email", "document": HANDOUT,
                 "target": model.payload["patient"]["email"]}], actor=WORKER)
            ids.append(row.id)
    return ids


def _email_deliveries(p: Pipeline, referral_ids) -> list[str]:
    with p.db.session() as session:
        return list(session.scalars(select(Delivery.id).where(
            Delivery.referral_id.in_(referral_ids), Delivery.channel == "email")
            .order_by(Delivery.id)))


def _failed(client, auth, p: Pipeline, smtp, n: int) -> list[str]:
    """``n`` email deliveries the SMTP server refused (550: failed at once)."""
    ids = _email_deliveries(p, _delivering_referrals(client, auth, p, n))
    with smtp.lock:
        smtp.fail_next[:] = [REFUSED] * n
    assert {flow.deliver(p, d) for d in ids} == {"failed"}
    assert smtp.fail_next == []
    return ids


def _received(smtp, delivery_ids) -> dict[str, int]:
    return {d: len(smtp.for_delivery(d)) for d in delivery_ids}


def test_bulk_retry_of_100_failed_deliveries_sends_each_exactly_once(
        client, auth, pipeline, smtp):
    ids = _failed(client, auth, pipeline, smtp, 100)
    assert set(_received(smtp, ids).values()) == {0}
    with pipeline.db.session() as session:
        assert {r.status for r in session.scalars(select(Referral).join(Delivery).where(
            Delivery.id.in_(ids)))} == {states.FAILED}

    result = bulk_actions.retry_deliveries(pipeline, ids, actor=STAFF)
    assert (len(result.done), result.skipped) == (100, {})
    assert set(pipeline.worker.run(pipeline).values()) == {"sent"}
    assert set(_received(smtp, ids).values()) == {1}

    again = bulk_actions.retry_deliveries(pipeline, ids, actor=STAFF)
    assert (again.done, again.reasons()) == ([], {"already sent": 100})
    assert again.summary("retried") == "retried 0, skipped 100 (already sent: 100)"
    assert pipeline.worker.run(pipeline) == {}
    assert set(_received(smtp, ids).values()) == {1}
    with pipeline.db.session() as session:
        assert {r.status for r in session.scalars(select(Referral).join(Delivery).where(
            Delivery.id.in_(ids)))} == {states.COMPLETED}
        audit = dict(session.execute(select(AuditEntry.action, func.count())
                                     .where(AuditEntry.actor == STAFF)
                                     .group_by(AuditEntry.action)).all())
        assert audit == {"delivery.retry": 100, "delivery.bulk_retry": 2}


def test_two_bulk_retries_at_once_still_send_each_once(client, auth, pipeline, smtp):
    ids = _failed(client, auth, pipeline, smtp, 10)
    start = threading.Barrier(2)
    results = []

    def retry() -> None:
        start.wait()
        results.append(bulk_actions.retry_deliveries(pipeline, ids, actor=STAFF))

    threads = [threading.Thread(target=retry) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set().union(*(r.done for r in results)) == set(ids)
    assert set(pipeline.worker.run(pipeline).values()) <= {"sent", "sending"}
    assert set(_received(smtp, ids).values()) == {1}


def test_retry_all_failed_for_a_channel_since_a_time(client, auth, pipeline, smtp):
    early = _failed(client, auth, pipeline, smtp, 3)
    with pipeline.db.session() as session:  # these failed yesterday
        for delivery in session.scalars(select(Delivery).where(Delivery.id.in_(early))):
            delivery.updated_at = utcnow() - dt.timedelta(days=1)
    since = utcnow() - dt.timedelta(hours=1)
    late = _failed(client, auth, pipeline, smtp, 2)

    assert bulk_actions.retry_failed(pipeline, channel="fax", since=since, actor=STAFF).done == []
    result = bulk_actions.retry_failed(pipeline, channel="email", since=since, actor=STAFF)
    assert sorted(result.done) == sorted(late)
    pipeline.worker.run(pipeline)
    assert _received(smtp, late + early) == {**dict.fromkeys(late, 1), **dict.fromkeys(early, 0)}
    with pipeline.db.session() as session:
        assert [d.id for d in bulk_actions.failed_deliveries(session)] == early
        detail = session.scalar(select(AuditEntry.detail).where(
            AuditEntry.action == "delivery.bulk_retry").order_by(AuditEntry.id.desc()))
    assert detail.startswith("all failed email since ") and detail.endswith("retried 2, skipped 0")


def test_send_all_again_takes_at_most_max_items_and_says_how_many_are_left(
        client, auth, pipeline, smtp, monkeypatch):
    failed = _failed(client, auth, pipeline, smtp, 3)
    with pipeline.db.session() as session:  # a cancelled referral's failure is not offered
        bulk_actions.staff_actions.cancel(session, session.get(Referral, session.get(
            Delivery, failed[2]).referral_id), actor=STAFF, reason="test")
    with pipeline.db.session() as session:
        assert bulk_actions.count_failed(session) == 2
    monkeypatch.setattr(bulk_actions, "MAX_ITEMS", 1)
    first = bulk_actions.retry_failed(pipeline, channel="email", since=None, actor=STAFF)
    assert (len(first.done), first.remaining) == (1, 1)
    assert first.summary("sent again") == "sent again 1, skipped 0; 1 more to do: run it again"
    second = bulk_actions.retry_failed(pipeline, channel="email", since=None, actor=STAFF)
    assert (second.done, second.remaining) == ([d for d in failed[:2] if d not in first.done], 0)
    pipeline.worker.run(pipeline)
    assert _received(smtp, failed) == {failed[0]: 1, failed[1]: 1, failed[2]: 0}


def test_bulk_retry_skips_what_is_not_failed_with_the_reason(client, auth, pipeline, smtp):
    (failed,) = _failed(client, auth, pipeline, smtp, 1)
    (pending,) = _email_deliveries(pipeline, _delivering_referrals(client, auth, pipeline, 1))
    result = bulk_actions.retry_deliveries(pipeline, [failed, pending, failed, "no-such-id"],
                                           actor=STAFF)
    assert result.done == [failed]
    assert result.skipped == {pending: "already queued to be sent", "no-such-id": "not found"}


def test_bulk_cancel_of_stuck_referrals(client, auth, pipeline, smtp):
    delivering = _delivering_referrals(client, auth, pipeline, 2)
    (failed_delivery,) = _failed(client, auth, pipeline, smtp, 1)
    with pipeline.db.session() as session:
        failed = session.get(Delivery, failed_delivery).referral_id
        done = session.get(Referral, delivering[1])
        states.transition(session, done, states.COMPLETED, actor=WORKER)
        for row in session.scalars(select(Referral)):  # nothing moved for two days
            row.updated_at = utcnow() - dt.timedelta(days=2)
    with pipeline.db.session() as session:
        stuck = {r.id for r in bulk_actions.stuck_referrals(session, older_than=dt.timedelta(days=1))}
    assert {delivering[0], failed} <= stuck and delivering[1] not in stuck

    result = bulk_actions.cancel_referrals(
        pipeline, [delivering[0], failed, delivering[1], "no-such-id"], actor=STAFF,
        reason="cancelled by staff: stuck")
    assert result.done == [delivering[0], failed]
    assert result.skipped == {delivering[1]: "a completed referral cannot be cancelled",
                              "no-such-id": "not found"}
    with pipeline.db.session() as session:
        assert session.get(Referral, delivering[0]).status == states.CANCELLED
        assert {d.status for d in session.scalars(select(Delivery).where(
            Delivery.referral_id == delivering[0]))} == {"cancelled"}
    again = bulk_actions.cancel_referrals(pipeline, [delivering[0], failed], actor=STAFF,
                                          reason="again")
    assert (again.done, again.reasons()) == ([], {"already cancelled": 2})


def test_the_api_retries_and_cancels_in_bulk_for_staff_only(client, auth, pipeline, smtp, db):
    from web_forms import PASSWORD, sign_in, token

    from refflow.accounts.users import create_user

    failed = _failed(client, auth, pipeline, smtp, 2)
    assert client.post("/api/v1/deliveries/retry", json={"ids": failed},
                       headers=auth).status_code == 403  # a practice's key
    with db.session() as session:
        create_user(session, "pt@clinic.example", PASSWORD, role="staff")
    sign_in(client, "pt@clinic.example")
    page = client.get("/failures").text
    assert all(f'value="{d}"' in page for d in failed)  # both listed to choose from
    csrf = {"X-CSRFToken": token(page)}
    bad = client.post("/api/v1/deliveries/retry", json={"ids": failed, "since": "x"}, headers=csrf)
    assert bad.status_code == 422
    r = client.post("/api/v1/deliveries/retry", json={"ids": [*failed, "gone"]}, headers=csrf)
    assert r.status_code == 200
    assert r.get_json() == {"done": 2, "skipped": 1, "ids": failed,
                            "skipped_items": [{"id": "gone", "reason": "not found"}],
                            "skipped_reasons": {"not found": 1}, "remaining": 0}
    r = client.post("/api/v1/deliveries/retry", headers=csrf,
                    json={"since": "2020-01-01T00:00:00+00:00", "channel": "email"})
    assert r.get_json()["done"] == 0  # nothing failed any more
    with db.session() as session:
        referral_ids = [session.get(Delivery, d).referral_id for d in failed]
    r = client.post("/api/v1/referrals/cancel", json={"ids": referral_ids, "reason": "test"},
                    headers=csrf)
    assert (r.status_code, r.get_json()["done"]) == (200, 2)
    with db.session() as session:
        assert {session.get(Referral, i).status for i in referral_ids} == {states.CANCELLED}
