"""What reading a received fax finds (stored as ``received_faxes.reading``).

``read_fax(images)`` runs Tesseract over every page and, when a page is
refflow's referral form (its barcode), reads the form's fields. It is run by
a worker (``refflow.read_fax``), never in a web request.

The stored JSON (``Reading.as_json()``)::

    {"pages": [{"text": "...", "confidence": 0.91}],       # mean word confidence 0..1
     "form": {"form": "referral", "version": 1, "practice_id": "..." | null,
              "page": 0} | null,                            # the barcode's identity
     "fields": {"patient.family_name": {"value": "Lee", "confidence": 0.97,
                                        "source": "ocr"}, ...},
     "draft": {...},                                        # draft.referral_payload(values)
     "seconds": 1.8}
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class PageText:
    text: str
    confidence: float  # mean word confidence, 0..1 (0 when no words were found)


@dataclass(frozen=True)
class FormIdentity:
    form: str  # "referral"
    version: int
    practice_id: str | None  # the practice the form was printed for, None for a blank form
    page: int  # the index of the page that carries it


@dataclass(frozen=True)
class FieldValue:
    value: str  # as read ("x" / "" for a checkbox); people correct it on review
    confidence: float  # 0..1
    source: str  # "ocr", "checkbox", "barcode"


@dataclass(frozen=True)
class Reading:
    pages: list[PageText]
    form: FormIdentity | None = None
    fields: dict[str, FieldValue] = field(default_factory=dict)
    draft: dict = field(default_factory=dict)
    seconds: float = 0.0

    def as_json(self) -> dict:
        return asdict(self)


def read_fax(images, *, tessdata_dir: str | None = None) -> Reading:
    """Read every page (``faxin.pages.page_images``): OCR text, and the
    referral form's fields when a page carries its barcode."""
    # Imported here, not above: Tesseract, zxing-cpp and ReportLab load only in
    # the worker that reads faxes, not in every process that shows a reading.
    from refflow.documents.referral_form import FORM_ID, FORM_VERSION
    from refflow.faxin import draft, form_reader, ocr

    started = time.perf_counter()
    found = form_reader.find_form(images)
    pages = []
    for index, image in enumerate(images):
        if found and found[0] == index and found[1].upside_down:
            image = image.rotate(180)  # the form's page the right way up for its text
        text = ocr.page_text(image, tessdata_dir=tessdata_dir)
        pages.append(PageText(text.text, text.confidence))
    if found is None:
        return Reading(pages, seconds=round(time.perf_counter() - started, 3))
    index, barcode = found
    identity = FormIdentity(barcode.form, barcode.version, barcode.practice_id, index)
    if (barcode.form, barcode.version) != (FORM_ID, FORM_VERSION):
        # A refflow form this version does not know: say which, read nothing.
        return Reading(pages, identity, seconds=round(time.perf_counter() - started, 3))
    read = form_reader.read_form(images[index], barcode, tessdata_dir=tessdata_dir)
    fields = {name: FieldValue(r.value, r.confidence, r.source) for name, r in read.items()}
    payload = draft.referral_payload({name: r.value for name, r in read.items()})
    return Reading(pages, identity, fields, payload,
                   round(time.perf_counter() - started, 3))
