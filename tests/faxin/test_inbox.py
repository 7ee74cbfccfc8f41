"""The fax inbox core (``refflow.faxin.inbox``) and the received-queue poller
(``refflow.faxin.poll``), on SQLite and PostgreSQL, with real fax images
rendered by refflow's own fax renderer."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading

import pytest
from sqlalchemy import func, select

from refflow.db.models import AuditEntry, OutboxMessage, ReceivedFax, ReferralEvent, utcnow
from refflow.faxin import inbox, poll, reading
from refflow.faxin.pages import NotAFax
from refflow.pipeline import outbox
from refflow.pipeline.context import Pipeline, StepError
from refflow.plugins.channels.base import TransientChannelError
from refflow.plugins.channels.fax.transports import RECEIVE, InboundFax

CALLER = "(763) 555-0142"
CALLER_E164 = "+17635550142"


@pytest.fixture
def p(settings, db):
    return Pipeline(settings, db=db)


def _fax(db, fax_id) -> ReceivedFax:
    with db.session() as session:
        return session.get(ReceivedFax, fax_id)


def _count(db, model, *where) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_same_fax_twice_is_one_fax_in_the_inbox(p, db, fax_document):
    tiff = fax_document("Referral: knee", pages=2)
    first = inbox.receive(p, tiff, source="cli", source_ref="fax000000001.tif")
    again = inbox.receive(p, tiff, source="hylafax", source_ref="fax000000002.tif")
    assert first.created and not again.created and again.fax_id == first.fax_id
    fax = _fax(db, first.fax_id)
    assert (fax.status, fax.pages, fax.content_type, fax.content) == (
        "received", 2, "image/tiff", None)  # the image is in the document store
    assert p.store.get(fax.store_key) == tiff and fax.store_key == f"received-faxes/{fax.id}"
    assert (fax.source, fax.source_ref) == ("cli", "fax000000001.tif")
    assert fax.reading is None and fax.received_at is not None
    # one message for the worker that reads it, committed with the fax
    with db.session() as session:
        messages = session.scalars(select(OutboxMessage).where(
            OutboxMessage.task == outbox.READ_FAX)).all()
        assert [m.args for m in messages] == [{"fax_id": first.fax_id}]
        audit = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "fax.receive")).all()
        assert [(a.actor, a.detail) for a in audit] == [("fax:cli", f"fax:{first.fax_id}")]


def test_a_pdf_from_a_provider_is_a_fax_too(p, db, fax_document):
    stored = inbox.receive(p, fax_document("Referral", pages=3, kind="pdf"), source="httpfax")
    fax = _fax(db, stored.fax_id)
    assert (fax.content_type, fax.pages, fax.status) == ("application/pdf", 3, "received")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("junk", [b"", b"hello, this is not a fax", b"II*\x00broken tiff",
                                  b"%PDF-1.4 not really"])
def test_anything_else_is_refused_with_a_clear_error_and_nothing_is_stored(p, db, junk):
    with pytest.raises(NotAFax) as raised:
        inbox.receive(p, junk, source="cli")
    assert "TIFF" in str(raised.value) or "PDF" in str(raised.value)
    assert _count(db, ReceivedFax) == 0 and _count(db, OutboxMessage) == 0


def test_the_callers_number_finds_the_practice(p, db, make_practice, fax_document):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax="+1 763 555 0142")
    make_practice("Two Rivers Clinic", fax="+1 763 555 0177")
    make_practice("Hill Street Clinic", fax="+1 763 555 0177")  # shares a fax line

    known = inbox.receive(p, fax_document("one"), source="cli", from_number=CALLER,
                          to_number="763-555-0101")
    fax = _fax(db, known.fax_id)
    assert (fax.from_number, fax.to_number, fax.practice_id) == (
        CALLER_E164, "+17635550101", practice_id)

    shared = _fax(db, inbox.receive(p, fax_document("two"), source="cli",
                                    from_number="7635550177").fax_id)
    assert shared.from_number == "+17635550177" and shared.practice_id is None  # which one?

    tsi = _fax(db, inbox.receive(p, fax_document("three"), source="cli",
                                 from_number="  OFFICE\tFAX 2 ").fax_id)
    assert (tsi.from_number, tsi.practice_id) == ("OFFICE FAX 2", None)  # kept as received

    withheld = _fax(db, inbox.receive(p, fax_document("four"), source="cli",
                                      from_number="").fax_id)
    assert (withheld.from_number, withheld.practice_id) == (None, None)


def test_the_same_fax_arriving_twice_at_once_is_stored_once(p, db, fax_document):
    tiff = fax_document("at the same moment")
    start = threading.Barrier(4)
    results, errors = [], []

    def deliver():
        start.wait()
        try:
            results.append(inbox.receive(p, tiff, source="hylafax"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len({r.fax_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert _count(db, ReceivedFax) == 1
    assert _count(db, OutboxMessage, OutboxMessage.task == outbox.READ_FAX) == 1


def test_reading_a_faxed_referral_form_finds_its_fields_and_the_practice_on_its_barcode(
        p, db, make_practice, faxed_form):
    caller_practice, _ = make_practice("Caller Clinic", fax=CALLER)
    form_practice, _ = make_practice("Form Clinic", fax="+1 763 555 0150")
    stored = inbox.receive(p, faxed_form(3, practice_id=form_practice), source="cli",
                           from_number=CALLER)
    assert _fax(db, stored.fax_id).practice_id == caller_practice  # until it is read
    assert inbox.read(p, stored.fax_id) == "read"
    fax = _fax(db, stored.fax_id)
    assert fax.status == "read" and fax.practice_id == form_practice  # the barcode wins
    assert fax.reading["form"] == {"form": "referral", "version": 1,
                                   "practice_id": form_practice, "page": 0}
    values = faxed_form.values(3)
    read = fax.reading["fields"]["patient.family_name"]
    assert read["value"] == values["patient.family_name"] and 0 < read["confidence"] <= 1
    assert fax.reading["draft"]["patient"]["birth_date"] == values["patient.birth_date"]
    assert len(fax.reading["pages"]) == 1 and fax.reading["pages"][0]["text"]

    before = fax.updated_at
    assert inbox.read(p, stored.fax_id) == "read"  # again: nothing is read twice
    assert _fax(db, stored.fax_id).updated_at == before


def test_a_form_for_no_known_practice_leaves_the_callers(p, db, make_practice, faxed_form):
    caller_practice, _ = make_practice("Caller Clinic", fax=CALLER)
    stored = inbox.receive(p, faxed_form(4, practice_id="0b5c1e2a-6a7e-4a35-9a0e-5d2f0c1b9e77"),
                           source="cli", from_number=CALLER)
    inbox.read(p, stored.fax_id)
    fax = _fax(db, stored.fax_id)
    assert fax.reading["form"]["practice_id"] == "0b5c1e2a-6a7e-4a35-9a0e-5d2f0c1b9e77"
    assert fax.practice_id == caller_practice


def test_a_hostile_barcode_is_stored_without_nul_and_names_no_practice(
        p, db, make_practice, fax_document, monkeypatch):
    """Fault injection: a barcode whose text is no id and holds a NUL (which
    PostgreSQL's JSONB cannot store)."""
    caller_practice, _ = make_practice("Caller Clinic", fax=CALLER)
    hostile = reading.Reading(pages=[reading.PageText("x\x00y", 0.5)],
                              form=reading.FormIdentity("referral", 1, "' OR 1=1\x00", 0))
    monkeypatch.setattr(reading, "read_fax", lambda images, tessdata_dir=None: hostile)
    stored = inbox.receive(p, fax_document("hostile"), source="cli", from_number=CALLER)
    inbox.read(p, stored.fax_id)
    fax = _fax(db, stored.fax_id)
    assert fax.practice_id == caller_practice
    assert fax.reading["form"]["practice_id"] == "' OR 1=1"
    assert fax.reading["pages"][0]["text"] == "xy"


def test_a_fax_that_cannot_be_read_still_reaches_staff(p, db, fax_document, monkeypatch,
                                                        caplog):
    def broken(images, *, tessdata_dir=None):
        raise RuntimeError("Tesseract failed on the text of page 1: ANN LEE")

    monkeypatch.setattr(reading, "read_fax", broken)
    stored = inbox.receive(p, fax_document("unreadable"), source="cli")
    with caplog.at_level(logging.INFO):
        assert inbox.read(p, stored.fax_id) == "read"
    fax = _fax(db, stored.fax_id)
    assert fax.status == "read" and fax.reading == {"error": "RuntimeError"}
    assert "ANN LEE" not in caplog.text and "RuntimeError" in caplog.text
    assert inbox.read(p, "00000000-0000-4000-8000-000000000000") is None


def test_a_fax_that_is_no_form_is_read_page_by_page(p, db, fax_document):
    stored = inbox.receive(p, fax_document("REFERRAL FOR PHYSICAL THERAPY", pages=2),
                           source="cli")
    assert inbox.read(p, stored.fax_id) == "read"
    fax = _fax(db, stored.fax_id)
    assert [("PHYSICAL THERAPY" in page["text"].upper(), f"Page {n} of 2" in page["text"])
            for n, page in enumerate(fax.reading["pages"], 1)] == [(True, True)] * 2
    assert all(0.5 < page["confidence"] <= 1 for page in fax.reading["pages"])
    assert fax.reading["form"] is None and fax.reading["fields"] == {}


def test_a_referral_gets_the_fax_attached_and_its_timeline_says_so(
        p, db, fax_document, client, auth, referral_body):
    referral_id = client.post("/api/v1/referrals", json=referral_body,
                              headers=auth).get_json()["id"]
    stored = inbox.receive(p, fax_document("lab results", pages=2), source="cli")
    inbox.attach(p, stored.fax_id, referral_id, actor="user:physio", ip="10.0.0.9")
    fax = _fax(db, stored.fax_id)
    assert (fax.status, fax.referral_id, fax.handled_by) == ("attached", referral_id,
                                                             "user:physio")
    assert fax.handled_at is not None
    with db.session() as session:
        events = session.scalars(select(ReferralEvent).where(
            ReferralEvent.referral_id == referral_id, ReferralEvent.kind == "fax")).all()
        assert [e.reason for e in events] == [f"fax attached (2 pages): fax {stored.fax_id}"]
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "fax.attach"))
        assert (audit.actor, audit.referral_id, audit.ip, audit.detail) == (
            "user:physio", referral_id, "10.0.0.9", f"fax:{stored.fax_id}")
    with pytest.raises(StepError, match="already handled"):
        inbox.archive(p, stored.fax_id, "duplicate", actor="user:other")
    other = inbox.receive(p, fax_document("another"), source="cli")
    with pytest.raises(inbox.NoSuchReferral):
        inbox.attach(p, other.fax_id, "00000000-0000-4000-8000-000000000000", actor="user:x")
    with pytest.raises(LookupError):
        inbox.attach(p, "00000000-0000-4000-8000-000000000000", referral_id, actor="user:x")
    assert _fax(db, other.fax_id).status == "received"


def test_archiving_needs_a_reason(p, db, fax_document):
    stored = inbox.receive(p, fax_document("advertising"), source="cli")
    for reason, field in (("", "required"), ("   ", "required"),
                          ("x" * 501, "at most 500 characters")):
        with pytest.raises(inbox.InvalidFaxAction) as raised:
            inbox.archive(p, stored.fax_id, reason, actor="user:physio")
        assert raised.value.fields == {"reason": field}
    assert _fax(db, stored.fax_id).status == "received"
    inbox.archive(p, stored.fax_id, "  advertising, not a referral ", actor="user:physio")
    fax = _fax(db, stored.fax_id)
    assert (fax.status, fax.archived_reason) == ("archived", "advertising, not a referral")
    with pytest.raises(LookupError):
        inbox.archive(p, "00000000-0000-4000-8000-000000000000", "x", actor="user:physio")


def test_only_one_of_two_people_handles_a_fax(p, db, fax_document):
    stored = inbox.receive(p, fax_document("twice"), source="cli")
    start = threading.Barrier(2)
    outcomes = []

    def archive(who):
        start.wait()
        try:
            inbox.archive(p, stored.fax_id, f"by {who}", actor=f"user:{who}")
            outcomes.append("archived")
        except StepError:
            outcomes.append("refused")

    threads = [threading.Thread(target=archive, args=(w,)) for w in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["archived", "refused"]


def test_purge_deletes_handled_faxes_after_the_retention_period_and_keeps_waiting_ones(
        p, db, fax_document):
    waiting = inbox.receive(p, fax_document("waiting"), source="cli").fax_id
    old = inbox.receive(p, fax_document("old"), source="cli").fax_id
    recent = inbox.receive(p, fax_document("recent"), source="cli").fax_id
    for fax_id in (old, recent):
        inbox.archive(p, fax_id, "not for us", actor="user:physio")
    long_ago = utcnow() - dt.timedelta(days=p.settings.fax_retention_days + 1)
    with db.session() as session:
        session.get(ReceivedFax, old).handled_at = long_ago
        session.get(ReceivedFax, waiting).received_at = long_ago  # old, but nobody handled it
    assert inbox.purge(p) == 1
    with db.session() as session:
        left = set(session.scalars(select(ReceivedFax.id)))
        purged = session.scalars(select(AuditEntry.detail).where(
            AuditEntry.action == "fax.purge")).all()
    assert left == {waiting, recent} and purged == [f"fax:{old}"]
    assert inbox.purge(p, older_than=dt.timedelta(0)) == 1  # the recent archived one
    assert inbox.purge(p, older_than=dt.timedelta(0)) == 0


def test_views_and_lists_are_audited(p, db, fax_document):
    ids = [inbox.receive(p, fax_document(f"fax {n}"), source="cli").fax_id for n in range(3)]
    with db.session() as session:
        first, cursor = inbox.listing(session, actor="user:physio", limit=2)
        rest, end = inbox.listing(session, actor="user:physio", limit=2, cursor=cursor)
    assert [f.id for f in first + rest] == ids[::-1] and end is None
    with db.session() as session:
        fax = inbox.view(session, ids[0], actor="user:physio", ip="10.0.0.9")
        png = inbox.page_png(session, p.store, ids[0], 1, actor="user:physio")
        assert inbox.page_png(session, p.store, ids[0], 2, actor="user:physio") is None
        assert inbox.counts(session)["received"] == 3
    assert fax.pages == 1 and png.startswith(b"\x89PNG")
    with db.session() as session:
        actions = session.execute(select(AuditEntry.action, AuditEntry.detail)
                                  .where(AuditEntry.actor == "user:physio")
                                  .order_by(AuditEntry.id)).all()
    assert [tuple(a) for a in actions] == [
        ("fax.list", "all faxes"), ("fax.list", "all faxes"), ("fax.view", f"fax:{ids[0]}"),
        ("fax.page", f"fax:{ids[0]} page 1")]
    with pytest.raises(ValueError):
        inbox.decode_cursor("bm90IGEgY3Vyc29y")


def test_no_caller_number_or_fax_text_in_the_logs(p, db, make_practice, fax_document,
                                                  faxed_form, caplog, client, auth,
                                                  referral_body):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax=CALLER)
    referral_id = client.post("/api/v1/referrals", json=referral_body,
                              headers=auth).get_json()["id"]
    with caplog.at_level(logging.DEBUG, logger="refflow"):
        stored = inbox.receive(p, faxed_form(3, practice_id=practice_id), source="cli",
                               from_number=CALLER, to_number="+1 763 555 0101")
        inbox.read(p, stored.fax_id)
        inbox.attach(p, stored.fax_id, referral_id, actor="user:physio")
        second = inbox.receive(p, fax_document("second"), source="cli", from_number=CALLER)
        inbox.archive(p, second.fax_id, "sent to the wrong clinic", actor="user:physio")
    text = caplog.text
    assert stored.fax_id in text  # the logs name faxes by id ...
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)
    values = faxed_form.values(3)
    for phi in (CALLER_E164, "7635550142", "555", "Lakeside", "wrong clinic",
                values["patient.family_name"], values["patient.given_name"],
                values["patient.birth_date"], values["referrer.npi"]):
        assert phi.lower() not in text.lower()  # ... and nothing else


# -- the received-queue poller ------------------------------------------------------


class FakeTransport:
    """A fax server's received queue: lists what it holds, records what was fetched."""

    name = "hylafax"
    supports = frozenset({RECEIVE})

    def __init__(self, faxes: list[InboundFax], error: Exception | None = None) -> None:
        self.faxes, self.error, self.fetched = faxes, error, []

    def receive(self, seen=frozenset()):
        if self.error:
            raise self.error
        for item in self.faxes:
            if item.reference in seen:  # stored already: not fetched again
                continue
            self.fetched.append(item.reference)
            yield item


def test_the_poller_stores_each_received_fax_once(p, db, make_practice, fax_document):
    practice_id, _ = make_practice("Lakeside", fax=CALLER)
    one, two = fax_document("one"), fax_document("two", pages=2)
    transport = FakeTransport([InboundFax(one, "fax000000001.tif", CALLER),
                               InboundFax(two, "fax000000002.tif", None, "+17635550101")])
    assert poll.receive_from(p, transport) == poll.PollResult(new=2, known=0, refused=0)
    with db.session() as session:
        rows = session.scalars(select(ReceivedFax).order_by(ReceivedFax.source_ref)).all()
        assert [(r.source, r.source_ref, r.pages, r.practice_id) for r in rows] == [
            ("hylafax", "fax000000001.tif", 1, practice_id),
            ("hylafax", "fax000000002.tif", 2, None)]
    # listed again (HylaFAX keeps its recvq), plus a new one and a file that is no fax
    transport.faxes.append(InboundFax(b"junk", "fax000000003.tif"))
    transport.faxes.append(InboundFax(fax_document("three"), "fax000000004.tif"))
    transport.fetched.clear()
    assert poll.receive_from(p, transport) == poll.PollResult(new=1, known=0, refused=1)
    assert transport.fetched == ["fax000000003.tif", "fax000000004.tif"]  # not the stored two
    assert _count(db, ReceivedFax) == 3


def test_the_scheduler_job_polls_on_its_interval_and_survives_a_server_outage(
        settings, db, fax_document, caplog, monkeypatch):
    settings = settings.with_overrides(fax_inbox_poll=True, fax_inbox_poll_seconds=30)
    p = Pipeline(settings, db=db)
    poller = poll.InboxPoller(p)
    transport = FakeTransport([InboundFax(fax_document("one"), "fax1.tif")])
    monkeypatch.setattr(poll.InboxPoller, "transport", lambda self: transport)
    assert poller.run_if_due(1000.0).new == 1
    assert poller.run_if_due(1010.0) is None  # not due yet
    transport.error = TransientChannelError("HylaFAX server unreachable")
    with caplog.at_level(logging.WARNING):
        assert poller.run_if_due(1031.0) is None
    assert "unavailable" in caplog.text
    transport.error = None
    assert poller.run_if_due(1062.0) == poll.PollResult(new=0, known=0, refused=0)  # stored: skipped


def test_a_transport_that_cannot_receive_is_said_once(settings, db, caplog):
    p = Pipeline(settings.with_overrides(fax_inbox_poll=True, fax_transport="spool"), db=db)
    poller = poll.InboxPoller(p)
    with caplog.at_level(logging.WARNING):
        assert poller.run_if_due(0.0) is None
        assert poller.run_if_due(100.0) is None
    assert caplog.text.count("cannot list received faxes") == 1
