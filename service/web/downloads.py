"""Serving a referral's documents to a signed-in person: PDFs inline, pages as PNG
(fax TIFF pages, and PDF pages for the draft previews). The bytes come from
the document store through ``content``: 410 Gone once the retention period
deleted them."""

from __future__ import annotations

import io

from flask import Response, abort, current_app
from sqlalchemy import select

from refflow.db.models import Document
from refflow.pipeline.stored_documents import DocumentPurged, document_bytes

PURGED = "this document was deleted from the document store after the retention period"

INLINE = {"handout.pdf", "summary.pdf", "chart.pdf", "decline.pdf"}
# What a signed-in person may open, in the order the pages list them (a referral
# made before the chart record existed simply has no chart.pdf: 404).
NAMES = ("summary.pdf", "chart.pdf", "handout.pdf", "fax.tiff", "decline.pdf", "decline.tiff")
FAX_WIDTH_DPI = 204.0


def load(session, referral_id: str, name: str) -> Document:
    if name not in NAMES:
        abort(404)
    doc = session.scalar(select(Document).where(Document.referral_id == referral_id,
                                                Document.name == name))
    if doc is None:
        abort(404)
    return doc


def content(doc: Document) -> bytes:
    """The document's bytes (410 when the retention period deleted them)."""
    try:
        return document_bytes(current_app.extensions["refflow.pipeline"].store, doc)
    except DocumentPurged:
        abort(410, description=PURGED)


def file_response(doc: Document, *, download: bool = False) -> Response:
    response = Response(content(doc), mimetype=doc.content_type)
    disposition = "attachment" if download or doc.name not in INLINE else "inline"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{doc.name}"'
    private(response)
    # The referral page shows the PDFs in a frame of this site.
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'self'"
    return response


def private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


PDF_SCALE = 1.25  # 90 dpi: a letter page is 765 pixels wide


def page_count(content: bytes) -> int:
    """How many pages a PDF or a (multi-page) TIFF has."""
    if content[:5] == b"%PDF-":
        import pypdfium2 as pdfium

        doc = pdfium.PdfDocument(content)
        try:
            return len(doc)
        finally:
            doc.close()
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        return getattr(image, "n_frames", 1)


def page_png(content: bytes, page: int) -> bytes:
    """Page ``page`` (1-based) of a PDF or of a TIFF-F fax as a PNG (404 past the end).

    PDFs are drawn by PDFium (pypdfium2's public API); fax pages get square pixels.
    """
    if content[:5] != b"%PDF-":
        return fax_page_png(content, page)
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(content)
    try:
        if not 1 <= page <= len(doc):
            abort(404)
        pdf_page = doc[page - 1]
        try:
            bitmap = pdf_page.render(scale=PDF_SCALE)
            image = bitmap.to_pil()
        finally:
            pdf_page.close()
    finally:
        doc.close()
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def fax_page_png(content: bytes, page: int) -> bytes:
    """Page ``page`` (1-based) of a TIFF-F fax as a PNG with square pixels."""
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        pages = getattr(image, "n_frames", 1)
        if not 1 <= page <= pages:
            abort(404)
        image.seek(page - 1)
        xdpi, ydpi = image.info.get("dpi", (FAX_WIDTH_DPI, FAX_WIDTH_DPI))
        frame = image.convert("L")
        if ydpi and xdpi and abs(float(xdpi) - float(ydpi)) > 20:
            # "normal" resolution is 204x98 dpi: stretch the height to square pixels
            height = round(frame.height * float(xdpi) / float(ydpi))
            frame = frame.resize((frame.width, height))
        out = io.BytesIO()
        frame.save(out, format="PNG", optimize=False)
    return out.getvalue()
