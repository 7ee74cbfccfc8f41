"""PDF → TIFF Class F, the file a fax server sends as it is.

Each PDF page is rendered by PDFium straight into an 8-bit grey bitmap at the
fax's own resolution (204 dpi across, 196 or 98 lines per inch down),
thresholded to 1 bit (no dithering: text stays crisp) and packed eight pixels
to a byte with numpy, and Group 3 (T.4, 1-D) coded by libtiff (``g3``). We
then write the multi-page TIFF container ourselves, so every tag is exactly
what TIFF-F asks for:

    NewSubfileType 2 (a page of a multi-page document), ImageWidth 1728,
    ImageLength = the paper's length at the vertical resolution,
    BitsPerSample 1, Compression 3 (CCITT Group 3), Photometric 0
    (min-is-white), FillOrder 1, one strip per page (RowsPerStrip =
    ImageLength), X/YResolution 204 × 196 (fine) or 204 × 98 (normal) per
    inch, T4Options 4 (EOLs byte-aligned), PageNumber (i, n), CleanFaxData 0.

Writing the container ourselves also sidesteps two Pillow problems: with
Photometric 0 it inverts pixels in a slow Python loop that only knows the
value 255, and it writes wrong PageNumber tags in multi-page files.

Pages are converted on up to ``lanes`` threads, each with a PDFium instance of
its own (``pdfium_instances``): each page is cut into one band of rows per
lane, and a lane takes the next band not yet taken, renders, thresholds and
codes it. PDFium, numpy and libtiff all run without
the GIL, so lanes use separate cores; the file is the same whatever the
number of lanes. Where the time goes (a text-heavy Letter page, fine, one
core): PDFium about 70 %, libtiff's T.4 coder about 20 %, numpy 10 %.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import struct
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import pypdfium2.raw as pdfium_c

from refflow.documents import pdfium_instances
from refflow.documents.g3 import G3Strip, encode_g3

FAX_WIDTH = 1728  # pixels across every fax page (215 mm scan line)
ROW_BYTES = FAX_WIDTH // 8
X_DPI = 204
Y_DPI = {"fine": 196, "normal": 98}
PAPER_LENGTH_MM = {"letter": 279.4, "a4": 297.0}
# A grey pixel darker than this becomes black: a little above mid-grey keeps
# anti-aliased strokes of small type solid instead of broken.
THRESHOLD = 160
# PDFium: white background, print-quality text; keep anti-aliasing (better threshold).
RENDER_FLAGS = pdfium_c.FPDF_PRINTING
# Lanes a conversion uses unless told: one per core, and two already halve a
# long fax. A second lane costs about 15 % more CPU in all, so a process that
# already shares every core with others (a worker with one child per core)
# sets this to 1 through ``set_default_lanes``.
DEFAULT_LANES = max(1, min(2, os.cpu_count() or 1))


def set_default_lanes(lanes: int) -> None:
    """Lanes conversions in this process use when no ``lanes`` is given."""
    global DEFAULT_LANES
    DEFAULT_LANES = max(1, lanes)


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

    @property
    def length_mm(self) -> float:
        return PAPER_LENGTH_MM[self.paper]


def pdf_to_fax_tiff(pdf_bytes: bytes, *, resolution: str = "fine", paper: str = "letter",
                    lanes: int | None = None) -> bytes:
    """Convert a PDF into one multi-page TIFF Class F file (bytes)."""
    return pdfs_to_fax_tiff([pdf_bytes], resolution=resolution, paper=paper, lanes=lanes)


def pdfs_to_fax_tiff(pdfs: Sequence[bytes], *, resolution: str = "fine", paper: str = "letter",
                     lanes: int | None = None) -> bytes:
    """The pages of several PDFs, in order, as one TIFF Class F file.

    Raises ``pdfium_instances.PdfError`` (a ``ValueError``) for a PDF PDFium cannot open.
    """
    fmt = FaxFormat(resolution, paper)
    pdfs = [bytes(p) for p in pdfs]  # PDFium reads them in place while they are open
    with pdfium_instances.PRIMARY.lock:
        counts = []
        for data in pdfs:
            with pdfium_instances.PRIMARY.document(data) as (_, pages):
                counts.append(pages)
    pages = [(d, i) for d, count in enumerate(counts) for i in range(count)]
    # With several lanes each page is cut into as many bands of rows, so the
    # lanes finish together even when the pages do not divide evenly. The bands
    # follow ``lanes``, not the instances free right now: the file depends on
    # the arguments alone.
    lanes = max(1, DEFAULT_LANES if lanes is None else lanes)
    with pdfium_instances.instances(min(lanes, len(pages) * lanes)) as held:
        work = _Work(pdfs, pages, lanes, fmt)
        extra = [_lane_pool().submit(work.run, lane) for lane in held[1:]]
        try:
            work.run(held[0])
        finally:
            wait(extra)  # no lane outlives the instances it holds
        for future in extra:
            future.result()  # raises what a lane raised
    return _write_tiff_f(work.strips(), fmt)


def threshold_and_pack(grey: np.ndarray) -> np.ndarray:
    """Black (1) / white (0) bits of an 8-bit grey page, eight pixels a byte, MSB first."""
    return np.packbits(grey < THRESHOLD, axis=-1)


def render_pages(pdfs: Sequence[bytes], fmt: FaxFormat) -> list[np.ndarray]:
    """Every page of ``pdfs`` as an 8-bit grey fax page (rows × 1728), in order."""
    instance, out = pdfium_instances.PRIMARY, []
    for data in pdfs:
        with instance.lock, instance.document(data) as (doc, count):
            for index in range(count):
                grey = np.empty((fmt.rows, FAX_WIDTH), np.uint8)
                instance.render_page(doc, index, grey.ctypes.data_as(ctypes.c_void_p),
                                     FAX_WIDTH, fmt.rows, X_DPI, fmt.y_dpi, RENDER_FLAGS)
                out.append(grey)
    return out


class _Work:
    """The bands of the pages of one conversion, taken one at a time by its lanes.

    A band is some rows of one page. T.4 1-D coding codes every row on its
    own, each starting with an EOL that T4Options 4 aligns to a byte, so the
    coded bands of a page joined in order are a valid coding of the whole
    page: the same rows, with at most a byte more of zero fill before the EOL
    that starts a band.
    """

    def __init__(self, pdfs: list[bytes], pages: list[tuple[int, int]], bands: int,
                 fmt: FaxFormat):
        self.pdfs, self.pages, self.fmt = pdfs, pages, fmt
        step = -(-fmt.rows // bands)
        self.bands = [(top, min(step, fmt.rows - top)) for top in range(0, fmt.rows, step)]
        self.coded: list[bytes | None] = [None] * (len(pages) * len(self.bands))
        self._coding: tuple[int, int] | None = None
        self._next = itertools.count()  # next() on it is atomic: no band is taken twice
        self.failed = False

    def run(self, instance: pdfium_instances.PdfiumInstance) -> None:
        fmt, bands = self.fmt, self.bands
        grey = np.empty((bands[0][1], FAX_WIDTH), np.uint8)
        address = grey.ctypes.data_as(ctypes.c_void_p)
        docs: dict[int, object] = {}
        try:
            while not self.failed:
                n = next(self._next)
                if n >= len(self.coded):
                    break
                (pdf, index), band = self.pages[n // len(bands)], bands[n % len(bands)]
                with instance.lock:
                    if pdf not in docs:
                        data = self.pdfs[pdf]
                        doc = instance.FPDF_LoadMemDocument(data, len(data), None)
                        if not doc:
                            raise pdfium_instances.PdfError("PDFium could not open the PDF")
                        docs[pdf] = doc
                    instance.render_page(docs[pdf], index, address, FAX_WIDTH, fmt.rows, X_DPI,
                                         fmt.y_dpi, RENDER_FLAGS, band=band)
                strip = encode_g3(threshold_and_pack(grey[: band[1]]), FAX_WIDTH)
                self._coding = (strip.fill_order, strip.t4_options)
                self.coded[n] = strip.data
        except BaseException:
            self.failed = True  # the other lanes stop at their next band
            raise
        finally:
            with instance.lock:
                for doc in docs.values():
                    instance.FPDF_CloseDocument(doc)

    def strips(self) -> list[G3Strip]:
        """One strip a page: its coded bands joined in order."""
        per_page = len(self.bands)
        fill_order, t4_options = self._coding or (1, 0)
        return [G3Strip(FAX_WIDTH, self.fmt.rows,
                        b"".join(self.coded[p * per_page:(p + 1) * per_page]),
                        fill_order, t4_options)
                for p in range(len(self.pages))]


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _lane_pool() -> ThreadPoolExecutor:
    """The threads extra lanes run on: one per extra PDFium instance there can be."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, pdfium_instances.MAX_EXTRAS),
                                       thread_name_prefix="refflow-fax")
        return _pool


def _forget_pool_after_fork() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()  # the parent's threads do not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


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
