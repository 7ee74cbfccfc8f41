"""refflow's referral form, filled in and faxed over the fax lab's real line
(``conftest.py``), becomes a draft referral: modem ``a`` sends the form,
modem ``b`` receives it, the scheduler's inbox poll fetches it from HylaFAX's
received queue through the ``hylafax`` transport, and the worker's read step
finds the form's barcode (the practice it was printed for) and reads every
field with a confidence.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from refflow.accounts.practices import create_practice
from refflow.db.models import ReceivedFax
from refflow.faxin import inbox, poll
from refflow.pipeline.context import Pipeline
from refflow.plugins.channels.fax.hylafax import HylafaxClient, HylafaxTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import faxed_forms  # noqa: E402

pytestmark = [pytest.mark.fax_line, pytest.mark.slow]


def normal(value: str) -> str:
    return " ".join(str(value).upper().split()).replace(" ,", ",")


@pytest.fixture
def inbox_pipeline(fax_lab, sqlite_settings):
    settings = sqlite_settings.with_overrides(
        fax_transport="hylafax", fax_hylafax_port=fax_lab.port,
        fax_hylafax_user="refflow-test", fax_inbox_poll=True)
    return Pipeline(settings)


def _fax_over_the_line(fax_lab, tiff: bytes, tag: str) -> str:
    """Send ``tiff`` from modem a; wait until modem b has filed it in recvq;
    returns its name there."""
    with HylafaxClient.connect("127.0.0.1", fax_lab.port, "refflow-test", timeout=15) as fax:
        before = {rx.name for rx in fax.received()}
        job = fax.submit(tiff, number="+17635550101", tag=tag,
                         modem=fax_lab.modems["a"].device, max_dials=2, max_tries=2)
        deadline = time.monotonic() + 180
        while not (status := fax.status(job.job_id)).finished:
            assert time.monotonic() < deadline, fax_lab.diagnostics()
            time.sleep(1.0)
        assert status.state == "done", (status, fax_lab.diagnostics())
        while True:
            new = [rx for rx in fax.received() if rx.name not in before and not rx.receiving]
            if new:
                return new[0].name
            assert time.monotonic() < deadline + 30, fax_lab.diagnostics()
            time.sleep(0.5)


def _received(p: Pipeline, name: str) -> ReceivedFax:
    """Poll HylaFAX's received queue as the scheduler does (other tests' faxes
    are there too: each test has a database of its own); read the fax ``name``."""
    transport = HylafaxTransport.from_settings(p.settings)
    assert poll.receive_from(p, transport).new >= 1
    with p.db.session() as session:
        fax_id = session.scalar(select(ReceivedFax.id).where(
            ReceivedFax.source == "hylafax", ReceivedFax.source_ref == name))
    assert inbox.read(p, fax_id) == "read"
    with p.db.session() as session:
        fax = session.get(ReceivedFax, fax_id)
        session.expunge(fax)
        return fax


@pytest.mark.parametrize("style", ["mono", "hand"])
def test_faxed_referral_form_becomes_a_draft_referral(fax_lab, inbox_pipeline, style):
    p = inbox_pipeline
    with p.db.session() as session:
        practice = create_practice(session, f"Faxing practice {style}", fax="+17635550198")
        practice_id = practice.id
    values = faxed_forms.sample_values(7, full=True)
    tiff = faxed_forms.faxed_form(values, resolution="fine", style=style,
                                  practice_id=practice_id, seed=7)
    name = _fax_over_the_line(fax_lab, tiff, tag=f"intake-{style}")

    fax = _received(p, name)
    assert fax.source == "hylafax" and fax.pages == 1
    reading = fax.reading
    # The barcode names the form and the practice it was printed for.
    assert reading["form"]["form"] == "referral" and reading["form"]["practice_id"] == practice_id
    assert fax.practice_id == practice_id
    fields = reading["fields"]
    assert set(values) <= set(fields)
    for name, field in fields.items():
        assert 0.0 <= field["confidence"] <= 1.0, name
    exact = {name for name, expected in values.items()
             if normal(fields[name]["value"]) == normal(expected)}
    if style == "mono":  # typed: every field read exactly
        assert exact == set(values), {n: (values[n], fields[n]) for n in set(values) - exact}
        assert reading["draft"]["patient"]["family_name"].upper() == values["patient.family_name"]
    else:  # handwriting-style: most fields; what was misread mostly says so
        wrong = set(values) - exact
        print(f"\nhandwriting over the line: {len(exact)}/{len(values)} exact; misread: "
              + ", ".join(f"{n} {fields[n]['confidence']:.2f}" for n in sorted(wrong)))
        assert len(exact) >= 0.6 * len(values), sorted(wrong)
        mean = lambda names: sum(fields[n]["confidence"] for n in names) / max(1, len(names))  # noqa: E731
        assert mean(wrong) < 0.5 < mean(exact)
        assert sum(fields[n]["confidence"] < 0.8 for n in wrong) >= 0.6 * len(wrong)
    # Fetching the queue again stores nothing twice.
    assert poll.receive_from(p, HylafaxTransport.from_settings(p.settings)).new == 0
