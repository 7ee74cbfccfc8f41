"""The referral form's QR code on a fax page, read with zxing-cpp.

The code holds the form's identity only (``documents.referral_form.barcode_text``:
form, version and the practice it was printed for). Where zxing-cpp found it
— its four corners in the symbol's own order, whatever way up the page is —
is what ``form_reader`` registers the page by, before it looks for the
corner squares.
"""

from __future__ import annotations

from dataclasses import dataclass

import zxingcpp
from PIL import Image, ImageFilter

from refflow.documents.referral_form import parse_barcode_text

Point = tuple[float, float]


@dataclass(frozen=True)
class FormBarcode:
    form: str
    version: int
    practice_id: str | None
    # The symbol's corners in the image, in the symbol's own order: its
    # top-left, top-right, bottom-right and bottom-left (on a page fed upside
    # down its top-left is near the page's bottom-right).
    corners: tuple[Point, Point, Point, Point]
    orientation: int  # degrees the symbol is turned (0: upright, about 180: upside down)

    @property
    def upside_down(self) -> bool:
        return 135 <= self.orientation % 360 <= 225


def read_form_barcode(image: Image.Image) -> FormBarcode | None:
    """The refflow form barcode on ``image`` (8-bit greyscale), or None.

    A page zxing-cpp finds no code on is tried once more without its specks
    (a 3 x 3 median filter): a speck on a finder pattern can hide the code."""
    found = _read(image)
    if found is None:
        found = _read(image.filter(ImageFilter.MedianFilter(3)))
    return found


def _read(image: Image.Image) -> FormBarcode | None:
    for found in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode):
        identity = parse_barcode_text(found.text)
        if identity is None:
            continue
        p = found.position
        corners = tuple((float(q.x), float(q.y)) for q in
                        (p.top_left, p.top_right, p.bottom_right, p.bottom_left))
        form, version, practice_id = identity
        return FormBarcode(form, version, practice_id, corners, int(found.orientation))
    return None
