"""The documents of one referral: handout PDF, referrer summary PDF, chart
record PDF and the fax TIFF (cover page + summary: two pages)."""

from __future__ import annotations

import datetime as dt

from refflow.documents.chart import render_chart
from refflow.documents.clinic import ClinicInfo
from refflow.documents.cover import render_cover
from refflow.documents.fax import pdfs_to_fax_tiff
from refflow.documents.handout import render_handout
from refflow.documents.names import CHART, FAX, HANDOUT, SUMMARY
from refflow.documents.summary import render_summary


def render_fax(
    referral,
    plan: dict,
    clinic: ClinicInfo,
    *,
    resolution: str = "fine",
    paper: str = "letter",
    sent_at: dt.datetime | None = None,
) -> bytes:
    """Cover page + the one-page referrer summary as one TIFF Class F file."""
    summary = render_summary(referral, plan, clinic, paper=paper, generated_at=sent_at)
    return _fax(referral, clinic, summary, resolution=resolution, paper=paper, sent_at=sent_at)


def _fax(referral, clinic, summary: bytes, *, resolution, paper, sent_at) -> bytes:
    cover = render_cover(referral, clinic, total_pages=2, sent_at=sent_at, paper=paper)
    return pdfs_to_fax_tiff([cover, summary], resolution=resolution, paper=paper)


def render_all(
    referral,
    plan: dict,
    clinic: ClinicInfo,
    *,
    resolution: str = "fine",
    paper: str = "letter",
    now: dt.datetime | None = None,
    patient_url: str | None = None,
) -> dict[str, bytes]:
    """All four documents, keyed "handout.pdf", "summary.pdf", "chart.pdf", "fax.tiff".

    The summary is rendered once and used both as the PDF and as the faxed
    page, so the two always agree.
    """
    now = now or dt.datetime.now(dt.UTC)
    summary = render_summary(referral, plan, clinic, paper=paper, generated_at=now)
    return {
        HANDOUT: render_handout(referral, plan, clinic, paper=paper, patient_url=patient_url),
        SUMMARY: summary,
        CHART: render_chart(referral, plan, clinic, paper=paper, generated_at=now),
        FAX: _fax(referral, clinic, summary, resolution=resolution, paper=paper, sent_at=now),
    }
