"""The pipeline's steps and the outbox relay, on SQLite and PostgreSQL alike:
the rows, timeline and messages each step commits, and the status changes
the plugins hear."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from sample_referrals import routine
from sqlalchemy import select

from refflow.db.models import Delivery, Document, OutboxMessage, Plan, Referral, ReferralEvent
from refflow.pipeline import flow, outbox, staff_actions
from refflow.pipeline.context import Pipeline
from refflow.pipeline.stored_documents import document_bytes
from refflow.referrals import states


def _submit(client, auth, body=None) -> str:
    r = client.post("/api/v1/referrals", json=body or routine(), headers=auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def _timeline(db, rid) -> list[tuple]:
    with db.session() as session:
        return [tuple(row) for row in session.execute(
            select(ReferralEvent.kind, ReferralEvent.from_status, ReferralEvent.to_status,
                   ReferralEvent.reason)
            .where(ReferralEvent.referral_id == rid).order_by(ReferralEvent.id))]


def _unsent(db) -> list[tuple]:
    with db.session() as session:
        return [(m.task, m.args) for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
            .order_by(OutboxMessage.id))]


@pytest.fixture
def calls(settings):
    """Records the status changes a plugin hears (``refflow_referral_status_changed``)."""
    from refflow.plugins import hookimpl
    from refflow.plugins.manager import get_plugin_manager

    seen = {"hooks": []}

    class Recorder:
        @hookimpl
        def refflow_referral_status_changed(self, referral, old, new):
            seen["hooks"].append((old, new))

    pm = get_plugin_manager(settings)
    pm.register(Recorder(), name="test-recorder")
    yield seen
    pm.unregister(name="test-recorder")


def test_plan_and_render_commits_plan_documents_deliveries_and_messages(
        client, auth, settings, db, calls):
    published = []
    p = Pipeline(settings, db=db,
                       publish=lambda task, args: published.append((task, args)))
    rid = _submit(client, auth)
    with db.session() as session:
        request_id = session.get(Referral, rid).request_id
    assert outbox.relay(db, lambda task, args: None) == 1  # intake's build_plan message

    assert flow.build_plan(p, rid) == states.DELIVERING
    assert calls["hooks"] == [(None, "received"), ("received", "planning"),
                              ("planning", "planned"), ("planned", "delivering")]
    with db.session() as session:
        referral = session.get(Referral, rid)
        assert (referral.status, referral.flagged) == ("delivering", False)
        plan = session.scalar(select(Plan).where(Plan.referral_id == rid))
        assert plan.decision == "release" and plan.body["decision"] == "release"
        docs = {d.name: d for d in session.scalars(
            select(Document).where(Document.referral_id == rid))}
        deliveries = session.scalars(select(Delivery).where(Delivery.referral_id == rid)
                                     .order_by(Delivery.channel)).all()
    # the released plan's patient link (its URL, for the email) is kept with them
    assert sorted(docs) == ["chart.pdf", "fax.tiff", "handout.pdf", "patient-link.txt",
                            "summary.pdf"]
    fax = docs["fax.tiff"]
    assert (fax.content_type, fax.size, len(fax.sha256)) == (
        "image/tiff", len(document_bytes(p.store, fax)), 64)
    assert fax.pages == 2 and docs["handout.pdf"].pages is None  # cover + one-page summary
    assert [(d.channel, d.document, d.status, d.attempts, d.max_attempts) for d in deliveries] \
        == [("email", "handout.pdf", "pending", 0, settings.delivery_max_attempts),
            ("fax", "fax.tiff", "pending", 0, settings.delivery_max_attempts),
            ("pdf", "chart.pdf", "pending", 0, settings.delivery_max_attempts)]
    assert _timeline(db, rid)[-2:] == [
        ("status", "planning", "planned", "plan built (release)"),
        ("status", "planned", "delivering", "documents rendered; 3 deliveries queued")]
    # the worker relayed its own three messages right after the commit
    assert sorted(args["delivery_id"] for _, args in published) == sorted(
        d.id for d in deliveries)
    assert all(task == outbox.DELIVER and args["request_id"] == request_id
               for task, args in published)
    assert _unsent(db) == []

    # a duplicate build_plan message changes nothing
    assert flow.build_plan(p, rid) == states.DELIVERING
    assert len(_timeline(db, rid)) == 4 and len(published) == 3


def test_a_refused_target_fails_its_delivery_only(client, auth, settings, db, calls):
    p = Pipeline(settings, db=db)
    p.__dict__["channels"] = {k: v for k, v in p.channels.items() if k != "pdf"}
    rid = _submit(client, auth)
    assert flow.build_plan(p, rid) == states.DELIVERING
    with db.session() as session:
        failed = session.scalar(select(Delivery).where(Delivery.referral_id == rid,
                                                       Delivery.channel == "pdf"))
    assert (failed.status, failed.last_error) == ("failed", "no channel named 'pdf' is installed")
    assert _timeline(db, rid)[-3:] == [
        ("status", "planning", "planned", "plan built (release)"),
        ("delivery_failed", None, None, "pdf: no channel named 'pdf' is installed"),
        ("status", "planned", "delivering", "documents rendered; 2 deliveries queued")]
    assert sorted(task for task, _ in _unsent(db)) == [outbox.BUILD_PLAN] + [outbox.DELIVER] * 2


def test_planned_again_keeps_its_deliveries(client, auth, settings, db, calls):
    """A referral planned a second time (its deliveries exist): documents
    replaced, no delivery added, finalize queued."""
    p = Pipeline(settings, db=db)
    rid = _submit(client, auth)
    assert flow.build_plan(p, rid) == states.DELIVERING
    outbox.relay(db, lambda task, args: None)
    with db.session() as session:
        session.get(Referral, rid).status = states.PLANNING
        before = {d.id for d in session.scalars(select(Delivery)
                                                .where(Delivery.referral_id == rid))}
    assert flow.build_plan(p, rid) == states.DELIVERING
    with db.session() as session:
        after = {d.id for d in session.scalars(select(Delivery)
                                               .where(Delivery.referral_id == rid))}
        docs = session.scalars(select(Document.name).where(Document.referral_id == rid)).all()
    assert after == before and sorted(docs) == ["chart.pdf", "fax.tiff", "handout.pdf",
                                                "patient-link.txt", "summary.pdf"]
    assert _timeline(db, rid)[-1] == ("status", "planned", "delivering",
                                      "documents rendered; 0 deliveries queued")
    assert [task for task, _ in _unsent(db)] == [outbox.FINALIZE]


def test_relay_of_given_messages_leaves_the_others(client, auth, db):
    ids = [_submit(client, auth) for _ in range(3)]
    with db.session() as session:
        rows = session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)).all()
    published = []
    assert outbox.relay(db, lambda task, args: published.append(args["referral_id"]),
                        ids=[rows[1], 10**9]) == 1
    assert published == [ids[1]]
    assert outbox.relay(db, lambda task, args: None, ids=[rows[1]]) == 0  # sent already
    assert outbox.relay(db, lambda task, args: None, ids=[]) == 0
    assert outbox.relay(db, lambda task, args: published.append(args["referral_id"])) == 2
    assert published == [ids[1], ids[0], ids[2]]


def test_relays_running_at_once_skip_each_others_rows(client, auth, settings, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers; there is no concurrent relay")
    ids = [_submit(client, auth) for _ in range(2)]
    with db.session() as session:
        first = session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id))
    published = []
    with db.engine.connect() as other:  # another relay holds the first row
        raw = other.connection.driver_connection
        with raw.transaction():
            raw.execute("SELECT id FROM outbox WHERE id = %s FOR UPDATE", (first,))
            assert outbox.relay(db, lambda task, args: published.append(
                args["referral_id"])) == 1
    assert published == [ids[1]]
    assert outbox.relay(db, lambda task, args: published.append(args["referral_id"])) == 1
    assert published == [ids[1], ids[0]]


def test_documents_are_stored_without_a_compression_attempt(settings, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        storage = raw.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = "
                              "'documents'::regclass AND attname = 'content'").fetchone()
    assert storage == ("e",)  # EXTERNAL: out of line, never compressed


def test_retries_run_out_then_the_referral_fails_once_despite_a_concurrent_finalize(
        client, auth, settings, db, calls):
    """A delivery that keeps failing is retried until its attempts run out, then
    failed; its outcome and the last other delivery's are recorded at the same
    moment while finalize runs in a loop, and the referral goes delivering →
    failed exactly once."""
    from refflow.plugins.channels.base import TransientChannelError

    settings = dataclasses.replace(settings, delivery_max_attempts=2, retry_base_seconds=0.0,
                                   retry_max_seconds=0.0)
    p = Pipeline(settings, db=db)
    rid = _submit(client, auth)
    assert flow.build_plan(p, rid) == states.DELIVERING
    with db.session() as session:
        ids = dict(session.execute(select(Delivery.channel, Delivery.id)
                                   .where(Delivery.referral_id == rid)).all())

    together = threading.Barrier(2)
    last_round = threading.Event()
    email, pdf = p.channels["email"], p.channels["pdf"]

    class Busy:  # the mail server answers "try later" every time
        documents = email.documents

        def send(self, request):
            if last_round.is_set():
                together.wait(10)
            raise TransientChannelError("mail server busy")

    class InStep:  # the chart PDF is written at the same moment as the last email attempt
        documents = pdf.documents

        def send(self, request):
            together.wait(10)
            return pdf.send(request)

    p.__dict__["channels"] = {**p.channels, "email": Busy(), "pdf": InStep()}
    assert flow.deliver(p, ids["fax"]) == "sent"
    assert flow.deliver(p, ids["email"]) == "retrying"  # attempt 1 of 2

    last_round.set()
    results, done = {}, threading.Event()

    def run(channel):
        results[channel] = flow.deliver(p, ids[channel])

    def finalize_until_done():
        while not done.is_set():
            flow.finalize(p, rid)

    threads = [threading.Thread(target=run, args=(c,)) for c in ("email", "pdf")]
    finalizer = threading.Thread(target=finalize_until_done)
    finalizer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    done.set()
    finalizer.join(30)

    assert results == {"email": "failed", "pdf": "sent"}
    with db.session() as session:
        assert session.get(Referral, rid).status == states.FAILED
        email_row = session.get(Delivery, ids["email"])
    assert (email_row.status, email_row.attempts, email_row.last_error) == (
        "failed", 2, "mail server busy")
    assert email_row.next_attempt_at is None  # a failed delivery has no next attempt
    timeline = _timeline(db, rid)
    assert [e for e in timeline if e[0] == "status" and e[1] == "delivering"] == [
        ("status", "delivering", "failed", "1 of 3 deliveries failed")]
    assert [e[3] for e in timeline if e[0] in ("retry", "delivery_failed")] == [
        "email: attempt 1 failed (mail server busy); retrying in 0.0 s",
        "email: gave up after 2 attempts: mail server busy"]
    assert calls["hooks"].count(("delivering", "failed")) == 1
    assert flow.finalize(p, rid) == states.FAILED  # and again: nothing changes
    assert len(_timeline(db, rid)) == len(timeline)


def test_a_routing_plugin_that_raises_sends_the_referral_to_staff_first(
        client, auth, settings, db, calls):
    """DESIGN.md: a plugin that raises is recorded against the referral, and
    the referral goes to staff. A clinic's routing rules failed, so nothing is
    sent until staff approve; then the default routing applies."""
    from refflow.plugins import hookimpl

    class BrokenRouter:
        @hookimpl
        def refflow_route_deliveries(self, referral, plan):
            raise RuntimeError("routing table unavailable")

    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    p.pm.register(BrokenRouter(), name="broken-router")
    try:
        rid = _submit(client, auth)
        outbox.relay(db, lambda task, args: None)
        assert flow.build_plan(p, rid) == states.NEEDS_REVIEW
        with db.session() as session:
            referral = session.get(Referral, rid)
            plan = session.scalar(select(Plan).where(Plan.referral_id == rid))
            assert (referral.status, referral.flagged) == ("needs_review", True)
            assert plan.decision == "review"
            assert [f["source"] for f in plan.body["flags"] if f["code"] == "plugin_failed"] \
                == ["broken-router"]
            assert session.scalars(select(Delivery).where(Delivery.referral_id == rid)).all() \
                == []
        assert ("plugin_failed", None, None,
                "plugin 'broken-router' failed in refflow_route_deliveries (RuntimeError)") \
            in _timeline(db, rid)

        staff_actions.approve(p, rid, actor="user:staff")
        assert flow.render_documents(p, rid) == states.DELIVERING
        with db.session() as session:
            channels = sorted(session.scalars(select(Delivery.channel)
                                              .where(Delivery.referral_id == rid)))
        assert channels == ["email", "fax", "pdf"]  # the referral's own deliver flags
    finally:
        p.pm.unregister(name="broken-router")


def test_a_fax_retried_to_a_corrected_number_is_addressed_to_it(
        client, auth, settings, db, calls, monkeypatch):
    """Staff correct a failed fax's number: the cover page (and summary) sent
    name the corrected number, not the one that failed."""
    from refflow.documents import render as documents_render

    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    rid = _submit(client, auth)
    assert flow.build_plan(p, rid) == states.DELIVERING
    with db.session() as session:  # the fax server refused the number on file
        fax = session.scalar(select(Delivery).where(Delivery.referral_id == rid,
                                                    Delivery.channel == "fax"))
        fax.status, fax.last_error = "failed", "fax: number not in service"
        before = session.scalar(select(Document.sha256).where(
            Document.referral_id == rid, Document.name == "fax.tiff"))
        fax_id = fax.id
    addressed = []
    real_cover = documents_render.render_cover

    def cover(referral, *args, **kwargs):
        addressed.append(referral.referrer.fax)
        return real_cover(referral, *args, **kwargs)

    monkeypatch.setattr(documents_render, "render_cover", cover)
    staff_actions.retry_delivery(p, fax_id, actor="user:staff", target="+1 763 555 0197")
    assert addressed == ["+17635550197"]
    with db.session() as session:
        stored = session.scalar(select(Document).where(Document.referral_id == rid,
                                                       Document.name == "fax.tiff"))
        retried = session.get(Delivery, fax_id)
        new_fax = document_bytes(p.store, stored)
        assert stored.sha256 != before and new_fax[:4] in (b"II*\x00", b"MM\x00*")
        assert (retried.target, retried.status) == ("+17635550197", "pending")
    assert flow.deliver(p, fax_id) == "sent"
    spooled = (settings.fax_spool_dir / "docq" / f"{fax_id}.tif").read_bytes()
    assert spooled == new_fax


@pytest.mark.parametrize("resend_in_doubt", [False, True])
def test_a_send_whose_worker_stopped_is_in_doubt_on_smtp_and_sent_again_where_idempotent(
        client, auth, settings, db, resend_in_doubt):
    """The sweep finds claims whose lease lapsed: the fax (idempotent transport)
    is sent again; the email becomes in_doubt for staff — or, when the clinic
    chose so, is sent again (with the same Message-ID, built from the delivery id)."""
    import datetime as dt

    from refflow.db.models import utcnow
    from refflow.pipeline import redrive

    settings = dataclasses.replace(settings, resend_in_doubt=resend_in_doubt)
    p = Pipeline(settings, db=db)
    rid = _submit(client, auth)
    assert flow.build_plan(p, rid) == states.DELIVERING
    long_ago = utcnow() - dt.timedelta(minutes=5)
    with db.session() as session:  # two workers died mid-send
        for d in session.scalars(select(Delivery).where(Delivery.referral_id == rid,
                                                         Delivery.channel != "pdf")):
            d.status, d.claimed_at, d.attempts = "sending", long_ago, 1
    assert flow.deliver(p, next(d.id for d in _deliveries(db, rid) if d.channel == "pdf")) \
        == "sent"
    redrive.redrive(p, stuck_after=dt.timedelta(seconds=30), lease=dt.timedelta(seconds=30))
    by_channel = {d.channel: d for d in _deliveries(db, rid)}
    assert by_channel["fax"].status == "retrying"
    if resend_in_doubt:
        assert by_channel["email"].status == "retrying"
        assert flow.deliver(p, by_channel["email"].id) in ("sent", "retrying")
    else:
        assert by_channel["email"].status == "in_doubt"
        assert "may have been sent" in by_channel["email"].last_error
        assert flow.deliver(p, by_channel["email"].id) == "in_doubt"  # never sent on its own
        with db.session() as session:
            assert session.get(Referral, rid).status == states.DELIVERING  # the fax is open
        assert flow.deliver(p, by_channel["fax"].id) == "sent"
        with db.session() as session:
            referral = session.get(Referral, rid)
            assert referral.status == states.FAILED
        assert _timeline(db, rid)[-1][3] == "1 of 3 may have been sent (staff to confirm or " \
                                            "send again)"
        # staff decide it did not arrive: sent again, with a fresh retry window
        staff_actions.retry_delivery(p, by_channel["email"].id, actor="user:staff")
        with db.session() as session:
            again = session.get(Delivery, by_channel["email"].id)
            assert again.status == "pending" and again.retry_until > utcnow()


def _deliveries(db, rid) -> list:
    with db.session() as session:
        return session.scalars(select(Delivery).where(Delivery.referral_id == rid)).all()


def test_transient_errors_are_retried_within_the_retry_window_then_fail(
        client, auth, settings, db):
    """A delivery is retried for its retry window (not a fixed number of tries);
    the waits never run past the window's end, and a transient error after it
    fails the delivery."""
    import datetime as dt

    from refflow.db.models import utcnow
    from refflow.plugins.channels.base import TransientChannelError

    settings = dataclasses.replace(settings, retry_window_hours=1.0, retry_base_seconds=600.0,
                                   retry_max_seconds=3600.0)
    p = Pipeline(settings, db=db)
    rid = _submit(client, auth)
    assert flow.build_plan(p, rid) == states.DELIVERING
    email_id = next(d.id for d in _deliveries(db, rid) if d.channel == "email")

    class Busy:
        documents = ()

        def send(self, request):
            raise TransientChannelError("mail server busy")

    p.__dict__["channels"] = {**p.channels, "email": Busy()}
    assert flow.deliver(p, email_id) == "retrying"
    with db.session() as session:
        d = session.get(Delivery, email_id)
        assert d.retry_until - d.created_at == dt.timedelta(hours=1)
        assert d.next_attempt_at <= d.retry_until  # the 10-60 min backoff is cut at the window
        d.retry_until = d.next_attempt_at = utcnow()  # the window has passed
    assert flow.deliver(p, email_id) == "failed"
    assert [e[3] for e in _timeline(db, rid) if e[0] == "delivery_failed"] == [
        "email: gave up after 2 attempts (its retry window ended): mail server busy"]


@pytest.mark.parametrize("locale, weight, other", [("en_US", "2 lb", " kg"), ("en_GB", "1 kg", " lb")])
def test_the_plan_built_by_the_pipeline_gives_weights_in_the_clinics_units(
        client, auth, settings, db, locale, weight, other):
    """The Otago cuff weight of a falls-risk plan: pounds for a US clinic,
    kilograms for a clinic whose locale weighs in kilograms."""
    p = Pipeline(dataclasses.replace(settings, clinic_locale=locale), db=db,
                 publish=lambda task, args: None)
    body = routine()
    body["clinical"].update(falls_last_12_months=3, mobility_aid="walker")
    rid = _submit(client, auth, body)
    flow.build_plan(p, rid)
    with db.session() as session:
        plan = session.scalar(select(Plan).where(Plan.referral_id == rid)).body
    text = " ".join(" ".join(e["instructions"] + [e["progression"], e["regression"]])
                    for e in plan["exercises"])
    assert weight in text and other not in text


def test_a_referral_rendered_before_the_chart_record_existed_still_serves_its_documents(
        client, auth, settings, db, calls):
    # Referrals rendered before chart.pdf existed have handout, summary and fax only.
    rid = _submit(client, auth)
    assert flow.build_plan(Pipeline(settings, db=db), rid) == states.DELIVERING
    with db.session() as session:
        session.delete(session.scalar(select(Document).where(Document.referral_id == rid,
                                                             Document.name == "chart.pdf")))
    r = client.get(f"/api/v1/referrals/{rid}/documents/chart.pdf", headers=auth)
    assert r.status_code == 404 and "no such document" in r.get_data(as_text=True)
    names = {d["name"] for d in client.get(f"/api/v1/referrals/{rid}/documents",
                                           headers=auth).get_json()["items"]}
    assert names == {"handout.pdf", "summary.pdf", "fax.tiff"}
    r = client.get(f"/api/v1/referrals/{rid}/documents/summary.pdf", headers=auth)
    assert r.status_code == 200 and r.data.startswith(b"%PDF-")
