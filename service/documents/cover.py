"""The fax cover page (a one-page PDF, converted to fax lines with the summary).

It carries no patient details: a cover sheet is read by whoever stands at
the fax machine. Type is large (≥ 13 pt) so it survives 98 lpi "normal" faxes.
"""

from __future__ import annotations

import datetime as dt

from refflow.documents import formatting as fmt
from refflow.documents.clinic import ClinicInfo
from refflow.documents.fonts import BOLD, REGULAR
from refflow.documents.layout import Flow, Style

BODY = Style(REGULAR, 14, 19)
BOLD_BODY = Style(BOLD, 14, 19)
BIG = Style(BOLD, 36, 44)
NOTICE = Style(REGULAR, 13, 17)
NOTICE_TITLE = Style(BOLD, 14, 19)

CONFIDENTIALITY_NOTICE = (
    "This fax contains confidential protected health information intended only for the "
    "person or office named above. If you are not the intended recipient, any review, "
    "use, copying or distribution of this fax is prohibited. If you received it in error, "
    "please call us at once at the number above and destroy all copies."
)


def render_cover(
    referral,
    clinic: ClinicInfo,
    *,
    total_pages: int,
    sent_at: dt.datetime | None = None,
    paper: str = "letter",
    regarding: str = "Exercise referral – plan summary",
    note: str = ("The plan summary for your referral is attached. Please call us with any "
                 "questions or if the patient's condition changes."),
) -> bytes:
    """A one-page cover PDF; ``total_pages`` counts the cover page too;
    ``regarding`` and ``note`` say what is attached (no patient details)."""
    flow = Flow(paper=paper, margin=60, top=60, bottom=50, title="Fax cover page",
                author=clinic.name, subject="Fax cover page")
    flow.lines(["FAX"], BIG)
    flow.paragraph(clinic.name, Style(BOLD, 18, 23), after=0)
    flow.paragraph(f"Phone {clinic.phone}   ·   Fax {clinic.fax}", BODY, after=10)
    flow.rule(2, after=10)
    referrer = referral.referrer
    when = fmt.local(sent_at, clinic.zone)
    rows = [
        ("To:", referrer.name or "Referring office"),
        ("Fax:", fmt.phone(referrer.fax, clinic.locale) if referrer.fax else "not on file"),
        ("Phone:", fmt.phone(referrer.phone, clinic.locale) if referrer.phone else "not on file"),
        ("From:", clinic.name),
        ("Phone:", clinic.phone),
        ("Fax:", clinic.fax),
        ("Date:", f"{fmt.long_date(when.date(), clinic.locale)}, "
                  f"{fmt.time_text(when, clinic.locale)}"),
        ("Pages:", f"{total_pages} (including this cover page)"),
        ("Re:", regarding),
    ]
    for label, value in rows:
        flow.label_value(label, value, BODY, BOLD_BODY, label_width=90, after=3)
    flow.space(14)
    flow.paragraph(note, BODY, after=16)
    flow.box("CONFIDENTIALITY NOTICE", [CONFIDENTIALITY_NOTICE], NOTICE_TITLE, NOTICE,
             bullet="", line_width=2)
    return flow.finish()
