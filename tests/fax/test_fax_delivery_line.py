"""A referral's fax through refflow's pipeline and the ``hylafax`` transport,
over the fax lab's real line (``conftest.py``): the delivery goes ``sending``
(the job queued with HylaFAX) → ``sent`` with the fax server's confirmation,
or is retried and then failed with HylaFAX's reason, or — its referral
cancelled — stopped before it is sent.

The steps run in the test's process (``flow.deliver``, then
``flow.check_delivery`` as the scheduler's sweep would queue it), on SQLite.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from refflow.app import create_app
from refflow.db.models import Delivery, Document, Referral, ReferralEvent
from refflow.pipeline import flow, staff_actions
from refflow.pipeline.context import Pipeline
from refflow.pipeline.stored_documents import document_bytes
from refflow.plugins.channels.fax import FaxChannel
from refflow.plugins.channels.fax.hylafax import HylafaxClient, HylafaxTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from sample_referrals import routine  # noqa: E402
from test_hylafax_line import HEADER_ROWS, tiff_pages  # noqa: E402

pytestmark = [pytest.mark.fax_line, pytest.mark.slow]


@pytest.fixture
def line_pipeline(fax_lab, sqlite_settings):
    """A pipeline whose fax channel sends through the lab's HylaFAX (modem ``a``)."""
    settings = sqlite_settings.with_overrides(
        fax_transport="hylafax", fax_hylafax_port=fax_lab.port,
        fax_hylafax_user="refflow-test", fax_hylafax_modem=fax_lab.modems["a"].device,
        fax_check_seconds=1.0, retry_base_seconds=0.1, retry_max_seconds=0.2)
    return Pipeline(settings)


def _use_modem(p: Pipeline, modem: str) -> None:
    """Send this pipeline's faxes from ``modem`` with one dial and one try per job."""
    s = p.settings
    p.channels["fax"] = FaxChannel(s, transport=HylafaxTransport(
        s.fax_hylafax_host, s.fax_hylafax_port, s.fax_hylafax_user, modem=modem,
        resolution=s.fax_resolution, max_dials=1, max_tries=1))


def _fax_referral(p: Pipeline, number: str) -> tuple[str, str]:
    """A released referral whose only delivery is the fax to ``number``; returns
    (referral id, delivery id) with the referral delivering."""
    app = create_app(p.settings, {"TESTING": True})
    from refflow.accounts.practices import create_practice, issue_key

    with p.db.session() as session:
        practice = create_practice(session, f"Line practice {number[-4:]}", fax=number)
        _, key = issue_key(session, practice)
    body = routine(deliver={"fax_to_referrer": True, "email_to_patient": False,
                            "chart_pdf": False})
    body["referrer"]["fax"] = number
    r = app.test_client().post("/api/v1/referrals", json=body,
                               headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.get_json()
    referral_id = r.get_json()["id"]
    assert flow.build_plan(p, referral_id) == "delivering"
    with p.db.session() as session:
        [delivery] = session.scalars(select(Delivery).where(Delivery.referral_id == referral_id))
        assert delivery.channel == "fax"
        return referral_id, delivery.id


def _follow(p: Pipeline, delivery_id: str, timeout: float) -> str:
    """Check the held delivery every second, as the scheduler would, until it ends."""
    deadline = time.monotonic() + timeout
    while (status := flow.check_delivery(p, delivery_id)) == "sending":
        assert time.monotonic() < deadline, "the fax server never finished the job"
        time.sleep(1.0)
    return status


def _events(p: Pipeline, referral_id: str) -> list[tuple[str, str | None]]:
    with p.db.session() as session:
        return list(session.execute(select(ReferralEvent.kind, ReferralEvent.reason).where(
            ReferralEvent.referral_id == referral_id).order_by(ReferralEvent.id)).all())


def _received_after(fax_lab, before: set[str], timeout: float = 30.0):
    with HylafaxClient.connect("127.0.0.1", fax_lab.port, "refflow-test", timeout=15) as fax:
        deadline = time.monotonic() + timeout
        while True:
            new = [rx for rx in fax.received() if rx.name not in before]
            if (new and not new[0].receiving) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(new) == 1, fax_lab.diagnostics()
        return new[0], fax.retrieve(new[0].name)


def _recvq(fax_lab) -> set[str]:
    with HylafaxClient.connect("127.0.0.1", fax_lab.port, "refflow-test", timeout=15) as fax:
        return {rx.name for rx in fax.received()}


def test_referral_fax_is_sent_and_confirmed_by_the_fax_server(fax_lab, line_pipeline):
    p = line_pipeline
    referral_id, delivery_id = _fax_referral(p, "+17635550198")
    before = _recvq(fax_lab)

    assert flow.deliver(p, delivery_id) == "sending"  # queued with HylaFAX
    with p.db.session() as session:
        held = session.get(Delivery, delivery_id)
        assert held.claimed_at is None and held.check_at is not None
        assert held.reference.isdigit()  # the HylaFAX job id
        job_id = held.reference
    assert _follow(p, delivery_id, timeout=180) == "sent"

    with p.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        fax_tiff = document_bytes(p.store, session.scalar(select(Document).where(
            Document.referral_id == referral_id, Document.name == "fax.tiff")))
        status = session.scalar(select(Referral.status).where(Referral.id == referral_id))
        assert delivery.reference == job_id and delivery.sent_at is not None
        confirmed = delivery.detail
    assert status == "completed"
    assert confirmed["job_id"] == job_id
    assert confirmed["pages_sent"] == confirmed["pages_total"] == 2  # cover + summary
    assert confirmed["remote_id"] == fax_lab.modems["b"].ident  # the receiving machine's CSI
    assert confirmed["duration_s"] and confirmed["duration_s"] > 5
    kinds = [kind for kind, _ in _events(p, referral_id)]
    assert kinds.index("delivery_queued") < kinds.index("delivery_sent")
    sent_reason = dict(_events(p, referral_id))["delivery_sent"]
    assert f"2 pages in {confirmed['duration_s']:.0f} s" in sent_reason and job_id in sent_reason

    # What modem b received is what refflow rendered, but for HylaFAX's header rows.
    received, data = _received_after(fax_lab, before)
    assert received.pages == 2
    sent_pages, got_pages = tiff_pages(fax_tiff), tiff_pages(data)
    assert len(got_pages) == len(sent_pages) == 2
    for sent, got in zip(sent_pages, got_pages, strict=True):
        assert got.size == sent.size
        band = (0, HEADER_ROWS, sent.width, sent.height)
        assert got.crop(band).tobytes() == sent.crop(band).tobytes()

    # The proof of delivery the portal and the staff page show.
    from refflow.referrals import queries

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        proof = queries.outcome(session, row)["plan_sent_to_referrer"]
    assert proof["confirmation"] == job_id and proof["pages"] == 2
    assert proof["remote_id"] == fax_lab.modems["b"].ident and proof["seconds"] > 5


def test_unanswered_fax_is_retried_then_fails_with_hylafax_reason(fax_lab, line_pipeline):
    p = line_pipeline
    _use_modem(p, fax_lab.modems["dead"].device)
    referral_id, delivery_id = _fax_referral(p, "+17635550197")
    with p.db.session() as session:
        session.get(Delivery, delivery_id).max_attempts = 2

    assert flow.deliver(p, delivery_id) == "sending"
    assert _follow(p, delivery_id, timeout=150) == "retrying"  # busy / no answer: transient
    with p.db.session() as session:
        session.get(Delivery, delivery_id).next_attempt_at = None  # due now, not after backoff
    assert flow.deliver(p, delivery_id) == "sending"  # a new HylaFAX job
    assert _follow(p, delivery_id, timeout=150) == "failed"

    with p.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        status = session.scalar(select(Referral.status).where(Referral.id == referral_id))
        assert delivery.attempts == 2
        assert "status 333" in delivery.last_error  # HylaFAX: no answer, too many dials
        assert "5550197" not in delivery.last_error  # no fax number in a message
    assert status == "failed"
    kinds = [kind for kind, _ in _events(p, referral_id)]
    assert kinds.count("delivery_queued") == 2 and "retry" in kinds
    assert kinds[-2:] == ["delivery_failed", "status"]


def test_cancelled_referral_kills_its_queued_fax(fax_lab, line_pipeline):
    p = line_pipeline
    _use_modem(p, fax_lab.modems["dead"].device)
    referral_id, delivery_id = _fax_referral(p, "+17635550196")
    assert flow.deliver(p, delivery_id) == "sending"
    with p.db.session() as session:
        job_id = session.get(Delivery, delivery_id).reference
        row = session.get(Referral, referral_id)
        assert staff_actions.cancel(session, row, actor="user:test",
                                    reason="patient moved away") == 1

    deadline = time.monotonic() + 60  # JKILL of a dialling job waits for the hang-up
    while (status := flow.check_delivery(p, delivery_id)) == "sending":
        assert time.monotonic() < deadline
        time.sleep(1.0)
    assert status == "cancelled"
    with HylafaxClient.connect("127.0.0.1", fax_lab.port, "refflow-test", timeout=15) as fax:
        while not (job := fax.status(job_id)).finished:
            assert time.monotonic() < deadline + 30
            time.sleep(1.0)
    assert (job.state, job.status_code) == ("failed", 345)  # killed, never sent
    with p.db.session() as session:
        assert session.scalar(select(Referral.status).where(Referral.id == referral_id)) \
            == "cancelled"
    assert "delivery_cancelled" in [kind for kind, _ in _events(p, referral_id)]
