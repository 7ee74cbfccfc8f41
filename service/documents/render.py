"""The documents of one referral: handout PDF, summary PDF and fax TIFF."""

from __future__ import annotations

import datetime as dt

from refflow.documents.clinic import ClinicInfo
from refflow.documents.cover import render_cover
from refflow.documents.fax import pdfs_to_fax_tiff
from refflow.documents.handout import render_handout
from refflow.documents.names import FAX, HANDOUT, SUMMARY
from refflow.documents.summary import summary_with_page_count


def render_fax(
    referral,
    plan: dict,
    clinic: ClinicInfo,
    *,
    resolution: str = "fine",
    paper: str = "letter",
    sent_at: dt.datetime | None = None,
) -> bytes:
    """Cover page + referrer summary as one multi-page TIFF Class F file."""
    summary, pages = summary_with_page_count(referral, plan, clinic, paper=paper,
                                             generated_at=sent_at)
    return _fax(referral, clinic, summary, pages, resolution=resolution, paper=paper,
                sent_at=sent_at)


def _fax(referral, clinic, summary: bytes, summary_pages: int, *, resolution, paper,
         sent_at) -> bytes:
    cover = render_cover(referral, clinic, total_pages=summary_pages + 1, sent_at=sent_at,
                         paper=paper)
    return pdfs_to_fax_tiff([cover, summary], resolution=resolution, paper=paper)


def render_all(
    referral,
    plan: dict,
    clinic: ClinicInfo,
    *,
    resolution: str = "fine",
    paper: str = "letter",
    now: dt.datetime | None = None,
) -> dict[str, bytes]:
    """All three documents, keyed "handout.pdf", "summary.pdf", "fax.tiff".

    The summary is rendered once and used both as the chart PDF and as the
    faxed pages, so the two always agree.
    """
    now = now or dt.datetime.now(dt.UTC)
    summary, pages = summary_with_page_count(referral, plan, clinic, paper=paper,
                                             generated_at=now)
    return {
        HANDOUT: render_handout(referral, plan, clinic, paper=paper),
        SUMMARY: summary,
        FAX: _fax(referral, clinic, summary, pages, resolution=resolution, paper=paper,
                  sent_at=now),
    }
