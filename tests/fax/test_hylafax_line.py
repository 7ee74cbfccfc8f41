"""Real faxes over the fax lab (``conftest.py``): HylaFAX, soft modems, a T.30 call.

Modem ``a`` calls ``b`` (whatever the number); ``dead`` calls a peer that never
answers. Times on 2 cores: lab start ~10 s, the 2-page send ~40 s, the
unanswered call ~60 s (iaxmodem gives up after ~45 s; MAXDIALS 1).
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageDraw, ImageFont

from refflow.documents.fax import pdf_to_fax_tiff
from refflow.plugins.channels.base import PermanentChannelError, TransientChannelError
from refflow.plugins.channels.fax.hylafax import HylafaxClient, HylafaxTransport, JobStatus
from refflow.plugins.channels.fax.transports import FaxJob

pytestmark = [pytest.mark.fax_line, pytest.mark.slow]

HEADER_ROWS = 40  # HylaFAX stamps its tagline over the top ~30 rows of each sent page
NUMBER = "+18005550123"  # the lab ignores the number; faxq blocks calls to the same one


def fax_document(pages: int = 2) -> bytes:
    """A light ``pages``-page TIFF Class F from refflow's own converter (PDF -> fax)."""
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 30)
    except OSError:
        font = ImageFont.load_default()
    images = []
    for page in range(1, pages + 1):
        image = Image.new("L", (1275, 1650), 255)  # US letter at 150 dpi
        draw = ImageDraw.Draw(image)
        draw.rectangle((60, 60, 1215, 1590), outline=0, width=4)
        for row in range(8):
            draw.text((110, 150 + row * 90), f"refflow fax lab, page {page} of {pages}, "
                      f"line {row + 1}", fill=0, font=font)
        draw.rectangle((110 + page * 80, 1100, 400 + page * 80, 1400), fill=0)
        images.append(image.convert("RGB"))
    pdf = io.BytesIO()
    images[0].save(pdf, "PDF", save_all=True, append_images=images[1:], resolution=150)
    return pdf_to_fax_tiff(pdf.getvalue(), resolution="fine")


def tiff_pages(data: bytes) -> list[Image.Image]:
    pages = []
    with Image.open(io.BytesIO(data)) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            pages.append(image.convert("1").copy())
    return pages


def follow(client: HylafaxClient, job_id: str, timeout: float) -> tuple[JobStatus, list[str]]:
    """Poll the job until it is finished; the states seen on the way."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        status = client.status(job_id)
        if not seen or seen[-1] != status.state:
            seen.append(status.state)
        if status.finished or time.monotonic() > deadline:
            return status, seen
        time.sleep(1.0)


def test_two_pages_arrive_on_the_other_modem(fax_lab, hylafax):
    document = fax_document(2)
    before = {fax.name for fax in hylafax.received()}
    started = time.monotonic()
    queued = hylafax.submit(document, number=NUMBER, tag="lab-send-1",
                            modem=fax_lab.modems["a"].device, max_dials=2, max_tries=2)
    assert not queued.already
    status, seen = follow(hylafax, queued.job_id, timeout=180)
    took = time.monotonic() - started
    print(f"\nsubmit -> done {took:.1f} s, states {seen}, {status}")

    assert status.state == "done", fax_lab.diagnostics()
    assert status.status_code == 0 and status.error is None
    assert (status.pages_sent, status.pages_total) == (2, 2)
    assert status.dials >= 1
    assert status.remote_id == fax_lab.modems["b"].ident  # the receiver's CSI
    assert status.duration_s and 5 < status.duration_s < took + 5

    deadline = time.monotonic() + 30  # faxgetty files the fax when the call ends
    while True:
        new = [fax for fax in hylafax.received() if fax.name not in before]
        if (new and not new[0].receiving) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(new) == 1, fax_lab.diagnostics()
    received = new[0]
    assert received.pages == 2
    assert received.sender == fax_lab.modems["a"].ident  # TSI
    assert received.received is not None and received.error == ""

    sent_pages, got_pages = tiff_pages(document), tiff_pages(hylafax.retrieve(received.name))
    assert len(got_pages) == len(sent_pages) == 2
    for sent, got in zip(sent_pages, got_pages, strict=True):
        assert got.size == sent.size
        width, height = sent.size
        band = (0, HEADER_ROWS, width, height)
        assert got.crop(band).tobytes() == sent.crop(band).tobytes()
        # the header band differs: HylaFAX stamped its tagline there
        assert got.crop((0, 0, width, HEADER_ROWS)).tobytes() != \
            sent.crop((0, 0, width, HEADER_ROWS)).tobytes()


def test_unanswered_call_fails_as_retryable(fax_lab, hylafax):
    started = time.monotonic()
    queued = hylafax.submit(fax_document(1), number="+18005550124", tag="lab-noanswer-1",
                            modem=fax_lab.modems["dead"].device, max_dials=1, max_tries=1)
    status, seen = follow(hylafax, queued.job_id, timeout=150)
    print(f"\nsubmit -> failed {time.monotonic() - started:.1f} s, states {seen}, {status}")

    assert status.state == "failed", fax_lab.diagnostics()
    assert status.status_code == 333  # "No answer from remote; too many attempts to dial"
    assert status.dials == 1 and status.pages_sent == 0
    assert status.retryable is True
    error = status.error
    assert isinstance(error, TransientChannelError)
    assert "status 333" in error.message and queued.job_id in error.message
    assert "5550124" not in error.message  # no fax number in a message


def test_same_delivery_is_one_job_and_cancel_kills_it(fax_lab, hylafax):
    dead = fax_lab.modems["dead"].device
    number = "+18005550125"
    # A call in progress to the same number blocks the next job (faxq: one call
    # per destination), so that job stays queued until it is cancelled.
    blocker = hylafax.submit(fax_document(1), number=number, tag="lab-blocker-1", modem=dead,
                             max_dials=1, max_tries=1)
    deadline = time.monotonic() + 20
    while hylafax.status(blocker.job_id).state != "active" and time.monotonic() < deadline:
        time.sleep(0.3)

    document = fax_document(1)
    first = hylafax.submit(document, number=number, tag="lab-twice-1", modem=dead)
    again = hylafax.submit(document, number=number, tag="lab-twice-1", modem=dead)
    assert not first.already and again.already
    assert again.job_id == first.job_id
    assert [job for job, _state in hylafax.find_jobs("lab-twice-1")] == [first.job_id]

    queued = hylafax.status(first.job_id)
    assert queued.state in {"suspended", "pending", "sleeping", "blocked", "ready"}, queued
    assert queued.tag == "lab-twice-1"

    hylafax.cancel(first.job_id)
    status, _seen = follow(hylafax, first.job_id, timeout=20)
    assert (status.state, status.status_code) == ("failed", 345), status
    assert isinstance(status.error, PermanentChannelError)  # cancelled: not retried
    hylafax.cancel(first.job_id)  # cancelling a finished job changes nothing

    # A failed job does not block a new one for the same delivery (a retry).
    retry = hylafax.submit(document, number=number, tag="lab-twice-1", modem=dead)
    assert not retry.already and retry.job_id != first.job_id
    hylafax.cancel(retry.job_id)
    assert follow(hylafax, retry.job_id, timeout=20)[0].state == "failed"
    # The blocker is left to fail on its own (~45 s, while the next tests run):
    # JKILL of a job that is dialling waits for faxsend to hang up the modem,
    # which took 10 to over 15 s on the lab.


def test_transport_submits_a_fax_job_once(fax_lab):
    transport = HylafaxTransport("127.0.0.1", fax_lab.port, "refflow-test",
                                 modem=fax_lab.modems["dead"].device, resolution="normal",
                                 max_dials=1, max_tries=1)
    job = FaxJob(delivery_id="dlv-transport-1", referral_id="ref-1", number="+18005550126",
                 tiff=fax_document(1), pages=1)
    first = transport.submit(job)
    again = transport.submit(job)
    assert first.reference.isdigit() and again.reference == first.reference
    assert first.held and again.held  # queued: the pipeline follows the job
    assert first.detail["already_submitted"] is False and again.detail["already_submitted"]
    assert transport.status(first.reference).detail["job_id"] == first.reference
    transport.cancel(first.reference)
    deadline = time.monotonic() + 30
    while not (status := transport.status(first.reference)).finished:
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status.state == "failed" and status.detail["status_code"] == 345


def test_errors_name_no_number_and_unknown_jobs_are_permanent(fax_lab, hylafax):
    with pytest.raises(PermanentChannelError) as bad:
        hylafax.submit(b"II*\x00", number="not a number 555-0199", tag="lab-bad-1")
    assert "0199" not in bad.value.message
    with pytest.raises(PermanentChannelError, match="no job 31999"):
        hylafax.status("31999")
    unreachable = HylafaxTransport("127.0.0.1", 9, "refflow-test")  # discard port: closed
    with pytest.raises(TransientChannelError, match="unreachable"):
        unreachable.submit(FaxJob("dlv-x", "ref-x", "+18005550127", b"II*\x00", 1))
