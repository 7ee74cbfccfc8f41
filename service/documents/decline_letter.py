"""The "referral not accepted" letter: what a clinician's rejection sends the
referring office — a one-page PDF on the clinic's letterhead with the
clinician's reason, its fax (cover page + letter, TIFF Class F) and the same
words as plain text for an email's body.

The letter names the patient (the office sent those details and needs them to
know which referral this is); the cover page and the plain text do not: a
fax cover is read by whoever stands at the machine, and an email's body is
kept short, with the letter attached.
"""

from __future__ import annotations

import datetime as dt

from refflow.documents import formatting as fmt
from refflow.documents.clinic import ClinicInfo
from refflow.documents.cover import render_cover
from refflow.documents.fax import pdfs_to_fax_tiff
from refflow.documents.fonts import BOLD, REGULAR
from refflow.documents.layout import Flow, Style
from refflow.documents.letterhead import draw_letterhead
from refflow.documents.names import DECLINE, DECLINE_FAX, DECLINE_TEXT

BODY = Style(REGULAR, 12, 16)
BOLD_BODY = Style(BOLD, 12, 16)
TITLE = Style(BOLD, 20, 25)
BOX_TITLE = Style(BOLD, 12.5, 17)
SMALL = Style(REGULAR, 10, 13)

TITLE_TEXT = "Referral not accepted"
LONGEST = 100  # characters of a name or reference: the letter stays one page
NO_REASON = "No reason was written down. Please call us and we will explain."
FAX_NOTE = ("Our letter about your exercise referral is attached: the clinic did not accept "
            "the referral. Please read the letter and call us with any questions.")


def _reason(reason: str | None) -> str:
    return " ".join(str(reason or "").split()) or NO_REASON


def _lines(referral, clinic: ClinicInfo) -> tuple[str, str]:
    """(what happened, what the office can do) in plain words."""
    happened = (f"Thank you for your referral. A clinician at {clinic.name} looked at it "
                "and did not accept it. We will not send the patient an exercise plan for "
                "this referral.")
    todo = (f"If you have new information, or you think we got this wrong, please call us at "
            f"{clinic.phone} or send a new referral. If the patient's health has changed, "
            "please see the patient first.")
    return happened, todo


def decline_text(referral, clinic: ClinicInfo, *, reason: str | None,
                 decided_at: dt.datetime | None = None) -> str:
    """The letter's words as plain text (an email's body): the office's own
    reference and the reason, no patient name (that is in the attached letter)."""
    day = fmt.long_date(fmt.local(decided_at, clinic.zone).date(), clinic.locale)
    happened, todo = _lines(referral, clinic)
    ref = (f"Your reference: {referral.external_id}\n" if referral.external_id else "")
    greeting = f"Dear {referral.referrer.name}," if referral.referrer.name else "Hello,"
    return (
        f"{greeting}\n\n"
        f"{TITLE_TEXT} ({day})\n{ref}\n"
        f"{happened} The patient is named in the attached letter.\n\n"
        f"Why: {_reason(reason)}\n\n"
        f"{todo}\n\n"
        f"{clinic.name}\nPhone {clinic.phone}   Fax {clinic.fax}\n\n"
        "This message is for the referring office only. If you got it by mistake, please "
        "delete it and call us.\n"
    )


def render_decline_letter(referral, clinic: ClinicInfo, *, reason: str | None,
                          decided_at: dt.datetime | None = None,
                          paper: str = "letter") -> bytes:
    """The one-page letter PDF."""
    when = fmt.local(decided_at, clinic.zone)

    def letterhead(flow: Flow) -> None:
        draw_letterhead(flow, clinic, "CONFIDENTIAL – protected health information, for the "
                                      "referring office only.")

    flow = Flow(paper=paper, margin=60, top=76, bottom=54, title=TITLE_TEXT,
                author=clinic.name, subject=TITLE_TEXT, decorate=letterhead)
    flow.paragraph(fmt.long_date(when.date(), clinic.locale), BODY, after=10)
    referrer = referral.referrer
    flow.paragraph(f"To: {fmt.clip(referrer.name or 'The referring office', LONGEST)}",
                   BOLD_BODY, after=0)
    if referrer.fax:
        flow.paragraph(f"Fax: {fmt.phone(referrer.fax, clinic.locale)}", BODY, after=0)
    flow.space(12)
    flow.lines([TITLE_TEXT], TITLE)
    flow.space(6)
    p = referral.patient
    flow.label_value("Patient:", fmt.clip(f"{p.family_name}, {p.given_name}", LONGEST), BODY,
                     BOLD_BODY, label_width=120)
    flow.label_value("Born:", fmt.date_text(p.birth_date, clinic.locale), BODY, BOLD_BODY,
                     label_width=120)
    if referral.external_id:
        flow.label_value("Your reference:", fmt.clip(referral.external_id, LONGEST), BODY, BOLD_BODY,
                         label_width=120)
    flow.space(10)
    happened, todo = _lines(referral, clinic)
    flow.paragraph(happened, BODY, after=10)
    flow.box("Why the referral was not accepted", [_reason(reason)], BOX_TITLE, BODY,
             bullet="", line_width=1.5)
    flow.heading("What you can do", BOX_TITLE, before=6)
    flow.paragraph(todo, BODY, after=14)
    flow.paragraph(f"{clinic.name}", BOLD_BODY, after=0)
    flow.paragraph(f"Phone {clinic.phone}   ·   Fax {clinic.fax}", BODY, after=0)
    return flow.finish()


def render_decline(referral, clinic: ClinicInfo, *, reason: str | None,
                   decided_at: dt.datetime | None = None, resolution: str = "fine",
                   paper: str = "letter") -> dict[str, bytes]:
    """The letter, its fax (a cover page like the plan's fax, then the letter)
    and its plain text, keyed by their document names."""
    letter = render_decline_letter(referral, clinic, reason=reason, decided_at=decided_at,
                                   paper=paper)
    cover = render_cover(referral, clinic, total_pages=2, sent_at=decided_at, paper=paper,
                         regarding="Exercise referral – not accepted", note=FAX_NOTE)
    return {
        DECLINE: letter,
        DECLINE_FAX: pdfs_to_fax_tiff([cover, letter], resolution=resolution, paper=paper),
        DECLINE_TEXT: decline_text(referral, clinic, reason=reason,
                                   decided_at=decided_at).encode(),
    }
