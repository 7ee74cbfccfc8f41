"""Independent PDFium library instances, so fax pages can be rendered in parallel.

PDFium is not thread-safe: no two of its calls may run at the same time in one
library instance, not even for different documents (pypdfium2, "Incompatibility
with Threading"). Its state is the library's global state, though, so two
*instances* of the library share none of it — the same isolation two processes
would give, without a second interpreter or pickling pages between processes.

The first instance is the one pypdfium2 loaded; every call into it holds
``PRIMARY.lock``, which any other PDFium user in this process must hold too.
Extra instances are private copies of the same ``libpdfium`` file, loaded once
per process on first use (the dynamic linker maps a file it has already loaded
only once, so each copy gets a file of its own, unlinked as soon as it is
mapped). An extra instance is used by one conversion at a time; a conversion
that finds them all busy simply uses fewer.

ctypes releases the GIL for the length of each PDFium call, so instances render
on separate cores. If a copy cannot be loaded (no writable temporary folder, a
platform whose loader refuses it), rendering goes on with the primary
instance alone, one page at a time, as before.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pypdfium2  # noqa: F401  (loads and initialises the primary instance)
import pypdfium2.raw as pdfium_c
import pypdfium2_raw.bindings as pdfium_bindings

log = logging.getLogger(__name__)

# The calls refflow makes; extra instances take their signatures from pypdfium2's bindings.
_FUNCTIONS = (
    "FPDF_InitLibraryWithConfig", "FPDF_LoadMemDocument", "FPDF_CloseDocument",
    "FPDF_GetPageCount", "FPDF_LoadPage", "FPDF_ClosePage", "FPDF_GetPageWidthF",
    "FPDF_GetPageHeightF", "FPDFBitmap_CreateEx", "FPDFBitmap_FillRect",
    "FPDFBitmap_Destroy", "FPDF_RenderPageBitmap", "FPDF_GetLastError",
)


class PdfError(ValueError):
    """PDFium could not open or render a PDF."""


class PdfiumInstance:
    """One PDFium library instance and the lock that serialises calls into it."""

    def __init__(self, lib: ctypes.CDLL | None, lock: threading.Lock, name: str):
        self.lock = lock  # held for every call
        self.reserved = threading.Lock()  # held by the conversion using an extra instance
        self.name = name
        for fn in _FUNCTIONS:
            bound = getattr(pdfium_c, fn)
            if lib is not None:  # a copy: same signature, other library
                own = getattr(lib, fn)
                own.argtypes, own.restype = bound.argtypes, bound.restype
                bound = own
            setattr(self, fn, bound)

    @contextmanager
    def document(self, data: bytes) -> Iterator[tuple[object, int]]:
        """``(handle, page count)`` of ``data`` opened in this instance; the caller holds ``lock``.

        ``data`` must stay referenced while the document is open (PDFium reads it in place).
        """
        doc = self.FPDF_LoadMemDocument(data, len(data), None)
        if not doc:
            raise PdfError(f"PDFium could not open the PDF (error {self.FPDF_GetLastError()})")
        try:
            yield doc, self.FPDF_GetPageCount(doc)
        finally:
            self.FPDF_CloseDocument(doc)

    def render_page(self, doc, index: int, out: ctypes.c_void_p, width: int, page_rows: int,
                    x_dpi: int, y_dpi: int, flags: int, band: tuple[int, int] | None = None,
                    ) -> None:
        """Render page ``index`` into the 8-bit grey bitmap at ``out``, ``width`` pixels a row.

        The page keeps its proportions: it is fitted into ``width`` × ``page_rows``
        at no more than ``x_dpi`` × ``y_dpi`` (two different scales, which only
        PDFium's raw call does in one step), centred across and placed at the
        top. ``band`` = ``(first row, rows)`` renders only those rows of that
        page (the bitmap is then ``rows`` high); bands put together are the
        whole page, pixel for pixel.
        """
        top, rows = band or (0, page_rows)
        page = self.FPDF_LoadPage(doc, index)
        if not page:
            raise PdfError(f"PDFium could not load page {index + 1}")
        try:
            page_w, page_h = self.FPDF_GetPageWidthF(page), self.FPDF_GetPageHeightF(page)
            scale = min(width / (page_w / 72 * x_dpi), page_rows / (page_h / 72 * y_dpi), 1.0)
            size_x = round(page_w / 72 * x_dpi * scale)
            size_y = round(page_h / 72 * y_dpi * scale)
            bitmap = self.FPDFBitmap_CreateEx(width, rows, pdfium_c.FPDFBitmap_Gray, out, width)
            if not bitmap:
                raise MemoryError("PDFium could not create the page bitmap")
            try:
                self.FPDFBitmap_FillRect(bitmap, 0, 0, width, rows, 0xFFFFFFFF)
                self.FPDF_RenderPageBitmap(bitmap, page, (width - size_x) // 2, -top, size_x,
                                           size_y, 0, flags)
            finally:
                self.FPDFBitmap_Destroy(bitmap)
        finally:
            self.FPDF_ClosePage(page)


# pypdfium2's own instance; its lock must be held by every call into it.
PRIMARY = PdfiumInstance(None, threading.Lock(), "pypdfium2")

# Extra instances a process loads at most: one per core beside the first.
MAX_EXTRAS = max(0, (os.cpu_count() or 1) - 1)
_extras: list[PdfiumInstance] = []
_extras_lock = threading.Lock()
_copies_refused = False


def _load_copy(number: int) -> PdfiumInstance:
    source = pdfium_bindings._libs["pdfium"]._name  # the file pypdfium2 loaded
    fd, path = tempfile.mkstemp(prefix="refflow-pdfium-", suffix=".so")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        lib = ctypes.CDLL(path)
    finally:
        os.unlink(path)  # mapped now; nothing left on disk
    instance = PdfiumInstance(lib, threading.Lock(), f"copy-{number}")
    config = pdfium_c.FPDF_LIBRARY_CONFIG(version=2, m_pUserFontPaths=None, m_pIsolate=None,
                                          m_v8EmbedderSlot=0)
    instance.FPDF_InitLibraryWithConfig(ctypes.byref(config))
    return instance


@contextmanager
def instances(wanted: int) -> Iterator[list[PdfiumInstance]]:
    """The primary instance plus up to ``wanted - 1`` free extra instances, held for the block.

    Extra instances are loaded on first need (about 10 ms each, once per
    process), up to ``MAX_EXTRAS``; when all are busy with other conversions
    the block gets fewer. The primary instance is shared: callers lock it per call.
    """
    global _copies_refused
    held: list[PdfiumInstance] = []
    try:
        with _extras_lock:
            for instance in _extras:
                if len(held) + 1 >= wanted:
                    break
                if instance.reserved.acquire(blocking=False):
                    held.append(instance)
            while (len(held) + 1 < wanted and len(_extras) < MAX_EXTRAS
                   and not _copies_refused):
                try:
                    instance = _load_copy(len(_extras) + 1)
                except OSError as exc:
                    _copies_refused = True
                    log.warning("fax: could not load another PDFium instance (%s); pages are "
                                "rendered one at a time", type(exc).__name__)
                    break
                instance.reserved.acquire()
                _extras.append(instance)
                held.append(instance)
        yield [PRIMARY, *held]
    finally:
        for instance in held:
            instance.reserved.release()


def _after_fork_in_child() -> None:
    # A lock held by a thread of the parent would stay held forever in the child.
    global _extras_lock
    PRIMARY.lock = threading.Lock()
    _extras_lock = threading.Lock()
    for instance in _extras:
        instance.lock, instance.reserved = threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
