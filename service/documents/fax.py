"""PDF → TIFF Class F, the file a fax server sends as it is.

Each PDF page is drawn by PDFium (pypdfium2's public API) straight onto a fax
page of its own — 1728 pixels across, the paper's length in scan lines —
scaled to the fax's two resolutions (204 dpi across, 196 or 98 lines per inch
down): the page is taken into a blank fax-sized page as a form XObject,
stretched by a matrix, and that page is rendered in 8-bit grey at one pixel
per point. It is thresholded to 1 bit by Pillow (no dithering: text stays
crisp) and Group 3 (T.4, 1-D) coded by Pillow (``g3``). We then write the
multi-page TIFF container ourselves, so every tag is exactly what TIFF-F asks
for:

    NewSubfileType 2 (a page of a multi-page document), ImageWidth 1728,
    ImageLength = the paper's length at the vertical resolution,
    BitsPerSample 1, Compression 3 (CCITT Group 3), Photometric 0
    (min-is-white), FillOrder 1, one strip per page (RowsPerStrip =
    ImageLength), X/YResolution 204 × 196 (fine) or 204 × 98 (normal) per
    inch, T4Options 4 (EOLs byte-aligned), PageNumber (i, n), CleanFaxData 0.

Writing the container ourselves also sidesteps two Pillow problems: with
Photometric 0 it inverts pixels in a slow Python loop, and it writes wrong
PageNumber tags in multi-page files.

Pages are converted one after another on the calling thread. PDFium is not
thread-safe (not even for different documents), so every PDFium call here
holds ``PDFIUM_LOCK``.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pypdfium2 as pdfium
from PIL import Image

from refflow.documents.g3 import G3Strip, encode_g3

FAX_WIDTH = 1728  # pixels across every fax page (215 mm scan line)
X_DPI = 204
Y_DPI = {"fine": 196, "normal": 98}
PAPER_LENGTH_MM = {"letter": 279.4, "a4": 297.0}
# A grey pixel darker than this becomes black: a little above mid-grey keeps
# anti-aliased strokes of small type solid instead of broken.
THRESHOLD = 160
# Grey → 1 bit, where a set bit is ink (what the G3 coder wants).
_INK = [255 if grey < THRESHOLD else 0 for grey in range(256)]
# Held for every PDFium call in this process (a threaded web server may fax twice at once).
PDFIUM_LOCK = threading.Lock()


class PdfError(ValueError):
    """PDFium could not open a PDF."""


@dataclass(frozen=True)
class FaxFormat:
    resolution: str = "fine"
    paper: str = "letter"

    def __post_init__(self) -> None:
        if self.resolution not in Y_DPI:
            raise ValueError(f"resolution must be one of {sorted(Y_DPI)}")
        if self.paper not in PAPER_LENGTH_MM:
            raise ValueError(f"paper must be one of {sorted(PAPER_LENGTH_MM)}")

    @property
    def y_dpi(self) -> int:
        return Y_DPI[self.resolution]

    @property
    def rows(self) -> int:
        """Scan lines per page: the paper's length at the vertical resolution."""
        # Rounded down: a page a fraction of a line longer than the paper makes
        # fax servers (HylaFAX tiffcheck) ask for a RESIZE.
        return math.floor(PAPER_LENGTH_MM[self.paper] / 25.4 * self.y_dpi + 1e-6)


def pdf_to_fax_tiff(pdf_bytes: bytes, *, resolution: str = "fine", paper: str = "letter") -> bytes:
    """Convert a PDF into one multi-page TIFF Class F file (bytes)."""
    return pdfs_to_fax_tiff([pdf_bytes], resolution=resolution, paper=paper)


def pdfs_to_fax_tiff(pdfs: Sequence[bytes], *, resolution: str = "fine",
                     paper: str = "letter") -> bytes:
    """The pages of several PDFs, in order, as one TIFF Class F file.

    Raises ``PdfError`` (a ``ValueError``) for a PDF PDFium cannot open.
    """
    fmt = FaxFormat(resolution, paper)
    return _write_tiff_f([encode_g3(page) for page in render_pages(pdfs, fmt)], fmt)


def render_pages(pdfs: Sequence[bytes], fmt: FaxFormat) -> list[Image.Image]:
    """Every page of ``pdfs``, in order, as a bilevel fax page (1728 × rows, see ``to_bilevel``)."""
    out = []
    with PDFIUM_LOCK:
        sheets = pdfium.PdfDocument.new()  # the fax-sized pages the PDF pages are drawn onto
        try:
            for data in pdfs:
                try:
                    doc = pdfium.PdfDocument(bytes(data))
                except pdfium.PdfiumError as exc:
                    raise PdfError(f"PDFium could not open the PDF ({exc})") from exc
                try:
                    out += [_render_page(doc, index, sheets, fmt) for index in range(len(doc))]
                finally:
                    doc.close()
        finally:
            sheets.close()
    return out


def _render_page(doc: pdfium.PdfDocument, index: int, sheets: pdfium.PdfDocument,
                 fmt: FaxFormat) -> Image.Image:
    """Page ``index`` of ``doc`` as a bilevel fax page.

    The page keeps its proportions: it is fitted into 1728 × ``rows`` at no
    more than 204 × ``y_dpi``, centred across and placed at the top.
    """
    width, height = doc.get_page_size(index)  # in points (1/72 inch)
    scale = min(FAX_WIDTH / (width / 72 * X_DPI), fmt.rows / (height / 72 * fmt.y_dpi), 1.0)
    size_x = round(width / 72 * X_DPI * scale)
    size_y = round(height / 72 * fmt.y_dpi * scale)
    form = doc.page_as_xobject(index, sheets).as_pageobject()
    form.transform(pdfium.PdfMatrix().scale(size_x / width, size_y / height)
                   .translate((FAX_WIDTH - size_x) // 2, fmt.rows - size_y))
    sheet = sheets.new_page(FAX_WIDTH, fmt.rows)  # one point = one fax pixel
    try:
        sheet.insert_obj(form)
        grey = sheet.render(grayscale=True, optimize_mode="print")
        return to_bilevel(grey.to_pil())  # a new image: none shares the bitmap's memory
    finally:
        sheet.close()


def to_bilevel(grey: Image.Image) -> Image.Image:
    """A mode "1" page whose set pixels are the grey page's pixels darker than ``THRESHOLD``."""
    return grey.point(_INK, "1")


# -- the TIFF-F container ---------------------------------------------------------
_SHORT, _LONG, _RATIONAL, _ASCII = 3, 4, 5, 2
SOFTWARE = b"refflow\x00"


def _write_tiff_f(strips: Sequence[G3Strip], fmt: FaxFormat) -> bytes:
    """Little-endian multi-page TIFF: per page the strip, then its IFD and values."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    n = len(strips)
    previous_next_pointer = 4
    for index, strip in enumerate(strips):
        strip_offset = len(out)
        out += strip.data
        if len(out) % 2:
            out += b"\x00"
        entries = [
            (254, _LONG, 1, 2),  # NewSubfileType: page of a multi-page document
            (256, _LONG, 1, strip.width),
            (257, _LONG, 1, strip.rows),
            (258, _SHORT, 1, 1),
            (259, _SHORT, 1, 3),  # CCITT Group 3
            (262, _SHORT, 1, 0),  # min-is-white
            (266, _SHORT, 1, strip.fill_order),
            (273, _LONG, 1, strip_offset),
            (274, _SHORT, 1, 1),
            (277, _SHORT, 1, 1),
            (278, _LONG, 1, strip.rows),  # one strip per page
            (279, _LONG, 1, len(strip.data)),
            (282, _RATIONAL, 1, None),
            (283, _RATIONAL, 1, None),
            (292, _LONG, 1, strip.t4_options),
            (296, _SHORT, 1, 2),  # inches
            (297, _SHORT, 2, None),  # PageNumber (index, total)
            (305, _ASCII, len(SOFTWARE), None),
            (327, _SHORT, 1, 0),  # CleanFaxData: clean
        ]
        ifd_offset = len(out)
        struct.pack_into("<I", out, previous_next_pointer, ifd_offset)
        extra_offset = ifd_offset + 2 + 12 * len(entries) + 4
        extra = bytearray()
        ifd = bytearray(struct.pack("<H", len(entries)))
        for tag, typ, count, value in entries:
            if tag == 282:
                field = struct.pack("<I", extra_offset + len(extra))
                extra += struct.pack("<II", X_DPI, 1)
            elif tag == 283:
                field = struct.pack("<I", extra_offset + len(extra))
                extra += struct.pack("<II", fmt.y_dpi, 1)
            elif tag == 297:
                field = struct.pack("<HH", index, n)
            elif tag == 305:
                field = struct.pack("<I", extra_offset + len(extra))
                extra += SOFTWARE
            elif typ == _SHORT:
                field = struct.pack("<HH", value, 0)
            else:
                field = struct.pack("<I", value)
            ifd += struct.pack("<HHI", tag, typ, count) + field
        previous_next_pointer = ifd_offset + len(ifd)
        ifd += b"\x00\x00\x00\x00"  # next IFD: patched when another page follows
        out += ifd + extra
        if len(out) % 2:
            out += b"\x00"
    return bytes(out)
