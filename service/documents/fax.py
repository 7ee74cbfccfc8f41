"""PDF → TIFF Class F, the file a fax server sends as it is.

Each PDF page is rendered by PDFium straight into an 8-bit grey bitmap at the
fax's own resolution (204 dpi across, 196 or 98 lines per inch down — two
different scales, which only PDFium's raw ``FPDF_RenderPageBitmap`` call does
in one step), thresholded to 1 bit (no dithering: text stays crisp) and packed
eight pixels to a byte with numpy, and Group 3 (T.4, 1-D) encoded by libtiff
through Pillow. We then write the multi-page TIFF container ourselves, so
every tag is exactly what TIFF-F asks for:

    NewSubfileType 2 (a page of a multi-page document), ImageWidth 1728,
    ImageLength = the paper's length at the vertical resolution,
    BitsPerSample 1, Compression 3 (CCITT Group 3), Photometric 0
    (min-is-white), FillOrder 1, one strip per page (RowsPerStrip =
    ImageLength), X/YResolution 204 × 196 (fine) or 204 × 98 (normal) per
    inch, T4Options 4 (EOLs byte-aligned), PageNumber (i, n), CleanFaxData 0.

Writing the container ourselves also sidesteps two Pillow problems: with
Photometric 0 it inverts pixels in a slow Python loop that only knows the
value 255, and it writes wrong PageNumber tags in multi-page files.

Where the time goes (a text-heavy Letter page, fine): PDFium 3–6 ms, numpy
threshold + packing ~0.4 ms, libtiff's T.4 coder 1–2.5 ms. Pillow's own path
for a mode "1" image would add ~6 ms a page: it keeps one byte per pixel and
packs the bits again in a per-pixel loop before libtiff sees them. So we give
Pillow's libtiff encoder the packed rows directly, as an 8-bit image one
eighth as wide, and tell libtiff (through the tags) that a row is 1728 one-bit
pixels — the same bytes libtiff would have received. ``encode_g3_public``
does it the slow, public way and is the fallback, and the tests check the
two give the same strip.
"""

from __future__ import annotations

import ctypes
import io
import logging
import math
import struct
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

log = logging.getLogger(__name__)

FAX_WIDTH = 1728  # pixels across every fax page (215 mm scan line)
ROW_BYTES = FAX_WIDTH // 8
X_DPI = 204
Y_DPI = {"fine": 196, "normal": 98}
PAPER_LENGTH_MM = {"letter": 279.4, "a4": 297.0}
# A grey pixel darker than this becomes black: a little above mid-grey keeps
# anti-aliased strokes of small type solid instead of broken.
THRESHOLD = 160
T4_FILL_BITS = 4  # T4Options bit 2: fill bits before EOL (byte-aligned EOLs)

# PDFium: white background, print-quality text; keep anti-aliasing (better threshold).
_RENDER_FLAGS = pdfium_c.FPDF_PRINTING
# PDFium must never be called from two threads at once, not even for different
# documents (pypdfium2, "Incompatibility with Threading"): every PDFium call in
# this module holds this lock, so concurrent faxes in a threaded server are safe.
PDFIUM_LOCK = threading.Lock()
# Pages rendered ahead of the coder: bounds memory (one 8-bit page is 3.7 MB).
_BUFFERS = 3


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
                    pipeline: bool = False) -> bytes:
    """Convert a PDF into one multi-page TIFF Class F file (bytes)."""
    return pdfs_to_fax_tiff([pdf_bytes], resolution=resolution, paper=paper, pipeline=pipeline)


def pdfs_to_fax_tiff(
    pdfs: Sequence[bytes], *, resolution: str = "fine", paper: str = "letter",
    pipeline: bool = False,
) -> bytes:
    """The pages of several PDFs, in order, as one TIFF Class F file.

    Pages are rendered and coded one after the other on this thread. With
    ``pipeline=True`` a worker thread codes page i while PDFium renders page
    i+1 (same bytes). That only pays when both steps release the GIL, and
    Pillow's libtiff encoder does not: it holds the GIL for its whole ~1.5 ms
    a page, and PDFium's ctypes calls then wait for it (a 3.6 ms render took
    16.7 ms beside a running coder). Measured on 2 cores: no faster when
    idle, 97 vs 58 ms for 6 pages under load. Hence off by default; it
    becomes worth turning on with a coder that releases the GIL.
    """
    fmt = FaxFormat(resolution, paper)
    # Each page is rendered into one of a few reused buffers: no per-page
    # allocation, and a buffer is only reused once its page has been coded.
    buffers = [np.empty((fmt.rows, FAX_WIDTH), np.uint8) for _ in range(_BUFFERS)]
    pages = _render_pages(pdfs, fmt, buffers)
    if not pipeline:
        return _write_tiff_f([_threshold_and_encode(grey) for grey in pages], fmt)
    strips: list[G3Strip] = []
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="refflow-fax") as pool:
        for grey in pages:
            pending.append(pool.submit(_threshold_and_encode, grey))
            if len(pending) >= _BUFFERS:  # the next page reuses the oldest page's buffer
                strips.append(pending.popleft().result())
        strips.extend(f.result() for f in pending)
    return _write_tiff_f(strips, fmt)


def threshold_and_pack(grey: np.ndarray) -> np.ndarray:
    """Black (1) / white (0) bits of an 8-bit grey page, eight pixels a byte, MSB first."""
    return np.packbits(grey < THRESHOLD, axis=-1)


def _threshold_and_encode(grey: np.ndarray) -> G3Strip:
    return encode_g3(threshold_and_pack(grey), grey.shape[1])


# -- rendering ---------------------------------------------------------------
def _render_pages(pdfs: Sequence[bytes], fmt: FaxFormat,
                  buffers: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
    """Each page of each PDF as an 8-bit grey fax page, rendered in turn into ``buffers``.

    A yielded buffer is overwritten ``len(buffers)`` pages later.
    """
    count = 0
    for data in pdfs:
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(data)
            pages = len(doc)
        try:
            for index in range(pages):
                grey = buffers[count % len(buffers)]
                count += 1
                with PDFIUM_LOCK:
                    page = doc[index]
                    try:
                        _render_page(page, grey, fmt)
                    finally:
                        page.close()
                yield grey
        finally:
            with PDFIUM_LOCK:
                doc.close()


def _render_page(page, grey: np.ndarray, fmt: FaxFormat) -> None:
    """Render ``page`` into ``grey`` (rows × 1728, C-contiguous uint8), fitted and centred."""
    rows, width = grey.shape
    page_w, page_h = page.get_size()  # points
    # Fit the page into the fax page keeping its proportions: at most 204 dpi
    # across (a Letter page is 1734 px at 204 dpi, so it is scaled by 0.35%).
    scale = min(width / (page_w / 72 * X_DPI), rows / (page_h / 72 * fmt.y_dpi), 1.0)
    size_x = round(page_w / 72 * X_DPI * scale)
    size_y = round(page_h / 72 * fmt.y_dpi * scale)
    start_x = (width - size_x) // 2
    bitmap = pdfium_c.FPDFBitmap_CreateEx(width, rows, pdfium_c.FPDFBitmap_Gray,
                                          grey.ctypes.data_as(ctypes.c_void_p), width)
    if not bitmap:
        raise MemoryError("PDFium could not create the page bitmap")
    try:
        pdfium_c.FPDFBitmap_FillRect(bitmap, 0, 0, width, rows, 0xFFFFFFFF)
        pdfium_c.FPDF_RenderPageBitmap(bitmap, page.raw, start_x, 0, size_x, size_y, 0,
                                       _RENDER_FLAGS)
    finally:
        pdfium_c.FPDFBitmap_Destroy(bitmap)


# -- Group 3 coding ------------------------------------------------------------
@dataclass(frozen=True)
class G3Strip:
    width: int
    rows: int
    data: bytes
    fill_order: int
    t4_options: int


# The tags libtiff needs to code one page (tag order matters to libtiff).
def _coder_tags(width: int, rows: int) -> list[tuple[int, int]]:
    return [(256, width), (257, rows), (258, 1), (259, 3), (262, 0), (266, 1), (277, 1),
            (278, rows), (284, 1), (292, T4_FILL_BITS)]


_fast_coder_failed = False


def encode_g3(packed: np.ndarray, width: int = FAX_WIDTH) -> G3Strip:
    """Group 3 (1-D) code packed rows (``rows × width/8`` bytes, set bits = black).

    libtiff's T.4 coder codes 0 bits as white runs and 1 bits as black runs
    (whatever the Photometric tag says), so the strip is exactly a
    min-is-white fax page. Uses Pillow's libtiff encoder on the packed bytes
    (see the module docstring); falls back to ``encode_g3_public`` if this
    Pillow's private encoder interface differs.
    """
    global _fast_coder_failed
    if not _fast_coder_failed:
        try:
            return _encode_g3_packed(packed, width)
        except (AttributeError, TypeError, ValueError, OSError, KeyError) as exc:
            _fast_coder_failed = True
            log.warning("fax: Pillow's libtiff encoder refused packed rows (%s: %s); "
                        "using the slower public path", type(exc).__name__, exc)
    return encode_g3_public(packed, width)


def _encode_g3_packed(packed: np.ndarray, width: int) -> G3Strip:
    rows, row_bytes = packed.shape
    if row_bytes * 8 != width:
        raise ValueError("packed rows do not match the width")
    packed = np.ascontiguousarray(packed)
    image = Image.frombuffer("L", (row_bytes, rows), packed, "raw", "L", 0, 1)
    encoder = Image._getencoder("L", "libtiff", ("L", 0, "fax.tif", _coder_tags(width, rows),
                                                 {}))
    chunks = []
    try:
        encoder.setimage(image.im, (0, 0, row_bytes, rows))
        while True:
            _, status, data = encoder.encode(1 << 20)
            chunks.append(data)
            if status:
                break
    finally:
        encoder.cleanup()
    if status < 0:
        raise OSError(f"libtiff encoder error {status}")
    return _strip_of(b"".join(chunks), width, rows)


def encode_g3_public(packed: np.ndarray, width: int = FAX_WIDTH) -> G3Strip:
    """``encode_g3`` through Pillow's public API: a mode "1" image saved as TIFF.

    Pillow labels such an image min-is-black and passes the bits to libtiff
    untouched; we keep only the coded strip. About 6 ms a page slower.
    """
    rows = packed.shape[0]
    bits = Image.frombytes("1", (width, rows), np.ascontiguousarray(packed).tobytes())
    out = io.BytesIO()
    bits.save(out, "TIFF", compression="group3", tiffinfo={278: rows, 292: T4_FILL_BITS})
    return _strip_of(out.getvalue(), width, rows)


def _strip_of(tiff: bytes, width: int, rows: int) -> G3Strip:
    """The one coded strip of a single-page TIFF libtiff wrote, with its coding tags."""
    tags = _read_first_ifd(tiff)
    offsets, counts = tags[273], tags[279]
    if len(offsets) != 1:
        raise RuntimeError("libtiff wrote more than one strip")
    if tags[256][0] != width or tags[257][0] != rows or tags[259][0] != 3:
        raise RuntimeError("libtiff wrote an unexpected page")
    data = tiff[offsets[0]: offsets[0] + counts[0]]
    return G3Strip(width, rows, data, tags.get(266, (1,))[0], tags.get(292, (0,))[0])


_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 16: ("Q", 8)}


def _read_first_ifd(tiff: bytes) -> dict[int, tuple]:
    """The first IFD of a little-endian TIFF as {tag: values} (small parser)."""
    if tiff[:4] != b"II*\x00":
        raise ValueError("expected a little-endian TIFF")
    (ifd,) = struct.unpack_from("<I", tiff, 4)
    (count,) = struct.unpack_from("<H", tiff, ifd)
    tags: dict[int, tuple] = {}
    for i in range(count):
        tag, typ, n, value = struct.unpack_from("<HHI4s", tiff, ifd + 2 + 12 * i)
        code, size = _TYPES.get(typ, ("B", 1))
        if typ == 2:
            continue
        total = size * n
        raw = value if total <= 4 else tiff[struct.unpack("<I", value)[0]:][:total]
        fmt = "<" + code * n if typ != 5 else "<" + "I" * (2 * n)
        tags[tag] = struct.unpack(fmt, raw[:total])
    return tags


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
