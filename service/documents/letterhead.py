"""The clinic's letterhead on the documents sent to a referring office (the
summary and the "referral not accepted" letter): the clinic's name, phone and
fax across the top, a rule under them, and a confidentiality line at the foot."""

from __future__ import annotations

from refflow.documents.fonts import BOLD, REGULAR
from refflow.documents.layout import Flow


def draw_letterhead(flow: Flow, clinic, footer: str) -> None:
    c = flow.canvas
    c.setFillGray(0)
    c.setFont(BOLD, 11)
    c.drawString(flow.left, flow.height - 40, clinic.name)
    c.setFont(REGULAR, 10.5)
    c.drawRightString(flow.right, flow.height - 40, f"Phone {clinic.phone}   Fax {clinic.fax}")
    c.setLineWidth(1)
    c.line(flow.left, flow.height - 47, flow.right, flow.height - 47)
    c.setFont(REGULAR, 10)
    c.drawString(flow.left, 36, footer)
