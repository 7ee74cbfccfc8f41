"""The page layout draws text through ReportLab's public canvas API."""

from __future__ import annotations

from documents_pdf_checks import page_texts, plain

from refflow.documents import layout


def test_text_with_pdf_delimiters_reads_back():
    flow = layout.Flow(title="t")
    line = r"Dose (2 sets) \ 10-12 reps; café – ✓"
    flow.paragraph(line, layout.Style())
    flow.paragraph("", layout.Style())
    assert line in plain(page_texts(flow.finish())[0])


def test_page_count_is_filled_in_on_every_page():
    def decorate(flow: layout.Flow) -> None:
        flow.canvas.setFont(layout.REGULAR, 10)
        flow.canvas.drawString(flow.left, 30, f"Page {flow.page} of")
        flow.draw_page_count(flow.left + 60, 30, layout.REGULAR, 10)

    flow = layout.Flow(title="t", decorate=decorate)
    for n in range(120):
        flow.paragraph(f"line {n}", layout.Style())
    pages = page_texts(flow.finish())
    assert len(pages) == flow.page > 1
    for number, text in enumerate(pages, 1):
        assert f"Page {number} of" in plain(text)
        assert str(flow.page) in plain(text).split(f"Page {number} of", 1)[1]
